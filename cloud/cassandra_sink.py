"""The connector's Java Cassandra sink (io.fleetsense.flink.cassandra.CassandraSink) as a PyFlink Sink, given the
job's prepared INSERTs, each with its keyspace filled in (cloud/write_target.py), and their consistency levels from
the table declarations (WRITE_CONSISTENCY), so the Java side repeats nothing about a table or a keyspace. Its records
are cloud/sink_records.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetsense.cloud.cassandra_session import Login
from fleetsense.cloud.tables import EVENTS_BY_VEHICLE, WRITE_CONSISTENCY
from fleetsense.cloud.write_target import WRITES_ALL, WRITES_RESULTS, WriteTarget

from fleetsense.errors import ConfigError, FleetsenseError

if TYPE_CHECKING:
    from pyflink.datastream.connectors import Sink

JAVA_SINK_CLASS = "io.fleetsense.flink.cassandra.CassandraSink"
FIRST_BACKOFF_MS = 100  # the first retry's wait, doubling (the Python writer's too)
# The write whose acknowledgement publishes an event: vehicle_events carries every field of a live event (its
# detection time included), and each event has exactly one row there.
LIVE_EVENT_STATEMENT = EVENTS_BY_VEHICLE.write


@dataclass(frozen=True, kw_only=True)
class LiveEventSettings:
    """Where the sink publishes each stored event (docs/service.md, "Live events"): the brokers, virtual host, user
    and heartbeat of the job's AMQP source, and the topic exchange."""

    host: str  # one broker, or a cluster's separated by commas
    port: int
    virtual_host: str
    username: str
    password: str
    heartbeat_s: int
    exchange: str

    def __repr__(self) -> str:  # never let a password reach a log line
        return f"LiveEventSettings({self.username}@{self.host}:{self.port}/{self.virtual_host}, {self.exchange!r})"


@dataclass(frozen=True, kw_only=True)
class CassandraSinkSettings:
    host: str  # one node, or a ring's nodes separated by commas
    port: int
    keyspace: str
    results_keyspace: str = ""  # where the result statements write ("": `keyspace`)
    writes: str = WRITES_ALL  # `results`: only the result statements are prepared (the binder drops the rest)
    local_dc: str = ""  # the datacenter written to; "": the contact points'
    login: Login | None = None
    max_in_flight: int = 128
    attempts: int = 5
    first_backoff_ms: int = FIRST_BACKOFF_MS
    request_timeout_ms: int = 10_000  # a write not answered by then is retried (as the Python driver's default)
    live_events: LiveEventSettings | None = None  # None: no live feed

    def __post_init__(self) -> None:
        if self.writes == WRITES_RESULTS and self.live_events is not None:
            raise ConfigError(
                "a results-only Cassandra sink must not publish live events (a replay would re-send old events)",
                hint='leave live_events out (job setting events_exchange="")',
            )

    @property
    def target(self) -> WriteTarget:
        return WriteTarget(keyspace=self.keyspace, results_keyspace=self.results_keyspace, writes=self.writes)

    def __repr__(self) -> str:  # never let a password reach a log line
        return (
            f"CassandraSinkSettings({self.host}:{self.port}, keyspace={self.keyspace!r}, "
            f"results_keyspace={self.target.results_in!r}, writes={self.writes!r})"
        )


def cassandra_sink(settings: CassandraSinkSettings) -> Sink:
    """The Java sink for `stream.sink_to(...)`; the connector jar must be on the job's classpath (env.add_jars)."""
    from py4j.java_gateway import JavaClass
    from pyflink.datastream.connectors import Sink
    from pyflink.java_gateway import get_gateway

    java_class: Any = get_gateway().jvm
    for part in JAVA_SINK_CLASS.split("."):
        java_class = getattr(java_class, part)
    if not isinstance(java_class, JavaClass):  # Py4J turns an unknown class into a package object
        raise FleetsenseError(
            f"the Cassandra sink class {JAVA_SINK_CLASS} is not on the JVM classpath",
            hint="build the connector with `python -m fleetsense.cloud.connector_build` and call"
            " env.add_jars(jar_path.as_uri()) first",
        )
    builder = java_class.builder().setContact(settings.host, settings.port).setLocalDatacenter(settings.local_dc)
    if settings.login is not None:
        builder = builder.setLogin(settings.login.username, settings.login.password)
    for name, cql in settings.target.statements().items():
        builder = builder.addStatement(name, cql, WRITE_CONSISTENCY[name])
    builder = (
        builder.setMaxInFlight(settings.max_in_flight)
        .setRetries(settings.attempts, settings.first_backoff_ms)
        .setRequestTimeoutMs(settings.request_timeout_ms)
    )
    live = settings.live_events
    if live is not None:
        builder = builder.setLiveEvents(
            live.host,
            live.port,
            live.virtual_host,
            live.username,
            live.password,
            live.heartbeat_s,
            live.exchange,
            LIVE_EVENT_STATEMENT,
        )
    try:
        return Sink(builder.build())
    except Exception as exc:  # Py4JJavaError carries the Java validation message
        raise ConfigError(f"Cassandra sink settings rejected: {exc}", hint=f"check {settings!r}") from exc
