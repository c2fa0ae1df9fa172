"""`fleetsense query`: per-vehicle counts and latest samples, printed as a table."""

from __future__ import annotations

from collections.abc import Sequence

from fleetsense.cloud.cassandra_session import connect
from fleetsense.cloud.query import summarize, vehicle_ids
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.stack.layout import StackConfig


def print_vehicle_report(config: StackConfig, *, vehicles: Sequence[str] | None = None, latest: int = 1) -> None:
    with connect(config.cql_contact) as session:
        ids = list(vehicles) if vehicles else vehicle_ids(session, KEYSPACE)
        if not ids:
            print("no samples in Cassandra yet")
            return
        print(
            f"{'VEHICLE':<12} {'SAMPLES':>8} {'BATCHES':>8} {'LAST SEQ':>8}  {'LAST SAMPLE (UTC)':<24} "
            "LATEST ACCEL m/s² (x, y, z)"
        )
        for vehicle_id in ids:
            s = summarize(session, KEYSPACE, vehicle_id, latest=latest)
            accel = ", ".join(f"{v:+.2f}" for v in s.latest[0].accel_m_s2) if s.latest else "-"
            when = s.last_sample_time.isoformat(sep=" ", timespec="milliseconds") if s.last_sample_time else "-"
            last_seq = "-" if s.last_seq is None else str(s.last_seq)
            print(f"{vehicle_id:<12} {s.sample_count:>8} {s.distinct_batches:>8} {last_seq:>8}  {when:<24} {accel}")
