"""Settings of the telemetry ingest job, passed to the job as a JSON file readable only by its owner."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fleetsense.cloud.cassandra_session import CqlLogin

from fleetsense.errors import ConfigError

# Where the job connects and with which secret come from the stack, not from the command line.
NOT_SETTABLE = frozenset(
    {
        "amqp_host",
        "amqp_port",
        "amqp_vhost",
        "amqp_username",
        "amqp_password",
        "cassandra_host",
        "cassandra_port",
        "cassandra_username",
        "cassandra_password",
        "connector_jar",
        "keyspace",
        "job_name",
    }
)


# The least value of each numeric setting: counts start at 1; times may be 0 (off or at once); a buffer timeout of
# -1 makes Flink send a network buffer only when it is full.
_LEAST: dict[str, float] = {
    "amqp_prefetch": 1,
    "readers": 1,
    "checkpoint_interval_ms": 10,  # Flink's own minimum
    "checkpoint_alignment_timeout_ms": 0,
    "buffer_timeout_ms": -1,
    "parallelism": 1,
    "restart_attempts": 0,
    "restart_delay_ms": 0,
    "python_bundle_size": 1,
    "python_bundle_time_ms": 1,
    "bundle_messages": 1,
    "bundle_linger_ms": 0,
    "shards": 1,
    "vehicle_cache_size": 1,
    "max_writes": 1,
    "write_batch_rows": 1,
    "write_batch_kb": 1,
    "profile_refresh_s": 0.1,
    "gap_wait_ms": 0,
}


@dataclass(frozen=True, kw_only=True)
class IngestJobSettings:
    amqp_host: str
    amqp_port: int
    amqp_vhost: str
    amqp_username: str
    amqp_password: str
    amqp_queue: str
    amqp_status_queue: str = "fleet.status"
    # Unacked messages per reader. Acks wait for the covering checkpoint, so this must hold a reader's share of
    # (checkpoint interval + checkpoint duration) x message rate, or the readers stall between checkpoints.
    amqp_prefetch: int = 30_000
    # Source parallelism (competing consumers). One reader measured faster than two on 2 cores (18.2k vs 12.4k
    # samples/s at 500 vehicles): each reader also runs a Python key selector competing for the same CPU.
    readers: int = 1
    cassandra_host: str
    cassandra_port: int
    # The job's own Cassandra user (SELECT and MODIFY on the keyspace only); empty: a cluster without login.
    cassandra_username: str = ""
    cassandra_password: str = ""
    keyspace: str
    connector_jar: str
    checkpoint_interval_ms: int = 1000
    checkpoint_alignment_timeout_ms: int = 200  # then the barrier overtakes buffered bundles (unaligned)
    buffer_timeout_ms: int = 20  # how long a network buffer may wait to fill: latency vs per-record overhead
    parallelism: int = 4  # of the analysis operator: all 4 slots, so one waits on Cassandra while another computes
    restart_attempts: int = 1000  # fixed-delay restarts before the job gives up (Cassandra or broker down)
    restart_delay_ms: int = 5000
    python_execution_mode: str = "thread"  # or "process"
    # Process mode only: elements per Python bundle and the longest a bundle waits (latency vs overhead).
    python_bundle_size: int = 500
    python_bundle_time_ms: int = 100
    # Telemetry arrives in bundles of up to this many messages of one shard per Flink record.
    bundle_messages: int = 200
    # ... or as many as arrived while the oldest waited this long: without it a job that keeps up polls each
    # delivery on its own and pays the per-record cost per message (latency vs CPU).
    bundle_linger_ms: int = 100
    # Vehicles are hashed into this many shards, the unit of keyed state: the analysis parallelism can grow up
    # to it. Fixed for a job's life: an upgrade with another shard count could not find its vehicles' state.
    shards: int = 16
    vehicle_cache_size: int = 20_000  # live vehicle states kept unpickled per subtask
    max_writes: int = 128  # Cassandra writes in flight per subtask
    # Rows per unlogged batch (1: every row alone) and bytes per batch: keep this under the cluster's
    # batch_size_fail_threshold_in_kb (50 by default), and under batch_size_warn_threshold_in_kb (5) to avoid a
    # warning per batch in Cassandra's log.
    write_batch_rows: int = 16
    write_batch_kb: int = 40
    vehicle_class: str = "van"  # event thresholds (cloud/analytics/events.py)
    profile_refresh_s: float = 60.0  # how often each analysis subtask re-reads every vehicle's profile (class)
    gap_wait_ms: int = 10_000  # how long a vehicle's batch waits for a missing predecessor
    job_name: str = "fleetsense-telemetry-ingest"

    def __post_init__(self) -> None:
        """Refuse values the job could not run with, naming the setting, before anything is submitted."""
        from fleetsense.cloud.profiles import check_vehicle_class
        from fleetsense.cloud.shard_keys import MAX_PARALLELISM

        for name, least in _LEAST.items():
            if getattr(self, name) < least:
                raise ConfigError(f"job setting {name}={getattr(self, name)} is below its least value, {least}")
        if self.parallelism > min(self.shards, MAX_PARALLELISM):
            raise ConfigError(
                f"job setting parallelism={self.parallelism} is more than the {self.shards} shards can use",
                hint=f"use at most {min(self.shards, MAX_PARALLELISM)}, or more shards at a fresh submit",
            )
        if self.python_execution_mode not in ("thread", "process"):
            raise ConfigError(f"job setting python_execution_mode={self.python_execution_mode!r}: thread or process")
        check_vehicle_class(self.vehicle_class)
        if bool(self.cassandra_username) != bool(self.cassandra_password):
            raise ConfigError("job settings cassandra_username and cassandra_password: give both or neither")

    def __repr__(self) -> str:
        return f"IngestJobSettings(job_name={self.job_name!r}, queue={self.amqp_queue!r}, keyspace={self.keyspace!r})"

    def cassandra_login(self) -> CqlLogin | None:
        """The job's Cassandra login for open_cluster, None when the cluster needs none."""
        if not self.cassandra_username:
            return None
        return CqlLogin(username=self.cassandra_username, password=self.cassandra_password)

    def with_overrides(self, overrides: dict[str, str]) -> IngestJobSettings:
        """`key=value` settings from the command line, converted to each field's type; secrets are not settable."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        values: dict[str, Any] = {}
        for key, text in overrides.items():
            if key not in fields or key in NOT_SETTABLE:
                settable = ", ".join(sorted(set(fields) - NOT_SETTABLE))
                raise ConfigError(f"unknown job setting {key!r}", hint=f"settable: {settable}")
            kind = type(getattr(self, key))
            try:
                values[key] = kind(text)
            except ValueError as exc:
                raise ConfigError(f"job setting {key}={text!r} is not a {kind.__name__}") from exc
        return dataclasses.replace(self, **values)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_file(cls, path: Path) -> IngestJobSettings:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read job settings from {path}: {exc}") from exc
