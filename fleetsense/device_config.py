"""The device configuration file (TOML), shared by the edge agent (which reads it) and the gateway (which
writes it at provisioning): one schema, declared once as dataclasses, parsed with clear errors."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetsense.errors import ConfigError
from fleetsense.ids import validate_vehicle_id
from fleetsense.wire import MAX_MESSAGE_BYTES

REQUIRED = dataclasses.MISSING
# The annotations are strings (PEP 563); every field of a section is one of these scalars.
SCALAR_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


@dataclass(frozen=True, kw_only=True)
class BrokerConfig:
    host: str
    port: int = 1883
    username: str
    password: str = ""  # empty when the device logs in with its client certificate
    keepalive_s: int = 30
    tls: bool = False
    ca_file: str = ""  # the CA that signed the broker's certificate; empty: the system's trust store
    # Certificate login (TLS only): the broker takes the identity from the certificate's common name.
    client_cert_file: str = ""
    client_key_file: str = ""
    max_message_bytes: int = MAX_MESSAGE_BYTES  # larger batches are set aside, never sent: the broker refuses them
    # Reconnect pacing (edge/backoff.py): full jitter between 0 and base * 2^failures, at most the cap. A
    # connection counts as a success (and resets the backoff) only once a publish was acknowledged on it or it
    # stayed up for stable_connection_s: a broker that takes logins but refuses publishes is a failure.
    reconnect_base_s: float = 1.0
    reconnect_cap_s: float = 60.0
    stable_connection_s: float = 60.0

    @property
    def uses_client_cert(self) -> bool:
        return bool(self.client_cert_file)

    def __repr__(self) -> str:
        return f"BrokerConfig(host={self.host!r}, port={self.port}, username={self.username!r}, tls={self.tls})"


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    imu_rate_hz: int = 100
    baro_rate_hz: int = 10
    batch_window_s: float = 1.0
    drain_interval_ms: int = 100  # how often the IMU's FIFO is emptied; the FIFO holds ~85 samples

    @property
    def sample_period_us(self) -> int:
        return 1_000_000 // self.imu_rate_hz

    @property
    def samples_per_window(self) -> int:
        return round(self.batch_window_s * self.imu_rate_hz)


@dataclass(frozen=True, kw_only=True)
class SensorsConfig:
    bus: str = ""  # "smbus:1" (a Raspberry Pi's header), "sim" (firmware-sim); empty: $FLEETSENSE_I2C_BUS
    imu_address: int = 0x68
    baro_address: int = 0x76  # 0: no barometer fitted


@dataclass(frozen=True, kw_only=True)
class OutboxConfig:
    # The outbox's whole footprint on disk (segments, small files); 64 MiB holds about 23 h of 100 Hz IMU + 10 Hz
    # barometer batches (docs/edge-agent.md, "Bound").
    max_bytes: int = 64 * 1024 * 1024
    replay_rate_per_s: float = 50.0  # batches per second while draining a backlog
    max_inflight: int = 20
    ack_timeout_s: float = 30.0  # a PUBACK later than this means a broken connection: reconnect and resend
    memory_batches: int = 600  # held in memory while storage fails (disk full, read-only, I/O errors): ~5 min
    # Group commit: batches are made durable (one fdatasync) by groups of commit_batches, or after
    # commit_interval_s; a power cut loses at most that much (docs/edge-agent.md, "Durability").
    commit_batches: int = 4
    commit_interval_s: float = 2.0


@dataclass(frozen=True, kw_only=True)
class StatusConfig:
    heartbeat_s: float = 30.0


@dataclass(frozen=True, kw_only=True)
class ClockConfig:
    # Trust the wall clock even when the kernel says it is not synchronised (e.g. GPS time or a container).
    assume_synced: bool = False
    # Batches taken while the clock is not synchronised are held on the device and re-timed when it syncs; after
    # this long without sync they are sent as they are, flagged CLOCK_UNSYNCED (docs/edge-agent.md, "Time").
    hold_unsynced_s: float = 3600.0


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    state_dir: str


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
}


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    """A section's dataclass from its TOML table: unknown keys, missing keys and wrong types are errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, spec in fields.items():
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
    config = EdgeConfig(vehicle_id=vehicle_id, **sections)
    check_ranges(config, where)
    return config


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
    checks = [
        (0 < config.broker.port < 65536, f"[broker] port {config.broker.port} is not a TCP port"),
        (
            bool(config.broker.password) or config.broker.uses_client_cert,
            "[broker] needs a password or a client certificate (client_cert_file and client_key_file)",
        ),
        (
            bool(config.broker.client_cert_file) == bool(config.broker.client_key_file),
            "[broker] client_cert_file and client_key_file go together",
        ),
        (config.broker.tls or not config.broker.uses_client_cert, "[broker] a client certificate needs tls = true"),
        (
            1024 <= config.broker.max_message_bytes <= MAX_MESSAGE_BYTES,
            f"[broker] max_message_bytes must be 1024..{MAX_MESSAGE_BYTES} (the gateway's limit)",
        ),
        (1 <= config.sampling.imu_rate_hz <= 1000, "[sampling] imu_rate_hz must be 1..1000"),
        (1 <= config.sampling.baro_rate_hz <= 50, "[sampling] baro_rate_hz must be 1..50"),
        (0.1 <= config.sampling.batch_window_s <= 60, "[sampling] batch_window_s must be 0.1..60 s"),
        (config.sampling.samples_per_window <= 65535, "[sampling] more than 65535 samples per batch window"),
        (10 <= config.sampling.drain_interval_ms <= 500, "[sampling] drain_interval_ms must be 10..500"),
        (config.outbox.max_bytes >= 65536, "[outbox] max_bytes must be at least 65536 (64 KiB)"),
        (1 <= config.outbox.commit_batches <= 64, "[outbox] commit_batches must be 1..64"),
        (0.1 <= config.outbox.commit_interval_s <= 60, "[outbox] commit_interval_s must be 0.1..60 s"),
        (config.outbox.replay_rate_per_s > 0, "[outbox] replay_rate_per_s must be positive"),
        (1 <= config.outbox.max_inflight <= 1000, "[outbox] max_inflight must be 1..1000"),
        (config.outbox.ack_timeout_s >= 1, "[outbox] ack_timeout_s must be at least 1"),
        (config.status.heartbeat_s >= 1, "[status] heartbeat_s must be at least 1"),
        (0.01 <= config.broker.reconnect_base_s <= 60, "[broker] reconnect_base_s must be 0.01..60 s"),
        (
            config.broker.reconnect_base_s <= config.broker.reconnect_cap_s <= 3600,
            "[broker] reconnect_cap_s must be reconnect_base_s..3600 s",
        ),
        (1 <= config.broker.stable_connection_s <= 3600, "[broker] stable_connection_s must be 1..3600 s"),
        (1 <= config.outbox.memory_batches <= 100_000, "[outbox] memory_batches must be 1..100000"),
        (0 <= config.clock.hold_unsynced_s <= 7 * 86_400, "[clock] hold_unsynced_s must be 0..604800 s (7 days)"),
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
        for key, value in dataclasses.asdict(getattr(config, name)).items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))
