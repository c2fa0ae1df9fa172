"""`fleetsense query`: per-vehicle counts and latest samples, printed as a table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fleetsense.cloud.query import restarts, status, summarize, vehicle_ids
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.stack.cassandra_auth import READER, session_as
from fleetsense.stack.layout import StackConfig


def print_vehicle_report(config: StackConfig, *, vehicles: Sequence[str] | None = None, latest: int = 1) -> None:
    from fleetsense.cloud.query import active_keyspaces

    with session_as(config, READER) as session:
        where = active_keyspaces(session, KEYSPACE)  # the results the API serves
        ids = list(vehicles) if vehicles else vehicle_ids(session, KEYSPACE)
        if not ids:
            print("no samples in Cassandra yet")
            return
        print(
            f"{'VEHICLE':<12} {'IMU SAMPLES':>11} {'BATCHES':>8} {'BARO':>6} {'LAST SEQ':>8}  "
            f"{'LAST SAMPLE (UTC)':<24} {'ACCEL m/s² (x, y, z)':<22} {'hPa':>7} {'°C':>5}  EVENTS"
        )
        for vehicle_id in ids:
            s = summarize(session, where, vehicle_id, latest=latest)
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
        health = [
            line
            for vehicle_id in ids
            for line in health_lines(
                vehicle_id, status(session, KEYSPACE, vehicle_id), restarts(session, KEYSPACE, vehicle_id, limit=3)
            )
        ]
        if health:
            print("\nSTATUS")
            print("\n".join(health))


def health_lines(vehicle_id: str, latest: Any | None, history: Sequence[Any]) -> list[str]:
    """The vehicle's latest status (restarts, time lost, storage faults) and its last restarts, for people."""
    if latest is None:
        return []
    state = "online" if latest.online else "offline"
    parts = [f"{state} ({latest.reason}) at {latest.received_at:%Y-%m-%d %H:%M:%S} UTC"]
    parts.append(f"outbox {_or_dash(latest.outbox_depth)}, dropped {_or_dash(latest.dropped_total)}")
    if latest.restarts is not None:
        lost = "" if latest.last_restart_lost_ms is None else f", last lost {latest.last_restart_lost_ms / 1000:.1f} s"
        parts.append(f"restarts {latest.restarts} ({_or_dash(latest.unclean_restarts)} after a crash){lost}")
    if latest.storage_error:
        parts.append(f"STORAGE FAULT: {latest.storage_error} ({_or_dash(latest.memory_batches)} batches in memory)")
    if latest.held_unsynced:
        parts.append(f"{latest.held_unsynced} batches held until the clock is synchronised")
    lines = [f"{vehicle_id:<12} " + "; ".join(parts)]
    for row in history:
        how = {True: "after a crash", False: "after a clean stop", None: "(crash or clean stop not known)"}
        when = f"{row.started_at:%Y-%m-%d %H:%M:%S} UTC" if row.started_at else "at an unknown time"
        lost = "" if row.lost_ms is None else f": {row.lost_ms / 1000:.1f} s of samples lost"
        lines.append(f"{'':<12}   restart {row.restart} {when} {how[row.unclean]}{lost}")
    return lines


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)
