"""Read-side queries over what the job stored in Cassandra (the serving layer's first reader).

Every reader reads at its table's declared consistency (cloud/tables.py; a reader that may be stale says so beside
its statement) and `PAGE_ROWS` rows a page, iterating every page: none assumes its answer fits in one. A reader
that wants a bounded answer says LIMIT. Day keys are dates (`store.day_bucket`); rows carry the driver's values
(a `date` column as a cassandra.util.Date, which compares equal to the datetime.date).

Results are versioned (issue 19): `Keyspaces` routes each read, the result tables (cloud/tables.py RESULT_TABLES) to
the active version's keyspace and every other table to the main one; `active_keyspaces` resolves it. A plain
keyspace name reads every table there (tests, or one version's results read as they are)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.cloud.cassandra_session import statement
from fleetsense.cloud.decode import decode_batch
from fleetsense.cloud.store import day_buckets
from fleetsense.cloud.table_model import LOCAL_ONE, Read

from fleetsense import wire


@dataclass(frozen=True, kw_only=True)
class LatestSample:
    seq: int
    sample_index: int
    sample_time_us: int
    accel_m_s2: tuple[float, float, float]
    gyro_rad_s: tuple[float, float, float]


@dataclass(frozen=True, kw_only=True)
class LatestEnvironment:
    sample_time_us: int
    pressure_pa: float
    temperature_c: float


@dataclass(frozen=True, kw_only=True)
class VehicleSummary:
    vehicle_id: str
    sample_count: int  # IMU samples
    distinct_batches: int  # IMU batches
    environment_count: int
    last_seq: int | None
    last_sample_time: datetime | None
    latest: list[LatestSample]
    environment: LatestEnvironment | None
    event_counts: dict[str, int]


PAGE_ROWS = 500  # rows a page: a partition of 1,000 batches (an hour of a busy vehicle) is two round trips

# The readers' statements, checked against the declarations (cloud/tables.py) when this module is imported.
_VEHICLE_IDS = t.VEHICLES.read("vehicle_id")
_HOURS = t.VEHICLE_HOURS.read("hour_bucket", where=("vehicle_id",))
_BATCH = ("epoch", "seq", "kind", "sample_count", "start_time")
_BLOCKS = t.BATCHES.read(*_BATCH, where=("vehicle_id", "hour_bucket"))
_BLOCKS_WITH_MESSAGE = t.BATCHES.read(*_BATCH, "message", where=("vehicle_id", "hour_bucket"))
_NEWEST_BLOCKS = t.BATCHES.read("seq", "message", "start_time", where=("vehicle_id", "hour_bucket"))
_EVENT = ("start_time", "kind", "end_time", "duration_ms", "peak", "peak_unit")
_EVENTS = t.EVENTS_BY_VEHICLE.read(*_EVENT, where=("vehicle_id", "day_bucket"))
_EVENTS_OF_KIND = t.EVENTS_BY_VEHICLE.read(*_EVENT, where=("vehicle_id", "day_bucket", "kind"))  # SAI on kind
_FLEET_EVENT = ("day_bucket", "hour", "start_time", "vehicle_id", "kind", "end_time", "duration_ms", "peak")
_FLEET_EVENTS_OF_KIND = t.EVENTS_BY_FLEET.read(*_FLEET_EVENT, where=("day_bucket", "hour", "kind"))  # SAI on kind
_LATEST_SEEN = t.VEHICLES.read("last_seq", "last_sample_time", where=("vehicle_id",))
_DAY_COUNTS = t.DRIVER_SCORES.read("event_counts", where=("vehicle_id",))
_REJECTION = ("routing_key", "reason", "received_at", "size_bytes", "excerpt")
_REJECTED = t.REJECTED_BY_SOURCE.read(*_REJECTION, where=("source", "day_bucket"))
# A status a heartbeat old is as good as the newest for the report: one replica answers.
_STATUS = t.VEHICLE_STATUS.read(*t.VEHICLE_STATUS.written_columns, where=("vehicle_id",), consistency=LOCAL_ONE)
_RESTART = ("epoch", "restart", "started_at", "unclean", "lost_ms", "reported_at")
_RESTARTS = t.AGENT_RESTARTS.read(*_RESTART, where=("vehicle_id",))


# --- where a read goes: the result tables to the active result version's keyspace, every other to the main one ---

_RESULT_TABLES = frozenset(table.name for table in t.RESULT_TABLES)
_FROM = re.compile(r" FROM \{ks\}\.(\w+)")


def table_of(read: Read) -> str:
    """The table a reader's statement reads (`Table.select` writes `FROM {ks}.<table>`)."""
    found = _FROM.search(read.cql)
    if found is None:
        raise ValueError(f"a reader's statement names its table as FROM {{ks}}.<table>: {read.cql!r}")
    return found.group(1)


def reads_results(read: Read) -> bool:
    """Whether a statement reads one of the tables each result version has its own copy of (cloud/tables.py
    RESULT_TABLES): those are read from the active version's keyspace, every other table from the main one."""
    return table_of(read) in _RESULT_TABLES


@dataclass(frozen=True)
class Keyspaces:
    """Where reads go: the result tables' statements to `results` (the active result version's keyspace, the main
    one for version 1), every other statement to `main` (ingest facts, profiles, the service's tables)."""

    main: str
    results: str

    def of(self, read: Read) -> str:
        return self.results if reads_results(read) else self.main


# A reader's keyspace: one name reads every table there (a test's keyspace, or a version's results read as they
# are); `Keyspaces` reads the result tables from a version's keyspace and the rest from the main one.
Where = str | Keyspaces


def keyspaces_of(where: Where) -> Keyspaces:
    return where if isinstance(where, Keyspaces) else Keyspaces(main=where, results=where)


def active_keyspaces(session: Any, main_keyspace: str) -> Keyspaces:
    """The main keyspace with the active result version's (`result_versions`, cloud/result_versions.py): what
    `fleetsense query` and the demo read, so they show what the API serves. Read once: a caller that reads for long
    resolves it again to follow a promotion."""
    from fleetsense.cloud.result_versions import keyspace_of, read_versions

    active, versions = read_versions(session, main_keyspace)
    found = next((v.results_keyspace for v in versions if v.version == active), None)
    return Keyspaces(main=main_keyspace, results=found or keyspace_of(main_keyspace, active))


def rows_of(session: Any, keyspace: Where, read: Read, params: Sequence[Any] = (), *, limit: int | None = None) -> Any:
    """The rows of a reader's statement, at its consistency, `PAGE_ROWS` a page: iterating them fetches every page
    in turn; `limit` bounds the answer."""
    cql = read.cql.format(ks=keyspaces_of(keyspace).of(read)) + (f" LIMIT {int(limit)}" if limit is not None else "")
    return session.execute(statement(cql, consistency=read.consistency, fetch_size=PAGE_ROWS), params)


def vehicle_ids(session: Any, keyspace: Where) -> list[str]:
    return sorted(row.vehicle_id for row in rows_of(session, keyspace, _VEHICLE_IDS))


def _hours(session: Any, keyspace: Where, vehicle_id: str) -> list[Any]:
    rows = rows_of(session, keyspace, _HOURS, (vehicle_id,))
    return [row.hour_bucket for row in rows]  # newest first


def blocks(session: Any, keyspace: Where, vehicle_id: str, *, with_message: bool = False) -> list[Any]:
    """Every stored batch of a vehicle, newest first: epoch, seq, kind, sample_count, start_time (and the message
    if asked)."""
    select = _BLOCKS_WITH_MESSAGE if with_message else _BLOCKS
    found: list[Any] = []
    for hour in _hours(session, keyspace, vehicle_id):
        rows = rows_of(session, keyspace, select, (vehicle_id, hour))
        # Within an hour the rows are ordered by (epoch, seq): a replaced device's new sequence may sort first.
        found += sorted(rows, key=lambda row: row.start_time, reverse=True)
    return found


def sample_keys(
    session: Any, keyspace: Where, vehicle_id: str, kind: wire.Kind = wire.Kind.IMU
) -> set[tuple[int, int]]:
    """Every stored (seq, sample_index) of a vehicle's batches of one kind: each sample's identity."""
    return {
        (row.seq, index)
        for row in blocks(session, keyspace, vehicle_id)
        if row.kind == kind
        for index in range(row.sample_count)
    }


def events(session: Any, keyspace: Where, vehicle_id: str, day: date, *, kind: str | None = None) -> list[Any]:
    """A vehicle's events of one UTC day (of one kind if given: the SAI index on kind finds them), oldest first."""
    if kind is None:
        rows = rows_of(session, keyspace, _EVENTS, (vehicle_id, day))
    else:
        rows = rows_of(session, keyspace, _EVENTS_OF_KIND, (vehicle_id, day, kind))
    return _oldest_first(rows)


def fleet_events(session: Any, keyspace: Where, day: date, hour: int, *, kind: str) -> list[Any]:
    """The whole fleet's events of one kind that started in one UTC hour (SAI on kind), oldest first."""
    return _oldest_first(rows_of(session, keyspace, _FLEET_EVENTS_OF_KIND, (day, hour, kind)))


def _oldest_first(rows: Iterable[Any]) -> list[Any]:
    return sorted(rows, key=lambda r: (r.start_time, r.kind))


def events_between(session: Any, keyspace: Where, vehicle_id: str, start_us: int, end_us: int) -> list[Any]:
    """A vehicle's events that started in [start_us, end_us], over as many day buckets as that spans, oldest first."""
    rows = [row for day in day_buckets(start_us, end_us) for row in events(session, keyspace, vehicle_id, day)]
    return [row for row in rows if start_us <= round(row.start_time.timestamp() * 1e6) <= end_us]


def latest_seen(session: Any, keyspace: Where, vehicle_id: str) -> Any | None:
    """The vehicle's `vehicles` row (last_seq, last_sample_time as naive UTC), None before its first batch."""
    return rows_of(session, keyspace, _LATEST_SEEN, (vehicle_id,)).one()


def summarize(session: Any, keyspace: Where, vehicle_id: str, *, latest: int = 3) -> VehicleSummary:
    stored = blocks(session, keyspace, vehicle_id)
    imu = [row for row in stored if row.kind in (wire.Kind.IMU, wire.Kind.ACCEL)]
    env = [row for row in stored if row.kind == wire.Kind.BARO]
    newest: list[LatestSample] = []
    environment: LatestEnvironment | None = None
    for row in _newest_blocks(session, keyspace, vehicle_id):
        batch = decode_batch(row.message)
        values = batch.values_si
        if batch.header.kind == wire.Kind.BARO and environment is None and len(values):
            environment = LatestEnvironment(
                sample_time_us=int(batch.sample_time_us[-1]),
                pressure_pa=float(values[-1, 0]),
                temperature_c=float(values[-1, 1]),
            )
        elif batch.header.kind != wire.Kind.BARO and not newest:
            for index in range(len(values) - 1, max(len(values) - 1 - latest, -1), -1):
                gyro = tuple(values[index, 3:6]) if values.shape[1] == 6 else (0.0, 0.0, 0.0)
                newest.append(
                    LatestSample(
                        seq=batch.header.seq,
                        sample_index=index,
                        sample_time_us=int(batch.sample_time_us[index]),
                        accel_m_s2=(float(values[index, 0]), float(values[index, 1]), float(values[index, 2])),
                        gyro_rad_s=(float(gyro[0]), float(gyro[1]), float(gyro[2])),
                    )
                )
        if newest and environment:
            break
    state = latest_seen(session, keyspace, vehicle_id)
    counts: dict[str, int] = {}
    for row in rows_of(session, keyspace, _DAY_COUNTS, (vehicle_id,)):
        for kind, n in (row.event_counts or {}).items():
            counts[kind] = counts.get(kind, 0) + n
    return VehicleSummary(
        vehicle_id=vehicle_id,
        sample_count=sum(row.sample_count for row in imu),
        distinct_batches=len({row.seq for row in imu}),
        environment_count=sum(row.sample_count for row in env),
        # From the blocks themselves: the `vehicles` row is refreshed only every 10 s of samples.
        last_seq=max((row.seq for row in stored), default=state.last_seq if state else None),
        last_sample_time=_newest_time(newest, environment) or (state.last_sample_time if state else None),
        latest=newest,
        environment=environment,
        event_counts=counts,
    )


def _newest_time(newest: list[LatestSample], environment: LatestEnvironment | None) -> datetime | None:
    times = [s.sample_time_us for s in newest] + ([environment.sample_time_us] if environment else [])
    return datetime.fromtimestamp(max(times) / 1e6, UTC) if times else None


def _newest_blocks(session: Any, keyspace: Where, vehicle_id: str, limit: int = 20) -> list[Any]:
    for hour in _hours(session, keyspace, vehicle_id):
        rows = rows_of(session, keyspace, _NEWEST_BLOCKS, (vehicle_id, hour))
        newest = sorted(rows, key=lambda row: row.start_time, reverse=True)[:limit]
        if newest:
            return newest
    return []


def rejected(session: Any, keyspace: Where, vehicle_id: str, days: Sequence[date]) -> list[Any]:
    """The rejection rows recorded for `vehicle_id` (a source) on the given UTC days (`store.day_buckets`), newest
    first: routing_key, reason, received_at, size_bytes, excerpt."""
    rows: list[Any] = []
    for day in days:
        rows += rows_of(session, keyspace, _REJECTED, (vehicle_id, day))
    return sorted(rows, key=lambda row: row.received_at, reverse=True)


def status(session: Any, keyspace: Where, vehicle_id: str) -> Any | None:
    """The vehicle's latest status (vehicle_status, every column: online, reason, received_at, outbox depth,
    dropped_total, and what it says about restarts and storage), None before its first."""
    return rows_of(session, keyspace, _STATUS, (vehicle_id,)).one()


def restarts(session: Any, keyspace: Where, vehicle_id: str, *, limit: int = 20) -> list[Any]:
    """The vehicle's latest restarts (agent_restarts), newest first: epoch, restart, started_at, unclean (None: not
    known), lost_ms (None: not known), reported_at."""
    return list(rows_of(session, keyspace, _RESTARTS, (vehicle_id,), limit=limit))
