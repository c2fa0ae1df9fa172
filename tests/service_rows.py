"""Rows of the job's tables and the service's, built as the job and the service build them (cloud/result_rows.py,
`Table.row`), for tests and bench/api.py that read them back through the API."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any

from fleetsense.cloud import result_rows
from fleetsense.cloud import tables as t
from fleetsense.cloud.store import Write

from fleetsense import event_kinds


def event(vehicle_id: str, kind: str, start_ms: int, duration_ms: int, peak: float) -> list[Write]:
    """One event's rows (vehicle_events and fleet_events), as the job writes them."""
    found = SimpleNamespace(start_us=start_ms * 1000, end_us=(start_ms + duration_ms) * 1000)
    if kind == "stop":
        return result_rows.stop_writes(vehicle_id, SimpleNamespace(**vars(found), duration_s=peak), detected_at_ms=0)
    if event_kinds.BY_KEY[kind].peak_unit == "g":
        return result_rows.event_writes(
            vehicle_id, SimpleNamespace(**vars(found), kind=kind, peak_g=peak), detected_at_ms=0
        )
    return result_rows.event_writes(vehicle_id, SimpleNamespace(**vars(found), key=kind, peak_c=peak), detected_at_ms=0)


def status(vehicle_id: str, *, online: bool, reason: str, received_ms: int) -> Write:
    nulls: dict[str, Any] = {c: None for c in t.VEHICLE_STATUS.written_columns}
    return t.VEHICLE_STATUS.row(
        **{**nulls, "vehicle_id": vehicle_id, "online": online, "reason": reason, "received_at": received_ms}
    )


def seen(vehicle_id: str, last_ms: int) -> Write:
    return result_rows.vehicle_write(vehicle_id, 1, last_ms * 1000)


def trip(vehicle_id: str, start_ms: int, duration_s: float, *, is_open: bool) -> Write:
    return t.TRIPS.row(
        vehicle_id=vehicle_id,
        start_time=start_ms,
        end_time=start_ms + int(duration_s * 1000),
        duration_s=duration_s,
        open=is_open,
        event_counts=event_kinds.zero_counts(),
        score=90.0,
    )


def day_score(vehicle_id: str, day: date, score: float, counts: dict[str, int], *, now_ms: int) -> Write:
    return t.DRIVER_SCORES.row(
        vehicle_id=vehicle_id,
        day_bucket=day,
        score=score,
        driving_s=600.0,
        event_counts={**event_kinds.zero_counts(), **counts},
        updated_at=now_ms,
    )


def fleet_vehicle(fleet_id: str, vehicle_id: str, label: str | None = None) -> Write:
    return t.FLEET_VEHICLES.row(fleet_id=fleet_id, vehicle_id=vehicle_id, label=label, registered_at=0)


def assignment(vehicle_id: str, driver_id: str, from_ms: int, to_ms: int | None = None) -> list[Write]:
    """Both rows of an assignment (written together in one logged batch by the service)."""
    common = {"valid_from": from_ms, "valid_to": to_ms, "source": "api", "set_by": "test", "set_at": from_ms}
    return [
        t.VEHICLE_ASSIGNMENTS.row(vehicle_id=vehicle_id, driver_id=driver_id, **common),
        t.DRIVER_ASSIGNMENTS.row(vehicle_id=vehicle_id, driver_id=driver_id, **common),
    ]


def review(vehicle_id: str, day: date, start_ms: int, kind: str, state: str, driver_id: str | None) -> Write:
    return t.EVENT_REVIEWS.row(
        vehicle_id=vehicle_id,
        day_bucket=day,
        start_time=start_ms,
        kind=kind,
        state=state,
        note="test",
        reviewed_by="test",
        reviewed_at=start_ms,
        driver_id=driver_id,
    )


def write_all(session: Any, writes: list[Write], *, keyspace: str = "fleetsense") -> None:
    """The job's rows through the job's writer, the service's through their tables' INSERTs, synchronously."""
    from fleetsense.cloud.store import CassandraWriter

    job = [w for w in writes if w[0] in t.WRITTEN]
    service = [w for w in writes if w[0] in t.SERVICE_WRITTEN]
    assert len(job) + len(service) == len(writes)
    if job:
        CassandraWriter(session, keyspace).write_all(job)
    prepared: dict[str, Any] = {}
    futures = []
    for name, values in service:
        if name not in prepared:
            prepared[name] = session.prepare(t.SERVICE_WRITTEN[name].insert_cql().format(ks=keyspace))
        futures.append(session.execute_async(prepared[name], list(values)))
    for future in futures:
        future.result()
