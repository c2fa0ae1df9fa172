"""Read-side queries over what the job stored in Cassandra (the serving layer's first reader)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.cloud.decode import decode_batch
from fleetsense.cloud.store import day_buckets

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


# The readers' statements, checked against the declarations (cloud/tables.py) when this module is imported.
_VEHICLE_IDS = t.VEHICLES.select("vehicle_id")
_HOURS = t.VEHICLE_HOURS.select("hour_bucket", where=("vehicle_id",))
_BATCH = ("epoch", "seq", "kind", "sample_count", "start_time")
_BLOCKS = t.BATCHES.select(*_BATCH, where=("vehicle_id", "hour_bucket"))
_BLOCKS_WITH_MESSAGE = t.BATCHES.select(*_BATCH, "message", where=("vehicle_id", "hour_bucket"))
_NEWEST_BLOCKS = t.BATCHES.select("seq", "message", "start_time", where=("vehicle_id", "hour_bucket"))
_EVENT = ("start_time", "kind", "end_time", "duration_ms", "peak", "peak_unit")
_EVENTS = t.EVENTS_BY_VEHICLE.select(*_EVENT, where=("vehicle_id", "day_bucket"))
_LATEST_SEEN = t.VEHICLES.select("last_seq", "last_sample_time", where=("vehicle_id",))
_DAY_COUNTS = t.DRIVER_SCORES.select("event_counts", where=("vehicle_id",))
_REJECTION = ("routing_key", "reason", "received_at", "size_bytes", "excerpt")
_REJECTED = t.REJECTED_BY_SOURCE.select(*_REJECTION, where=("source", "day_bucket"))
_STATUS = t.VEHICLE_STATUS.select(*t.VEHICLE_STATUS.written_columns, where=("vehicle_id",))
_RESTART = ("epoch", "restart", "started_at", "unclean", "lost_ms", "reported_at")
_RESTARTS = t.AGENT_RESTARTS.select(*_RESTART, where=("vehicle_id",))


def vehicle_ids(session: Any, keyspace: str) -> list[str]:
    return sorted(row.vehicle_id for row in session.execute(_VEHICLE_IDS.format(ks=keyspace)))


def _hours(session: Any, keyspace: str, vehicle_id: str) -> list[Any]:
    rows = session.execute(_HOURS.format(ks=keyspace), (vehicle_id,))
    return [row.hour_bucket for row in rows]  # newest first


def blocks(session: Any, keyspace: str, vehicle_id: str, *, with_message: bool = False) -> list[Any]:
    """Every stored batch of a vehicle, newest first: epoch, seq, kind, sample_count, start_time (and the message
    if asked)."""
    select = (_BLOCKS_WITH_MESSAGE if with_message else _BLOCKS).format(ks=keyspace)
    found: list[Any] = []
    for hour in _hours(session, keyspace, vehicle_id):
        rows = session.execute(select, (vehicle_id, hour))
        # Within an hour the rows are ordered by (epoch, seq): a replaced device's new sequence may sort first.
        found += sorted(rows, key=lambda row: row.start_time, reverse=True)
    return found


def sample_keys(session: Any, keyspace: str, vehicle_id: str, kind: wire.Kind = wire.Kind.IMU) -> set[tuple[int, int]]:
    """Every stored (seq, sample_index) of a vehicle's batches of one kind: each sample's identity."""
    return {
        (row.seq, index)
        for row in blocks(session, keyspace, vehicle_id)
        if row.kind == kind
        for index in range(row.sample_count)
    }


def events(session: Any, keyspace: str, vehicle_id: str, day: str) -> list[Any]:
    """A vehicle's events of one UTC day (YYYY-MM-DD), oldest first."""
    rows = session.execute(_EVENTS.format(ks=keyspace), (vehicle_id, day))
    return sorted(rows, key=lambda r: (r.start_time, r.kind))


def events_between(session: Any, keyspace: str, vehicle_id: str, start_us: int, end_us: int) -> list[Any]:
    """A vehicle's events that started in [start_us, end_us], over as many day buckets as that spans, oldest first."""
    rows = [row for day in day_buckets(start_us, end_us) for row in events(session, keyspace, vehicle_id, day)]
    return [row for row in rows if start_us <= round(row.start_time.timestamp() * 1e6) <= end_us]


def latest_seen(session: Any, keyspace: str, vehicle_id: str) -> Any | None:
    """The vehicle's `vehicles` row (last_seq, last_sample_time as naive UTC), None before its first batch."""
    return session.execute(_LATEST_SEEN.format(ks=keyspace), (vehicle_id,)).one()


def summarize(session: Any, keyspace: str, vehicle_id: str, *, latest: int = 3) -> VehicleSummary:
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
    for row in session.execute(_DAY_COUNTS.format(ks=keyspace), (vehicle_id,)):
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


def _newest_blocks(session: Any, keyspace: str, vehicle_id: str, limit: int = 20) -> list[Any]:
    for hour in _hours(session, keyspace, vehicle_id):
        rows = session.execute(_NEWEST_BLOCKS.format(ks=keyspace), (vehicle_id, hour))
        newest = sorted(rows, key=lambda row: row.start_time, reverse=True)[:limit]
        if newest:
            return newest
    return []


def rejected(session: Any, keyspace: str, vehicle_id: str, days: Sequence[str]) -> list[Any]:
    """The rejection rows recorded for `vehicle_id` (a source) on the given UTC days (`store.day_buckets`), newest
    first: routing_key, reason, received_at, size_bytes, excerpt."""
    rows: list[Any] = []
    for day in days:
        rows += session.execute(_REJECTED.format(ks=keyspace), (vehicle_id, day))
    return sorted(rows, key=lambda row: row.received_at, reverse=True)


def status(session: Any, keyspace: str, vehicle_id: str) -> Any | None:
    """The vehicle's latest status (vehicle_status, every column: online, reason, received_at, outbox depth,
    dropped_total, and what it says about restarts and storage), None before its first."""
    return session.execute(_STATUS.format(ks=keyspace), (vehicle_id,)).one()


def restarts(session: Any, keyspace: str, vehicle_id: str, *, limit: int = 20) -> list[Any]:
    """The vehicle's latest restarts (agent_restarts), newest first: epoch, restart, started_at, unclean (None: not
    known), lost_ms (None: not known), reported_at."""
    return list(session.execute(f"{_RESTARTS.format(ks=keyspace)} LIMIT {int(limit)}", (vehicle_id,)))
