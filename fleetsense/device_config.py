"""The device configuration file (TOML), shared by the edge agent (which reads it) and the gateway (which
writes it at provisioning): one schema, parsed into frozen dataclasses with clear errors."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetsense.errors import ConfigError
from fleetsense.ids import validate_vehicle_id


@dataclass(frozen=True, kw_only=True)
class BrokerConfig:
    host: str
    port: int = 1883
    username: str
    password: str
    keepalive_s: int = 30

    def __repr__(self) -> str:
        return f"BrokerConfig(host={self.host!r}, port={self.port}, username={self.username!r})"


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    imu_rate_hz: int = 100
    batch_window_s: float = 1.0

    @property
    def sample_period_us(self) -> int:
        return 1_000_000 // self.imu_rate_hz

    @property
    def samples_per_window(self) -> int:
        return round(self.batch_window_s * self.imu_rate_hz)


@dataclass(frozen=True, kw_only=True)
class EdgeConfig:
    vehicle_id: str
    broker: BrokerConfig
    sampling: SamplingConfig
    state_dir: Path


def _section(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    return value


def _get(table: dict[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    if key not in table:
        if default is None:
            raise ConfigError(f"{where}: missing required key '{key}'")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where}: '{key}' must be a {kind.__name__}, got {value!r}")
    return value


def load(path: Path) -> EdgeConfig:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"config file {path} does not exist",
            hint="create one with `fleetsense gateway provision <vehicle-id>`",
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    broker = _section(data, "broker", path)
    sampling = _section(data, "sampling", path)
    storage = _section(data, "storage", path)
    where = str(path)
    config = EdgeConfig(
        vehicle_id=validate_vehicle_id(_get(data, "vehicle_id", str, where)),
        broker=BrokerConfig(
            host=_get(broker, "host", str, f"{where} [broker]"),
            port=_get(broker, "port", int, f"{where} [broker]", 1883),
            username=_get(broker, "username", str, f"{where} [broker]"),
            password=_get(broker, "password", str, f"{where} [broker]"),
            keepalive_s=_get(broker, "keepalive_s", int, f"{where} [broker]", 30),
        ),
        sampling=SamplingConfig(
            imu_rate_hz=_get(sampling, "imu_rate_hz", int, f"{where} [sampling]", 100),
            batch_window_s=_get(sampling, "batch_window_s", float, f"{where} [sampling]", 1.0),
        ),
        state_dir=Path(_get(storage, "state_dir", str, f"{where} [storage]")),
    )
    _check_ranges(config, where)
    return config


def _check_ranges(config: EdgeConfig, where: str) -> None:
    if not 0 < config.broker.port < 65536:
        raise ConfigError(f"{where} [broker]: port {config.broker.port} is not a TCP port")
    if not 1 <= config.sampling.imu_rate_hz <= 1000:
        raise ConfigError(f"{where} [sampling]: imu_rate_hz must be 1..1000, got {config.sampling.imu_rate_hz}")
    if not 0.1 <= config.sampling.batch_window_s <= 60:
        raise ConfigError(f"{where} [sampling]: batch_window_s must be 0.1..60 s, got {config.sampling.batch_window_s}")
    if config.sampling.samples_per_window > 65535:
        raise ConfigError(f"{where} [sampling]: more than 65535 samples per batch window")


def render(config: EdgeConfig) -> str:
    """TOML text for a config (JSON string escapes are valid TOML basic strings)."""
    q = json.dumps
    return "\n".join(
        [
            "# fleetsense edge agent configuration (written by `fleetsense gateway provision`).",
            "# Holds this vehicle's broker secret: keep it readable only by the agent's user (mode 0600).",
            f"vehicle_id = {q(config.vehicle_id)}",
            "",
            "[broker]",
            f"host = {q(config.broker.host)}",
            f"port = {config.broker.port}",
            f"username = {q(config.broker.username)}",
            f"password = {q(config.broker.password)}",
            f"keepalive_s = {config.broker.keepalive_s}",
            "",
            "[sampling]",
            f"imu_rate_hz = {config.sampling.imu_rate_hz}",
            f"batch_window_s = {config.sampling.batch_window_s}",
            "",
            "[storage]",
            f"state_dir = {q(str(config.state_dir))}",
            "",
        ]
    )
