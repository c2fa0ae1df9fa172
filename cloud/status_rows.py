"""Vehicle status messages (JSON, fleetsense.status) into the latest-status row and the device-declared gaps."""

from __future__ import annotations

import json
import logging

from fleetsense.cloud import result_rows as rows
from fleetsense.cloud.store import Write

from fleetsense.errors import FleetsenseError
from fleetsense.ids import vehicle_from_routing_key
from fleetsense.status import parse_status
from fleetsense.wire import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


def status_writes(routing_key: str, body: bytes, *, now_ms: int) -> list[Write]:
    """The status row (or a rejection with its reason). Rows are written in arrival order, not by the status's
    own time: a last will is composed when the device connects, so its time is older than the heartbeats it
    follows. Never raises: a fault of ours while handling one message becomes its rejection row."""
    try:
        return _status_writes(routing_key, body, now_ms=now_ms)
    except Exception as exc:
        log.exception("processing a status message on %r failed; it is recorded as rejected", routing_key)
        reason = f"processing failed inside the job: {type(exc).__name__}: {exc}"
        return [rows.rejected_write(routing_key, body, reason, now_ms=now_ms, whole=True)]


def _status_writes(routing_key: str, body: bytes, *, now_ms: int) -> list[Write]:
    try:
        vehicle = vehicle_from_routing_key(routing_key)
    except (ValueError, FleetsenseError) as exc:
        return [rows.rejected_write(routing_key, body, f"bad routing key: {exc}", now_ms=now_ms)]
    if len(body) > MAX_MESSAGE_BYTES:
        return [rows.rejected_write(routing_key, body, "status message too large", now_ms=now_ms)]
    try:
        status = parse_status(body)
    except ValueError as exc:
        return [rows.rejected_write(routing_key, body, str(exc), now_ms=now_ms)]
    if status.vehicle_id != vehicle:
        reason = f"status names vehicle {status.vehicle_id!r} but arrived on {vehicle!r}'s topic"
        return [rows.rejected_write(routing_key, body, reason, now_ms=now_ms)]
    detail = {
        "agent_version": status.agent_version,
        "clock_synced": status.clock_synced,
        "uptime_s": status.uptime_s,
        "sensors": {name: report.health for name, report in status.sensors.items()},
        "next_seq": status.next_seq,
        "set_aside_rows": status.set_aside_rows,
    }
    writes: list[Write] = [
        (
            "status",
            (
                vehicle,
                status.online,
                status.reason,
                status.time_utc_us // 1000 if status.time_utc_us else None,
                now_ms,
                status.outbox_depth,
                status.dropped_total,
                json.dumps(detail, separators=(",", ":")),
            ),
        )
    ]
    # Ranges the device dropped from a full outbox: recorded as gaps, keyed by their first seq (idempotent).
    epoch = status.epoch or 0
    writes += [rows.gap_write(vehicle, epoch, first, last, now_ms=now_ms) for first, last in status.dropped_ranges]
    return writes
