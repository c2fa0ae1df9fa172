"""Writing the job's results to Cassandra: prepared statements, deterministic keys (so a replay overwrites
instead of duplicating), bounded concurrency, retries on time-outs, and a synchronous `flush` the operator calls
before it finishes an element, so every write is durable before the checkpoint that acks its input completes."""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from fleetsense.cloud.table_model import Write as Write
from fleetsense.cloud.tables import REJECTED_BY_SOURCE, WRITE_CONSISTENCY, WRITTEN
from fleetsense.cloud.write_target import WriteTarget

log = logging.getLogger(__name__)

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
EXCERPT_BYTES = 256  # enough to see what an unreadable message looked like, bounded so junk cannot fill a table


def hour_bucket_ms(time_us: int) -> int:
    return (time_us - time_us % HOUR_US) // 1000


def day_bucket(time_us: int) -> date:
    """The UTC day of a time: a day key (CQL `date`; the driver binds a datetime.date and reads back a
    cassandra.util.Date, which compares equal to it)."""
    return datetime.fromtimestamp(time_us / 1e6, UTC).date()


def day_buckets(start_us: int, end_us: int) -> list[date]:
    """Every UTC day bucket that [start_us, end_us] touches, oldest first: a drive across midnight has rows in two."""
    if end_us < start_us:
        raise ValueError(f"end_us {end_us} is before start_us {start_us}")
    day_us = 86_400_000_000
    return [day_bucket(day_start) for day_start in range(start_us - start_us % day_us, end_us + 1, day_us)]


def rejected_message_id(routing_key: str, body: bytes) -> str:
    """The same bad message redelivered maps to the same row."""
    return hashlib.sha256(routing_key.encode() + b"\0" + body).hexdigest()[:32]


def rejected_row(source: str, routing_key: str, body: bytes, reason: str, *, now_ms: int, whole: bool = False) -> Write:
    """A rejection row: an excerpt of the message, or with `whole` (a message that failed inside the job, not one
    that is bad) all of it, so it can be processed again once the fault is fixed."""
    return REJECTED_BY_SOURCE.row(
        source=source,
        day_bucket=day_bucket(now_ms * 1000),
        message_id=rejected_message_id(routing_key, body),
        received_at=now_ms,
        routing_key=routing_key[:300],
        reason=reason[:1000],
        excerpt=body if whole else body[:EXCERPT_BYTES],
        size_bytes=len(body),
    )


# The job's prepared statements, by name, derived from the declarations (cloud/tables.py, `write=`).
STATEMENTS: dict[str, str] = {name: table.insert_cql() for name, table in WRITTEN.items()}

# How many of a statement's first values are its row's primary key (a declaration lists its key columns first).
KEY_VALUES: dict[str, int] = {name: len(table.key_names) for name, table in WRITTEN.items()}
# Statements that carry their own write timestamp (their last bound value): of two writes of such a row the one
# with the newer timestamp wins, whatever the order they are sent in, and whatever batch they share.
OWN_TIMESTAMP = frozenset(name for name, table in WRITTEN.items() if table.own_timestamp)


def coalesce(writes: Sequence[Write]) -> list[Write]:
    """Each row's last write, in the order rows were first written; of an OWN_TIMESTAMP row, its write with the
    newest timestamp (the last of equals), which is the one the database would keep. A bundle rewrites some rows
    (a minute, the open trip, a day's score, a vehicle's latest batch): only that write matters, and once each row
    goes once, the writes can share batches and be sent in any order."""
    last: dict[tuple[Any, ...], Write] = {}
    for write in writes:
        name, values = write
        key = (name, *values[: KEY_VALUES[name]])
        if name in OWN_TIMESTAMP and (kept := last.get(key)) is not None and kept[1][-1] > values[-1]:
            continue
        last[key] = write
    return list(last.values())


def as_target(target: str | WriteTarget) -> WriteTarget:
    """A write target; a bare keyspace name means every statement written there (the live job's default)."""
    return WriteTarget(keyspace=target) if isinstance(target, str) else target


class Binder:
    """The job's prepared statements and the binding of a write to one: values serialised by the driver for their
    columns, at each statement's write consistency as its table declares it (tables.WRITE_CONSISTENCY, which the
    Java sink is given too), each prepared in the keyspace its target says (cloud/write_target.py). A statement the
    target does not keep is not prepared, and its writes are dropped here, before any sink."""

    def __init__(self, session: Any, target: str | WriteTarget) -> None:
        from cassandra import ConsistencyLevel

        self.target = as_target(target)
        self.keyspace = self.target.keyspace
        self.prepared: dict[str, Any] = {}
        for name, cql in self.target.statements().items():
            prepared = session.prepare(cql)
            prepared.consistency_level = ConsistencyLevel.name_to_value[WRITE_CONSISTENCY[name]]
            self.prepared[name] = prepared
        self.unwritable = 0  # rows whose values could not be bound, recorded as rejections instead (or dropped)

    def rows(self, writes: Sequence[Write]) -> list[Write]:
        """The writes this job sends, each row once (`coalesce`)."""
        return coalesce(self.target.kept(writes))

    def bind(self, name: str, values: Sequence[Any]) -> tuple[str, Any] | None:
        """(statement name, bound statement); a row whose values its columns cannot hold (a fault of ours:
        validation should have stopped them) becomes a rejection row saying so, instead of failing the bundle and
        restarting the job on the same input for ever. A results-only job writes no rejections: it logs the row
        and drops it (None); the live job has recorded the input it came from."""
        try:
            return name, self.prepared[name].bind(values)
        except (TypeError, ValueError, OverflowError, struct.error) as exc:
            self.unwritable += 1
            reason = f"the job produced a {name} row its table cannot hold: {type(exc).__name__}: {exc}"
            rejected, row = rejected_row(
                "", f"({name} row)", repr(values).encode(), reason, now_ms=int(time.time() * 1000)
            )
            if not self.target.keeps(rejected):
                log.error("a %s row cannot be written (%s): dropped (this job writes results only)", name, exc)
                return None
            log.error("a %s row cannot be written (%s): recorded as a rejection instead", name, exc)
            return rejected, self.prepared[rejected].bind(row)

    def sink_record(self, writes: Sequence[Write]) -> bytes | None:
        """The record of `writes` for the Java Cassandra sink (cloud/sink_records.py), each row once (`coalesce`),
        only those the target keeps; None when there is nothing to write."""
        from fleetsense.cloud.sink_records import encode

        bound = [b for name, values in self.rows(writes) if (b := self.bind(name, values)) is not None]
        if not bound:
            return None
        return encode([(name, statement.values) for name, statement in bound])


class CassandraWriter:
    """Executes named writes concurrently (at most `max_in_flight` at once) and waits for all of them: the
    Python write path (job setting `sink=python`; StoreStatus always), beside the Java sink."""

    def __init__(
        self,
        session: Any,
        target: str | WriteTarget,
        *,
        max_in_flight: int = 64,
        attempts: int = 5,
        first_backoff_s: float = 0.1,
        batch_rows: int = 16,
        batch_bytes: int = 40_000,
    ) -> None:
        self._session = session
        self.binder = Binder(session, target)
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self.max_in_flight = max_in_flight
        self.attempts = attempts
        self.first_backoff_s = first_backoff_s
        self.retries = 0  # time-outs retried since start (a metric)

    @property
    def unwritable(self) -> int:
        return self.binder.unwritable

    def write_all(self, writes: Sequence[Write]) -> None:
        """Return once every write is acknowledged; raise if one still fails after the retries, so that the job
        restarts from its last checkpoint and the broker redelivers (the writes are idempotent)."""
        pending = self.requests(writes)
        for attempt in range(self.attempts):
            failed: list[tuple[Request, BaseException]] = []
            for start in range(0, len(pending), self.max_in_flight):
                chunk = pending[start : start + self.max_in_flight]
                futures = [self._session.execute_async(statement, values) for statement, values in chunk]
                for write, future in zip(chunk, futures, strict=True):
                    try:
                        future.result()
                    except Exception as exc:
                        if not _retryable(exc):
                            raise
                        failed.append((write, exc))
            if not failed:
                return
            self.retries += len(failed)
            pending = [write for write, _ in failed]
            delay = self.first_backoff_s * 2**attempt
            log.warning("%d Cassandra write(s) timed out (%s); retrying in %.1f s", len(failed), failed[0][1], delay)
            time.sleep(delay)
        raise TimeoutError(f"{len(pending)} Cassandra write(s) still failing after {self.attempts} attempts")

    def requests(self, writes: Sequence[Write]) -> list[Request]:
        """What `write_all` sends for `writes`: their rows in unlogged batches of up to `batch_rows` rows and
        `batch_bytes`, one batch per replica and consistency level, because the driver's CPU per request was a
        fifth of the job's Python time. Each row goes once (`coalesce`), so a batch's one timestamp cannot reorder
        two writes of a row; a row written with its own timestamp (USING TIMESTAMP) keeps it inside a batch
        (Cassandra takes a statement's timestamp over the batch's)."""
        requests: list[Request] = []
        by_replica: dict[Any, list[Any]] = {}
        for name, values in self.binder.rows(writes):
            binding = self.binder.bind(name, values)
            if binding is None:
                continue
            bound = binding[1]
            if self.batch_rows <= 1:
                requests.append((bound, None))
                continue
            by_replica.setdefault((self._replica(bound), bound.consistency_level), []).append(bound)
        for rows in by_replica.values():
            requests += [(batch, None) for batch in _batches(rows, self.batch_rows, self.batch_bytes)]
        return requests

    def _replica(self, bound: Any) -> Any:
        """The first replica of the row's partition (None on a single node): a batch of one replica's rows is
        routed by the token-aware policy straight to it, so no coordinator forwards rows to other nodes."""
        metadata = self._session.cluster.metadata
        if len(metadata.all_hosts()) <= 1:
            return None
        # The statement's own keyspace: a result version's may be replicated unlike the main one.
        keyspace = getattr(bound, "keyspace", None) or self.binder.keyspace
        replicas = metadata.get_replicas(keyspace, bound.routing_key)
        return replicas[0].address if replicas else None


Request = tuple[Any, Any]  # (prepared statement or batch, bound values or None)


def batch_slices(row_bytes: Sequence[int], max_rows: int, max_bytes: int) -> list[tuple[int, int]]:
    """Consecutive [start, end) runs of rows, each at most `max_rows` rows and `max_bytes` bytes (a single row
    larger than that still goes, alone)."""
    slices: list[tuple[int, int]] = []
    start, size = 0, 0
    for index, n in enumerate(row_bytes):
        if index > start and (index - start >= max_rows or size + n > max_bytes):
            slices.append((start, index))
            start, size = index, 0
        size += n
    if start < len(row_bytes):
        slices.append((start, len(row_bytes)))
    return slices


def _batches(rows: list[Any], max_rows: int, max_bytes: int) -> list[Any]:
    from cassandra.query import BatchStatement, BatchType

    batches: list[Any] = []
    for start, end in batch_slices([sum(len(v) for v in row.values if v) for row in rows], max_rows, max_bytes):
        if end - start == 1:
            batches.append(rows[start])  # a batch of one is only overhead
            continue
        # Rows of one batch share a consistency level (`requests` groups them by it).
        batch = BatchStatement(batch_type=BatchType.UNLOGGED, consistency_level=rows[start].consistency_level)
        for row in rows[start:end]:
            batch.add(row)
        batches.append(batch)
    return batches


def _retryable(exc: BaseException) -> bool:
    from cassandra import OperationTimedOut, Unavailable, WriteTimeout
    from cassandra.cluster import NoHostAvailable

    return isinstance(exc, OperationTimedOut | WriteTimeout | Unavailable | NoHostAvailable)
