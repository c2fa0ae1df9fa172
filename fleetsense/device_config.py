"""The device configuration file (TOML), shared by the edge agent (which reads it) and the gateway (which
writes it at provisioning): one schema, declared once as dataclasses, parsed with clear errors."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetsense import settings_spec
from fleetsense.endpoints import Endpoint, parse_endpoints
from fleetsense.errors import ConfigError
from fleetsense.ids import validate_vehicle_id
from fleetsense.settings_spec import REQUIRED, about, setting
from fleetsense.wire import MAX_MESSAGE_BYTES

# The annotations are strings (PEP 563); every field of a section is one of these scalars.
SCALAR_TYPES = settings_spec.SCALARS


@dataclass(frozen=True, kw_only=True)
class BrokerConfig:
    # One broker (host, port) or several (endpoints, the nodes of one cluster): the agent fails over between them
    # (edge/failover.py, docs/edge-agent.md "Failover"). `connect_to` is the list either way.
    host: str = setting("", doc="the MQTT broker's host (one broker; several: endpoints instead)")
    port: int = setting(1883, least=1, most=65535, doc="its MQTT port (8883 with TLS); endpoints without one take it")
    endpoints: tuple[Endpoint, ...] = ()  # not a scalar setting: parsed by fleetsense/endpoints.py
    username: str = field(metadata=about(doc="the device's broker user: its vehicle id"))
    password: str = setting("", doc="empty when the device logs in with its client certificate")
    keepalive_s: int = setting(30, unit="s", doc="MQTT keep-alive")
    tls: bool = setting(False, doc="connect with TLS")
    ca_file: str = setting("", doc="the CA that signed the broker's certificate; empty: the system's trust store")
    # Certificate login (TLS only): the broker takes the identity from the certificate's common name.
    client_cert_file: str = setting("", doc="the device's client certificate (TLS only; login by its common name)")
    client_key_file: str = setting("", doc="its key")
    max_message_bytes: int = setting(
        MAX_MESSAGE_BYTES,
        least=1024,
        most=MAX_MESSAGE_BYTES,  # the gateway's limit
        unit="bytes",
        doc="larger batches are set aside, never sent: the broker refuses them",
    )
    # Reconnect pacing (edge/backoff.py): full jitter between 0 and base * 2^failures, at most the cap. A
    # connection counts as a success (and resets the backoff) only once a publish was acknowledged on it or it
    # stayed up for stable_connection_s: a broker that takes logins but refuses publishes is a failure.
    reconnect_base_s: float = setting(
        1.0, least=0.01, most=60, unit="s", doc="reconnect backoff: full jitter up to base x 2^failures"
    )
    reconnect_cap_s: float = setting(60.0, most=3600, unit="s", doc="the backoff's cap (at least reconnect_base_s)")
    stable_connection_s: float = setting(
        60.0, least=1, most=3600, unit="s", doc="up this long (or a publish acknowledged): a success"
    )
    connect_timeout_s: float = setting(
        10.0, least=0.5, most=300, unit="s", doc="one endpoint's time to accept TCP and answer CONNECT, then the next"
    )
    endpoint_order: str = setting(
        "shuffled",
        choices=("shuffled", "listed"),
        doc="endpoints tried in an order of the vehicle's own (a fleet spreads over the nodes), or as listed",
    )

    @property
    def connect_to(self) -> tuple[Endpoint, ...]:
        """The brokers to try: the endpoints, or the one host and port."""
        return self.endpoints or (Endpoint(self.host, self.port),)

    @property
    def uses_client_cert(self) -> bool:
        return bool(self.client_cert_file)

    def __repr__(self) -> str:
        where = ", ".join(map(str, self.connect_to))
        return f"BrokerConfig(endpoints=[{where}], username={self.username!r}, tls={self.tls})"


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    imu_rate_hz: int = setting(100, least=1, most=1000, unit="Hz", doc="IMU samples per second")
    baro_rate_hz: int = setting(10, least=1, most=50, unit="Hz", doc="barometer samples per second")
    batch_window_s: float = setting(1.0, least=0.1, most=60, unit="s", doc="one batch per sensor per window")
    drain_interval_ms: int = setting(
        100, least=10, most=500, unit="ms", doc="how often the IMU's FIFO is emptied; the FIFO holds ~85 samples"
    )

    @property
    def sample_period_us(self) -> int:
        return 1_000_000 // self.imu_rate_hz

    @property
    def samples_per_window(self) -> int:
        return round(self.batch_window_s * self.imu_rate_hz)


@dataclass(frozen=True, kw_only=True)
class SensorsConfig:
    bus: str = setting("", doc='"smbus:1" (a Raspberry Pi\'s header), "sim" (firmware-sim); empty: $FLEETSENSE_I2C_BUS')
    imu_address: int = setting(0x68, doc="the MPU-6050's I2C address: 0x68 or 0x69")
    baro_address: int = setting(0x76, doc="the BMP280's I2C address: 0x76, 0x77 or 0 (no barometer fitted)")


@dataclass(frozen=True, kw_only=True)
class OutboxConfig:
    # 64 MiB holds about 23 h of 100 Hz IMU + 10 Hz barometer batches (docs/edge-agent.md, "Bound").
    max_bytes: int = setting(
        64 * 1024 * 1024, least=65536, unit="bytes", doc="the outbox's whole footprint on disk (segments, small files)"
    )
    replay_rate_per_s: float = setting(50.0, unit="batches/s", doc="while draining a backlog; must be positive")
    max_inflight: int = setting(20, least=1, most=1000, unit="batches", doc="sent and not yet acknowledged, at most")
    ack_timeout_s: float = setting(
        30.0, least=1, unit="s", doc="a PUBACK later than this means a broken connection: reconnect and resend"
    )
    memory_batches: int = setting(
        600,
        least=1,
        most=100_000,
        unit="batches",
        doc="held in memory while storage fails (disk full, read-only, I/O errors): ~5 min",
    )
    # Group commit: a power cut loses at most this much (docs/edge-agent.md, "Durability").
    commit_batches: int = setting(4, least=1, most=64, unit="batches", doc="made durable (one fdatasync) together")
    commit_interval_s: float = setting(
        2.0, least=0.1, most=60, unit="s", doc="or after this long, whichever comes first"
    )


@dataclass(frozen=True, kw_only=True)
class StatusConfig:
    heartbeat_s: float = setting(30.0, least=1, unit="s", doc="how often the device publishes its status")


@dataclass(frozen=True, kw_only=True)
class ClockConfig:
    assume_synced: bool = setting(
        False, doc="trust the wall clock even when the kernel says it is not synchronised (GPS time, a container)"
    )
    # docs/edge-agent.md, "Time".
    hold_unsynced_s: float = setting(
        3600.0,
        least=0,
        most=7 * 86_400,
        unit="s",
        doc="batches taken while the clock is not synchronised are held this long for re-timing, then sent flagged "
        "CLOCK_UNSYNCED (0: never hold)",
    )


@dataclass(frozen=True, kw_only=True)
class DriverConfig:
    badge_file: str = setting(
        "",
        doc="a file an RFID reader daemon keeps the badge in its reader written to (e.g. /run/fleetsense/badge); the "
        "status carries it, and the service assigns the badge's driver. Empty, or the file absent: no badge",
    )


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    state_dir: str = field(metadata=about(doc="where the outbox and the agent's state live"))


@dataclass(frozen=True, kw_only=True)
class EdgeConfig:
    vehicle_id: str
    broker: BrokerConfig
    storage: StorageConfig
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    sensors: SensorsConfig = field(default_factory=SensorsConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    driver: DriverConfig = field(default_factory=DriverConfig)

    @property
    def state_dir(self) -> Path:
        return Path(self.storage.state_dir)


SECTIONS: dict[str, type] = {
    "broker": BrokerConfig,
    "storage": StorageConfig,
    "sampling": SamplingConfig,
    "sensors": SensorsConfig,
    "outbox": OutboxConfig,
    "status": StatusConfig,
    "clock": ClockConfig,
    "driver": DriverConfig,
}


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    """A section's dataclass from its TOML table: unknown keys, missing keys and wrong types are errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        if str(spec.type) not in SCALAR_TYPES:
            continue  # a structured value, parsed by its section (_broker)
        if name not in table:
            if spec.default is REQUIRED and spec.default_factory is REQUIRED:
                raise ConfigError(f"{where}: missing required key '{name}'")
            continue
        value, kind = table[name], SCALAR_TYPES[str(spec.type)]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ConfigError(f"{where}: '{name}' must be {kind.__name__}, got {value!r}")
        values[name] = value
    return cls(**values)


def parse(data: dict[str, Any], where: str) -> EdgeConfig:
    if not isinstance(data.get("vehicle_id"), str):
        raise ConfigError(f"{where}: missing required key 'vehicle_id' (a string)")
    vehicle_id = validate_vehicle_id(data["vehicle_id"])
    unknown = sorted(set(data) - set(SECTIONS) - {"vehicle_id"})
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}")
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = data.get(name)
        if table is None:
            if name in ("broker", "storage"):
                raise ConfigError(f"{where}: missing section [{name}]")
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        sections[name] = _build(cls, table, f"{where} [{name}]")
        if name == "broker":
            sections[name] = _broker(sections[name], table, f"{where} [{name}]")
    config = EdgeConfig(vehicle_id=vehicle_id, **sections)
    check_ranges(config, where)
    return config


def _broker(broker: BrokerConfig, table: dict[str, Any], where: str) -> BrokerConfig:
    """[broker] with its endpoints: `host` names one broker, `endpoints` several; exactly one of them."""
    if "endpoints" not in table:
        if not broker.host:
            raise ConfigError(
                f"{where}: missing key 'host' (one broker) or 'endpoints' (several)",
                hint='e.g. host = "10.77.0.11", or endpoints = ["10.77.0.11:1883", "10.77.0.12:1883"]',
            )
        return broker
    if "host" in table:
        raise ConfigError(
            f"{where}: both 'host' and 'endpoints'", hint="list every broker in endpoints and leave host out"
        )
    endpoints = parse_endpoints(table["endpoints"], default_port=broker.port, where=where)
    return dataclasses.replace(broker, endpoints=endpoints)


def load(path: Path) -> EdgeConfig:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"config file {path} does not exist",
            hint="create one with `fleetsense gateway provision <vehicle-id>`",
        ) from exc
    except PermissionError as exc:
        raise ConfigError(f"cannot read {path}: permission denied", hint="run the agent as the config's owner") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse(data, str(path))


def check_ranges(config: EdgeConfig, where: str) -> None:
    """Each key within its declared bounds (settings_spec), then the rules that tie keys together."""
    for name in SECTIONS:
        settings_spec.check(getattr(config, name), what=f"{where}: [{name}]")
    checks = [
        (
            bool(config.broker.host) != bool(config.broker.endpoints),
            "[broker] needs either host (one broker) or endpoints (several), not both",
        ),
        (
            bool(config.broker.password) or config.broker.uses_client_cert,
            "[broker] needs a password or a client certificate (client_cert_file and client_key_file)",
        ),
        (
            bool(config.broker.client_cert_file) == bool(config.broker.client_key_file),
            "[broker] client_cert_file and client_key_file go together",
        ),
        (config.broker.tls or not config.broker.uses_client_cert, "[broker] a client certificate needs tls = true"),
        (config.sampling.samples_per_window <= 65535, "[sampling] more than 65535 samples per batch window"),
        (config.outbox.replay_rate_per_s > 0, "[outbox] replay_rate_per_s must be positive"),
        (
            config.broker.reconnect_base_s <= config.broker.reconnect_cap_s,
            "[broker] reconnect_cap_s must be reconnect_base_s..3600 s",
        ),
        (config.sensors.imu_address in (0x68, 0x69), "[sensors] imu_address must be 0x68 or 0x69"),
        (config.sensors.baro_address in (0, 0x76, 0x77), "[sensors] baro_address must be 0x76, 0x77 or 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{where}: {message}")


def render(config: EdgeConfig) -> str:
    """TOML text for a config (JSON string escapes are valid TOML basic strings)."""
    lines = [
        "# fleetsense edge agent configuration.",
        "# Holds this vehicle's broker secret: keep it readable only by the agent's user (mode 0600).",
        f"vehicle_id = {json.dumps(config.vehicle_id)}",
    ]
    for name in SECTIONS:
        lines += ["", f"[{name}]"]
        if name == "clock" and config.clock.assume_synced:
            lines.append("# true: this agent shares the cloud's host and clock (the local stack); a real device: false")
        for key, value in _rendered(getattr(config, name)).items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _rendered(section: object) -> dict[str, object]:
    """A section's keys as the file writes them: [broker] with one broker as host and port, with several as
    endpoints (so a config with one broker stays readable by agents that predate endpoints)."""
    values = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}  # type: ignore[arg-type]
    if isinstance(section, BrokerConfig):
        if section.endpoints:
            del values["host"]  # port stays: the default of an entry without one
            values["endpoints"] = [str(endpoint) for endpoint in section.endpoints]
        else:
            del values["endpoints"]
    return values


def _toml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))
