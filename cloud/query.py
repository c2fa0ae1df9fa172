"""Read-side queries over what the job stored in Cassandra (the serving layer's first reader)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


def vehicle_ids(session: Any, keyspace: str) -> list[str]:
    return sorted(row.vehicle_id for row in session.execute(f"SELECT vehicle_id FROM {keyspace}.vehicles"))


def _hours(session: Any, keyspace: str, vehicle_id: str) -> list[Any]:
    rows = session.execute(f"SELECT hour_bucket FROM {keyspace}.vehicle_hours WHERE vehicle_id = %s", (vehicle_id,))
    return [row.hour_bucket for row in rows]  # newest first


def blocks(session: Any, keyspace: str, vehicle_id: str, *, with_message: bool = False) -> list[Any]:
    """Every stored batch of a vehicle, newest first: epoch, seq, kind, sample_count, start_time (and the message
    if asked)."""
    columns = "epoch, seq, kind, sample_count, start_time" + (", message" if with_message else "")
    found: list[Any] = []
    for hour in _hours(session, keyspace, vehicle_id):
        rows = session.execute(
            f"SELECT {columns} FROM {keyspace}.batches WHERE vehicle_id = %s AND hour_bucket = %s",
            (vehicle_id, hour),
        )
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
    rows = session.execute(
        f"SELECT start_time, kind, end_time, duration_ms, peak, peak_unit FROM {keyspace}.events_by_vehicle "
        "WHERE vehicle_id = %s AND day_bucket = %s",
        (vehicle_id, day),
    )
    return sorted(rows, key=lambda r: (r.start_time, r.kind))


def events_between(session: Any, keyspace: str, vehicle_id: str, start_us: int, end_us: int) -> list[Any]:
    """A vehicle's events that started in [start_us, end_us], over as many day buckets as that spans, oldest first."""
    rows = [row for day in day_buckets(start_us, end_us) for row in events(session, keyspace, vehicle_id, day)]
    return [row for row in rows if start_us <= round(row.start_time.timestamp() * 1e6) <= end_us]


def latest_seen(session: Any, keyspace: str, vehicle_id: str) -> Any | None:
    """The vehicle's `vehicles` row (last_seq, last_sample_time as naive UTC), None before its first batch."""
    return session.execute(
        f"SELECT last_seq, last_sample_time FROM {keyspace}.vehicles WHERE vehicle_id = %s", (vehicle_id,)
    ).one()


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
    for row in session.execute(
        f"SELECT event_counts FROM {keyspace}.driver_scores WHERE vehicle_id = %s", (vehicle_id,)
    ):
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
        rows = session.execute(
            f"SELECT seq, message, start_time FROM {keyspace}.batches WHERE vehicle_id = %s AND hour_bucket = %s",
            (vehicle_id, hour),
        )
        newest = sorted(rows, key=lambda row: row.start_time, reverse=True)[:limit]
        if newest:
            return newest
    return []


def rejected(session: Any, keyspace: str, vehicle_id: str, days: Sequence[str]) -> list[Any]:
    """The rejection rows recorded for `vehicle_id` (a source) on the given UTC days (`store.day_buckets`), newest
    first: routing_key, reason, received_at, size_bytes, excerpt."""
    rows: list[Any] = []
    for day in days:
        rows += session.execute(
            f"SELECT routing_key, reason, received_at, size_bytes, excerpt FROM {keyspace}.rejected_by_source "
            "WHERE source = %s AND day_bucket = %s",
            (vehicle_id, day),
        )
    return sorted(rows, key=lambda row: row.received_at, reverse=True)


def status(session: Any, keyspace: str, vehicle_id: str) -> Any | None:
    """The vehicle's latest status (vehicle_status), None before its first: online, reason, received_at, outbox
    depth, dropped_total, and what it says about restarts and storage (schema.STATUS_HEALTH_COLUMNS)."""
    from fleetsense.cloud.schema import STATUS_HEALTH_COLUMNS

    health = ", ".join(column for column, _ in STATUS_HEALTH_COLUMNS)
    return session.execute(
        f"SELECT online, reason, received_at, outbox_depth, dropped_total, {health} FROM {keyspace}.vehicle_status "
        "WHERE vehicle_id = %s",
        (vehicle_id,),
    ).one()


def restarts(session: Any, keyspace: str, vehicle_id: str, *, limit: int = 20) -> list[Any]:
    """The vehicle's latest restarts (agent_restarts), newest first: epoch, restart, started_at, unclean (None: not
    known), lost_ms (None: not known), reported_at."""
    return list(
        session.execute(
            f"SELECT epoch, restart, started_at, unclean, lost_ms, reported_at FROM {keyspace}.agent_restarts "
            f"WHERE vehicle_id = %s LIMIT {int(limit)}",
            (vehicle_id,),
        )
    )
