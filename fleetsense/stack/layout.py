"""Where the local stack keeps its state and which loopback ports each component listens on."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from fleetsense.errors import ConfigError, StackError

DATA_DIR_ENV = "FLEETSENSE_DATA_DIR"
CASSANDRA_ENV = "FLEETSENSE_CASSANDRA"
BUILD_DIR_ENV = "FLEETSENSE_BUILD_DIR"
TEST_PORTS_OFFSET_ENV = "FLEETSENSE_TEST_PORTS_OFFSET"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, kw_only=True)
class Ports:
    """Every port the local stack binds, all on loopback.

    Client-facing ports keep their well-known numbers; the private ones (Erlang distribution, epmd) are moved
    off the defaults so the stack never shares an epmd or clashes with a system RabbitMQ.
    """

    amqp: int = 5672
    mqtt: int = 1883
    mqtts: int = 8883
    rabbitmq_management: int = 15672
    rabbitmq_dist: int = 15679
    rabbitmq_prometheus: int = 15692  # rabbitmq_prometheus's /metrics, on loopback
    epmd: int = 14369
    cql: int = 9042
    cassandra_storage: int = 7000
    cassandra_ssl_storage: int = 7001
    flink_rest: int = 8081
    flink_rpc: int = 6123
    flink_blob: int = 6124
    # Each TaskManager takes one RPC port from the range starting here.
    flink_taskmanager_rpc_first: int = 6130
    # Flink's PrometheusReporter: the JobManager and each TaskManager take one port from the range starting here.
    flink_prometheus_first: int = 9250
    api: int = 8480  # `fleetsense serve`, the service layer's HTTP API

    @classmethod
    def for_tests(cls) -> Ports:
        """A disjoint set for the test suite, so a developer's running stack is never disturbed."""
        return cls(
            amqp=25672,
            mqtt=21883,
            mqtts=28883,
            rabbitmq_management=25673,
            rabbitmq_dist=25674,
            rabbitmq_prometheus=25692,
            epmd=25675,
            cql=29042,
            cassandra_storage=27000,
            cassandra_ssl_storage=27001,
            flink_rest=28081,
            flink_rpc=26123,
            flink_blob=26124,
            flink_taskmanager_rpc_first=26130,
            flink_prometheus_first=29250,
            api=28480,
        )

    def offset(self, delta: int) -> Ports:
        """Every port moved by `delta`, for running a second stack beside the first."""
        return Ports(**{name: value + delta for name, value in vars(self).items()})

    def fixed(self) -> dict[str, int]:
        """Name -> port for every single port that `up` must find free."""
        return {name: value for name, value in vars(self).items() if not name.endswith("_first")}


@dataclass(frozen=True, kw_only=True)
class ExternalCassandra:
    """A Cassandra cluster the stack does not run (production is 4.1/5.0)."""

    host: str
    port: int

    @classmethod
    def parse(cls, spec: str) -> ExternalCassandra:
        host, sep, port_text = spec.rpartition(":")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(
                f"--cassandra expects HOST:PORT, got {spec!r}",
                hint="for example --cassandra cassandra.example.internal:9042",
            )
        return cls(host=host, port=int(port_text))


def repo_root() -> Path | None:
    """The checkout this package runs from, or None when installed from a wheel."""
    candidate = Path(__file__).resolve().parents[2]
    return candidate if (candidate / "pyproject.toml").is_file() else None


def default_data_dir() -> Path:
    if env := os.environ.get(DATA_DIR_ENV):
        return Path(env)
    root = repo_root()
    return (root / ".fleetsense") if root else Path.home() / ".local/share/fleetsense"


def default_build_dir() -> Path:
    """Downloaded distributions (Cassandra) and build outputs (the connector jar); never committed."""
    if env := os.environ.get(BUILD_DIR_ENV):
        return Path(env)
    root = repo_root()
    return (root / "build") if root else Path.home() / ".cache/fleetsense"


PROFILE_ENV = "FLEETSENSE_PROFILE"
# "dev": plain MQTT and MQTT over TLS; "secure": MQTT over TLS only.
PROFILES = ("dev", "secure")


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """One local stack: its data directory, ports, node names and sizes."""

    data_dir: Path = field(default_factory=default_data_dir)
    build_dir: Path = field(default_factory=default_build_dir)
    ports: Ports = field(default_factory=Ports)
    name: str = "fleetsense"
    # "dev": MQTT on 1883 and MQTT over TLS on 8883; "secure": TLS only, the plain listener is off.
    profile: str = "dev"
    cassandra: ExternalCassandra | None = None
    flink_taskmanagers: int = 2
    # 4 slots for the live job (its parallelism) and 2 for a reprocessing job beside it (docs/reprocessing.md).
    flink_slots_per_taskmanager: int = 3
    cassandra_heap_mb: int = 512
    startup_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        # Every component gets these paths in its environment and some change directory or user on the way
        # (RabbitMQ's HOME, its cookie file): a relative --data-dir broke the broker's boot ("Failed to create
        # cookie file ... enoent"), so paths are made absolute once, here.
        object.__setattr__(self, "data_dir", Path(self.data_dir).absolute())
        object.__setattr__(self, "build_dir", Path(self.build_dir).absolute())
        if self.profile not in PROFILES:
            raise StackError(f"unknown profile {self.profile!r}", hint=f"choose one of {', '.join(PROFILES)}")

    @classmethod
    def for_tests(cls, data_dir: Path) -> StackConfig:
        """The test suite's stack; $FLEETSENSE_TEST_PORTS_OFFSET moves its ports and node names, so two
        checkouts can run their integration tests side by side on one machine."""
        offset_text = os.environ.get(TEST_PORTS_OFFSET_ENV, "0")
        if not offset_text.isdigit() or int(offset_text) > 3000:
            raise StackError(
                f"${TEST_PORTS_OFFSET_ENV} must be a whole number 0..3000, got {offset_text!r}",
                hint="for example FLEETSENSE_TEST_PORTS_OFFSET=100",
            )
        offset = int(offset_text)
        name = "fleetsense-test" if offset == 0 else f"fleetsense-test{offset}"
        return cls(data_dir=data_dir, ports=Ports.for_tests().offset(offset), name=name)

    def with_cassandra(self, spec: str | None) -> StackConfig:
        spec = spec or os.environ.get(CASSANDRA_ENV)
        return replace(self, cassandra=ExternalCassandra.parse(spec)) if spec else self

    def component_dir(self, component: str) -> Path:
        return self.data_dir / component

    def log_dir(self, component: str) -> Path:
        return self.data_dir / "logs" / component

    @property
    def profile_file(self) -> Path:
        """Where `up` records the profile it started with, so later commands provision devices to match."""
        return self.data_dir / "profile"

    def with_profile(self, chosen: str | None) -> StackConfig:
        """The profile given (flag or $FLEETSENSE_PROFILE), else the one this data dir was started with."""
        chosen = chosen or os.environ.get(PROFILE_ENV)
        if not chosen and self.profile_file.exists():
            chosen = self.profile_file.read_text().strip()
        return replace(self, profile=chosen) if chosen else self

    @property
    def tls_dir(self) -> Path:
        return self.secrets_dir / "tls"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def cql_contact(self) -> tuple[str, int]:
        if self.cassandra:
            return self.cassandra.host, self.cassandra.port
        return LOOPBACK, self.ports.cql
