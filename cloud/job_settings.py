"""Settings of the telemetry ingest job, passed to the job as a JSON file readable only by its owner.

Each setting is declared once (fleetsense.settings_spec): its default, bounds, unit, group and doc sit on its field,
and the checks, the `--set name=value` parsing and the docs' table (docs/operations.md, "Job settings") are derived.
What the analysis does per vehicle is the `stream` group, StreamSettings (cloud/vehicle_stream.py), declared there
once; the file and the command line name its settings flat, beside the others, as they always did.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleetsense.cloud.cassandra_session import CqlLogin
from fleetsense.cloud.host_list import parse_host_list
from fleetsense.cloud.stream_settings import StreamSettings
from fleetsense.cloud.write_target import WRITES, WRITES_ALL, WRITES_RESULTS, WriteTarget, check_keyspace_name

from fleetsense import settings_spec
from fleetsense.errors import ConfigError
from fleetsense.settings_spec import Setting, about, setting

WHAT = "job setting"
EXCHANGE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,255}")  # AMQP 0-9-1's exchange names


def _connection(doc: str) -> dict[str, Setting]:
    """Where the job connects and with which secret: from the stack, never from the command line."""
    return about(doc=doc, group="connection", settable=False)


@dataclass(frozen=True, kw_only=True)
class IngestJobSettings:
    amqp_host: str = field(
        metadata=_connection("the broker's host, or a cluster's brokers separated by commas (tried in turn)")
    )
    amqp_port: int = field(metadata=_connection("the broker's AMQP port"))
    amqp_vhost: str = field(metadata=_connection("the broker's virtual host of the fleet"))
    amqp_username: str = field(metadata=_connection("the job's broker user"))
    amqp_password: str = field(metadata=_connection("the job's broker password"))
    amqp_queue: str = field(metadata=about(doc="the telemetry queue the job reads", group="source"))
    amqp_status_queue: str = setting("fleet.status", doc="the status queue the job reads", group="source")
    amqp_prefetch: int = setting(
        30_000,
        least=1,
        unit="messages",
        group="source",
        # Acks wait for the covering checkpoint, so this must hold a reader's share of (checkpoint interval +
        # checkpoint duration) x message rate, or the readers stall between checkpoints.
        doc="unacknowledged messages per reader; must hold a reader's share of a checkpoint interval's messages",
    )
    amqp_heartbeat_s: int = setting(
        5,
        least=1,
        most=60,  # the connector's bounds (AmqpConnectionConfig); 0 would switch heartbeats off
        unit="s",
        group="source",
        # A TaskManager cut off from the network keeps its readers' unacknowledged messages until the broker gives
        # up on its connection (after about twice this), while the job restarted elsewhere reads on: they must come
        # back within gap_wait_ms or they arrive as a late batch (issue 16, the partitioned TaskManager).
        doc="the AMQP heartbeat; the broker hands a dead reader's messages to the others after about twice this,"
        " which must fit in gap_wait_ms",
    )
    readers: int = setting(
        1,
        least=1,
        group="source",
        # One reader measured faster than two on 2 cores (18.2k vs 12.4k samples/s at 500 vehicles): each reader
        # also runs a Python key selector competing for the same CPU.
        doc="source parallelism (competing consumers of the queue)",
    )
    bundle_messages: int = setting(
        200, least=1, unit="messages", group="source", doc="telemetry messages of one shard per Flink record, at most"
    )
    bundle_linger_ms: int = setting(
        100,
        least=0,
        unit="ms",
        group="source",
        # Without it a job that keeps up polls each delivery on its own and pays the per-record cost per message.
        doc="how long a bundle's oldest message waits for more (latency vs CPU)",
    )
    cassandra_host: str = field(
        metadata=_connection("a Cassandra contact point, or a ring's nodes separated by commas (each a contact point)")
    )
    cassandra_port: int = field(metadata=_connection("its CQL port"))
    cassandra_local_dc: str = setting(
        "datacenter1",
        group="sink",
        # LOCAL_QUORUM counts the replicas of this datacenter, and the drivers send requests only to its nodes.
        doc="the Cassandra datacenter the job writes to (a single node's is datacenter1; `cluster up`'s ring is dc1)",
    )
    cassandra_username: str = field(
        default="", metadata=_connection("the job's own Cassandra user (empty: a cluster without login)")
    )
    cassandra_password: str = field(default="", metadata=_connection("its password"))
    keyspace: str = field(metadata=_connection("the keyspace the job writes (and reads vehicle profiles from)"))
    results_keyspace: str = field(
        default="",
        metadata=_connection(
            "the keyspace of the result version the job writes (the versioned tables: events, minutes, scores, "
            'trips); "" means `keyspace`'
        ),
    )
    connector_jar: str = field(metadata=_connection("the AMQP source connector's jar"))
    checkpoint_interval_ms: int = setting(
        1000, least=10, unit="ms", group="flink", doc="how often Flink checkpoints (10 ms is Flink's own minimum)"
    )
    checkpoint_alignment_timeout_ms: int = setting(
        200,
        least=0,
        unit="ms",
        group="flink",
        doc="then the checkpoint barrier overtakes buffered bundles (unaligned)",
    )
    buffer_timeout_ms: int = setting(
        20,
        least=-1,
        unit="ms",
        group="flink",
        doc="how long a network buffer may wait to fill (latency vs per-record overhead); -1: only when full",
    )
    parallelism: int = setting(
        4,
        least=1,
        group="flink",
        doc="of the analysis operator: all 4 slots, so one waits on Cassandra while another computes; "
        "at most the shard count",
    )
    restart_attempts: int = setting(
        1000, least=0, group="flink", doc="fixed-delay restarts before the job gives up (Cassandra or broker down)"
    )
    restart_delay_ms: int = setting(5000, least=0, unit="ms", group="flink", doc="the wait before each restart")
    python_execution_mode: str = setting(
        "thread", choices=("thread", "process"), group="flink", doc="where Flink runs the Python functions"
    )
    python_bundle_size: int = setting(
        500, least=1, unit="elements", group="flink", doc="process mode only: elements per Python bundle"
    )
    python_bundle_time_ms: int = setting(
        100, least=1, unit="ms", group="flink", doc="process mode only: the longest a Python bundle waits"
    )
    shards: int = setting(
        16,
        least=1,
        group="state",
        doc="vehicles are hashed into this many shards, the unit of keyed state: the analysis parallelism can grow "
        "to it. Fixed for a job's life (an upgrade keeps it)",
    )
    vehicle_cache_size: int = setting(
        20_000, least=1, unit="vehicles", group="state", doc="live vehicle states kept unpickled per subtask"
    )
    profile_refresh_s: float = setting(
        60.0,
        least=0.1,
        unit="s",
        group="state",
        doc="how often each analysis subtask re-reads every vehicle's profile (class)",
    )
    sink: str = setting(
        "java",
        choices=("java", "python"),
        group="sink",
        doc="who writes the analysis' rows: `java`, the connector's asynchronous Cassandra sink after the Python "
        "operator, or `python`, the operator itself, waiting for each bundle's writes (for comparison)",
    )
    max_writes: int = setting(128, least=1, unit="writes", group="sink", doc="Cassandra writes in flight per subtask")
    write_attempts: int = setting(
        5,
        least=1,
        unit="attempts",
        group="sink",
        doc="sends of a write that times out (back-off 0.1 s, doubling) before the job restarts from its checkpoint",
    )
    write_batch_rows: int = setting(
        16, least=1, unit="rows", group="sink", doc="python sink: rows per unlogged batch (1: every row alone)"
    )
    write_batch_kb: int = setting(
        40,
        least=1,
        unit="kB",
        group="sink",
        doc="python sink: bytes per batch; keep it under the cluster's batch_size_fail_threshold_in_kb (50 by default)",
    )
    events_exchange: str = setting(
        "fleet.events",
        group="sink",
        # The broker topology declares fleet.events and lets the job's user write it (gateway/topology.py).
        doc="java sink: the topic exchange each stored event is published to once its row is written, for the API's "
        'live feed (docs/service.md, "Live events"); "" publishes nothing',
    )
    writes: str = setting(
        WRITES_ALL,
        choices=WRITES,
        group="sink",
        doc="`all`, or `results`: only the versioned tables, into results_keyspace (a reprocessing job: no ingest "
        'facts, no status, no live events, so events_exchange must be "")',
    )
    stream: StreamSettings = field(default_factory=StreamSettings)  # the `stream` group, named flat in the file
    job_name: str = field(default="fleetsense-telemetry-ingest", metadata=_connection("the Flink job's name"))

    def __post_init__(self) -> None:
        """Refuse values the job could not run with, naming the setting, before anything is submitted."""
        from fleetsense.cloud.profiles import check_vehicle_class
        from fleetsense.cloud.shard_keys import MAX_PARALLELISM

        settings_spec.check(self, what=WHAT)
        parse_host_list(self.amqp_host, what=f"{WHAT} amqp_host")
        parse_host_list(self.cassandra_host, what=f"{WHAT} cassandra_host")
        if not self.cassandra_local_dc.strip():
            raise ConfigError(f"{WHAT} cassandra_local_dc is empty", hint="name the datacenter (nodetool status)")
        if self.parallelism > min(self.shards, MAX_PARALLELISM):
            raise ConfigError(
                f"{WHAT} parallelism={self.parallelism} is more than the {self.shards} shards can use",
                hint=f"use at most {min(self.shards, MAX_PARALLELISM)}, or more shards at a fresh submit",
            )
        check_vehicle_class(self.stream.vehicle_class)
        if 2 * self.amqp_heartbeat_s * 1000 > self.stream.gap_wait_ms:
            raise ConfigError(
                f"{WHAT}s amqp_heartbeat_s={self.amqp_heartbeat_s} and gap_wait_ms={self.stream.gap_wait_ms}: a dead"
                f" reader's messages come back after up to {2 * self.amqp_heartbeat_s} s, later than a gap is waited"
                " for, and would be skipped",
                hint=f"amqp_heartbeat_s at most {self.stream.gap_wait_ms // 2000}, or gap_wait_ms at least"
                f" {2 * self.amqp_heartbeat_s * 1000}",
            )
        if self.events_exchange and not EXCHANGE_NAME.fullmatch(self.events_exchange):
            raise ConfigError(
                f"{WHAT} events_exchange={self.events_exchange!r} is no exchange name",
                hint='letters, digits, "-", "_", ".", ":" (at most 255), or "" for no live feed',
            )
        if bool(self.cassandra_username) != bool(self.cassandra_password):
            raise ConfigError(f"{WHAT}s cassandra_username and cassandra_password: give both or neither")
        if self.results_keyspace:
            check_keyspace_name(self.results_keyspace, what=f"{WHAT} results_keyspace")
        self._check_results_only()

    def _check_results_only(self) -> None:
        """A results-only job (a replay) must not reach anything a live reader or a receiver sees."""
        if self.writes != WRITES_RESULTS:
            return
        if self.events_exchange:
            raise ConfigError(
                f"{WHAT}s writes=results and events_exchange={self.events_exchange!r}: a replay would publish old "
                "events as live ones (the live feed, webhooks and the review queue would get them again)",
                hint='set events_exchange="" with writes=results',
            )
        if self.write_target().results_in == self.keyspace:
            raise ConfigError(
                f"{WHAT}s writes=results into the job's own keyspace {self.keyspace!r}: a replay would overwrite "
                "and mix with the live results",
                hint="set results_keyspace to the new version's keyspace (fleetsense_r<N>, made by "
                "schema.apply_result_schema)",
            )

    def __repr__(self) -> str:
        return f"IngestJobSettings(job_name={self.job_name!r}, queue={self.amqp_queue!r}, keyspace={self.keyspace!r})"

    def write_target(self) -> WriteTarget:
        """Which keyspace each of the job's statements writes, and which it writes at all (cloud/write_target.py)."""
        return WriteTarget(keyspace=self.keyspace, results_keyspace=self.results_keyspace, writes=self.writes)

    def cassandra_login(self) -> CqlLogin | None:
        """The job's Cassandra login for open_cluster, None when the cluster needs none."""
        if not self.cassandra_username:
            return None
        return CqlLogin(username=self.cassandra_username, password=self.cassandra_password)

    def with_overrides(self, overrides: dict[str, str]) -> IngestJobSettings:
        """`key=value` settings from the command line, converted to each setting's type and checked; where the job
        connects and its secrets are not settable."""
        values = settings_spec.parse_overrides(all_settings(), overrides, what=WHAT)
        return _build(_flat(self) | values)

    def to_json(self) -> str:
        return json.dumps(_flat(self), indent=2)

    @classmethod
    def from_file(cls, path: Path) -> IngestJobSettings:
        try:
            return _build(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read job settings from {path}: {exc}") from exc


def all_settings() -> tuple[Setting, ...]:
    """Every job setting, the stream group's included, in the order of the docs' table."""
    return settings_spec.describe(IngestJobSettings) + settings_spec.describe(StreamSettings)


def _flat(settings: IngestJobSettings) -> dict[str, Any]:
    """The settings as one flat map (the file's and the command line's names)."""
    own = {name: value for name, value in asdict(settings).items() if name != "stream"}
    return own | asdict(settings.stream)


def _build(values: dict[str, Any]) -> IngestJobSettings:
    stream_names = {f.name for f in dataclasses.fields(StreamSettings)}
    stream = StreamSettings(**{name: value for name, value in values.items() if name in stream_names})
    return IngestJobSettings(
        **{name: value for name, value in values.items() if name not in stream_names}, stream=stream
    )
