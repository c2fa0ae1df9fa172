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
    gyro_rad_s: tuple[float, float, float]


@dataclass(frozen=True, kw_only=True)
class LatestEnvironment:
    sample_time: datetime
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


def vehicle_ids(session: Any, keyspace: str) -> list[str]:
    return sorted(row.vehicle_id for row in session.execute(f"SELECT vehicle_id FROM {keyspace}.vehicles"))


def _hours(session: Any, keyspace: str, vehicle_id: str) -> list[Any]:
    rows = session.execute(f"SELECT hour_bucket FROM {keyspace}.vehicle_hours WHERE vehicle_id = %s", (vehicle_id,))
    return [row.hour_bucket for row in rows]


def summarize(session: Any, keyspace: str, vehicle_id: str, *, latest: int = 3) -> VehicleSummary:
    hours = _hours(session, keyspace, vehicle_id)
    imu_keys = sample_keys(session, keyspace, vehicle_id, "imu_samples")
    env_keys = sample_keys(session, keyspace, vehicle_id, "environment_samples")
    newest: list[LatestSample] = []
    environment: LatestEnvironment | None = None
    for hour in hours:  # newest hour first: stop at the first that has rows
        rows = session.execute(
            f"SELECT seq, sample_index, sample_time, ax_m_s2, ay_m_s2, az_m_s2, gx_rad_s, gy_rad_s, gz_rad_s "
            f"FROM {keyspace}.imu_samples WHERE vehicle_id = %s AND hour_bucket = %s LIMIT {int(latest)}",
            (vehicle_id, hour),
        )
        newest = [
            LatestSample(
                seq=r.seq,
                sample_index=r.sample_index,
                sample_time=r.sample_time,
                accel_m_s2=(r.ax_m_s2, r.ay_m_s2, r.az_m_s2),
                gyro_rad_s=(r.gx_rad_s, r.gy_rad_s, r.gz_rad_s),
            )
            for r in rows
        ]
        if newest:
            break
    for hour in hours:
        row = session.execute(
            f"SELECT sample_time, pressure_pa, temperature_c FROM {keyspace}.environment_samples "
            "WHERE vehicle_id = %s AND hour_bucket = %s LIMIT 1",
            (vehicle_id, hour),
        ).one()
        if row is not None:
            environment = LatestEnvironment(
                sample_time=row.sample_time, pressure_pa=row.pressure_pa, temperature_c=row.temperature_c
            )
            break
    state = session.execute(
        f"SELECT last_seq, last_sample_time FROM {keyspace}.vehicles WHERE vehicle_id = %s", (vehicle_id,)
    ).one()
    return VehicleSummary(
        vehicle_id=vehicle_id,
        sample_count=len(imu_keys),
        distinct_batches=len({seq for seq, _ in imu_keys}),
        environment_count=len(env_keys),
        last_seq=state.last_seq if state else None,
        last_sample_time=state.last_sample_time if state else None,
        latest=newest,
        environment=environment,
    )


def sample_keys(session: Any, keyspace: str, vehicle_id: str, table: str = "imu_samples") -> set[tuple[int, int]]:
    """Every stored (seq, sample_index) of a vehicle in one sample table: each sample's identity, for exact checks."""
    keys: set[tuple[int, int]] = set()
    for hour in _hours(session, keyspace, vehicle_id):
        for row in session.execute(
            f"SELECT seq, sample_index FROM {keyspace}.{table} WHERE vehicle_id = %s AND hour_bucket = %s",
            (vehicle_id, hour),
        ):
            keys.add((row.seq, row.sample_index))
    return keys
