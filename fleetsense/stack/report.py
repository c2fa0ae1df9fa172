"""`fleetsense query`: per-vehicle counts and latest samples, printed as a table."""

from __future__ import annotations

from collections.abc import Sequence

from fleetsense.cloud.query import summarize, vehicle_ids
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.stack.cassandra_auth import READER, session_as
from fleetsense.stack.layout import StackConfig


def print_vehicle_report(config: StackConfig, *, vehicles: Sequence[str] | None = None, latest: int = 1) -> None:
    with session_as(config, READER) as session:
        ids = list(vehicles) if vehicles else vehicle_ids(session, KEYSPACE)
        if not ids:
            print("no samples in Cassandra yet")
            return
        print(
            f"{'VEHICLE':<12} {'IMU SAMPLES':>11} {'BATCHES':>8} {'BARO':>6} {'LAST SEQ':>8}  "
            f"{'LAST SAMPLE (UTC)':<24} {'ACCEL m/s² (x, y, z)':<22} {'hPa':>7} {'°C':>5}  EVENTS"
        )
        for vehicle_id in ids:
            s = summarize(session, KEYSPACE, vehicle_id, latest=latest)
            accel = ", ".join(f"{v:+.2f}" for v in s.latest[0].accel_m_s2) if s.latest else "-"
            when = s.last_sample_time.isoformat(sep=" ", timespec="milliseconds") if s.last_sample_time else "-"
            last_seq = "-" if s.last_seq is None else str(s.last_seq)
            env = s.environment
            hpa = f"{env.pressure_pa / 100:.2f}" if env else "-"
            temp = f"{env.temperature_c:.1f}" if env else "-"
            events = ", ".join(f"{kind} {n}" for kind, n in sorted(s.event_counts.items()) if n) or "-"
            print(
                f"{vehicle_id:<12} {s.sample_count:>11} {s.distinct_batches:>8} {s.environment_count:>6} "
                f"{last_seq:>8}  {when:<24} {accel:<22} {hpa:>7} {temp:>5}  {events}"
            )
