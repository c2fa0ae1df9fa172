"""Read-side queries over what landed in Cassandra (the serving layer's first reader)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, kw_only=True)
class LatestSample:
    seq: int
    sample_index: int
    sample_time: datetime
    accel_m_s2: tuple[float, float, float]


@dataclass(frozen=True, kw_only=True)
class VehicleSummary:
    vehicle_id: str
    sample_count: int
    distinct_batches: int
    last_seq: int | None
    last_sample_time: datetime | None
    latest: list[LatestSample]


def vehicle_ids(session: Any, keyspace: str) -> list[str]:
    return sorted(row.vehicle_id for row in session.execute(f"SELECT vehicle_id FROM {keyspace}.vehicles"))


def summarize(session: Any, keyspace: str, vehicle_id: str, *, latest: int = 3) -> VehicleSummary:
    hours = [
        row.hour_bucket
        for row in session.execute(
            f"SELECT hour_bucket FROM {keyspace}.vehicle_hours WHERE vehicle_id = %s", (vehicle_id,)
        )
    ]
    count = 0
    batches: set[int] = set()
    for hour in hours:
        # Key columns only: counting a partition reads every row, so keep the rows small.
        rows = session.execute(
            f"SELECT seq FROM {keyspace}.accel_samples WHERE vehicle_id = %s AND hour_bucket = %s",
            (vehicle_id, hour),
        )
        for row in rows:
            count += 1
            batches.add(row.seq)
    newest: list[LatestSample] = []
    if hours:
        rows = session.execute(
            f"SELECT seq, sample_index, sample_time, ax_m_s2, ay_m_s2, az_m_s2 FROM {keyspace}.accel_samples "
            f"WHERE vehicle_id = %s AND hour_bucket = %s LIMIT {int(latest)}",
            (vehicle_id, hours[0]),
        )
        newest = [
            LatestSample(
                seq=r.seq,
                sample_index=r.sample_index,
                sample_time=r.sample_time,
                accel_m_s2=(r.ax_m_s2, r.ay_m_s2, r.az_m_s2),
            )
            for r in rows
        ]
    state = session.execute(
        f"SELECT last_seq, last_sample_time FROM {keyspace}.vehicles WHERE vehicle_id = %s", (vehicle_id,)
    ).one()
    return VehicleSummary(
        vehicle_id=vehicle_id,
        sample_count=count,
        distinct_batches=len(batches),
        last_seq=state.last_seq if state else None,
        last_sample_time=state.last_sample_time if state else None,
        latest=newest,
    )


def sample_keys(session: Any, keyspace: str, vehicle_id: str) -> set[tuple[int, int]]:
    """Every stored (seq, sample_index) of a vehicle: the identity of each sample, for exact checks."""
    keys: set[tuple[int, int]] = set()
    for hour in session.execute(
        f"SELECT hour_bucket FROM {keyspace}.vehicle_hours WHERE vehicle_id = %s", (vehicle_id,)
    ):
        for row in session.execute(
            f"SELECT seq, sample_index FROM {keyspace}.accel_samples WHERE vehicle_id = %s AND hour_bucket = %s",
            (vehicle_id, hour.hour_bucket),
        ):
            keys.add((row.seq, row.sample_index))
    return keys
