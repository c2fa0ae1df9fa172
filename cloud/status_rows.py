"""Vehicle status messages (JSON, fleetsense.status) into the latest-status row, the device-declared gaps and the
history of the agent's restarts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from fleetsense.cloud import result_rows as rows
from fleetsense.cloud.store import Write
from fleetsense.cloud.tables import AGENT_RESTARTS, VEHICLE_STATUS

from fleetsense.errors import FleetsenseError
from fleetsense.ids import vehicle_from_routing_key
from fleetsense.status import VehicleStatus, parse_status
from fleetsense.wire import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartsSeen:
    """The restart counts of the last status stored for a vehicle (vehicle_status), in one sequence epoch."""

    epoch: int
    restarts: int
    unclean_restarts: int | None


def _unknown(vehicle_id: str) -> RestartsSeen | None:
    return None


RestartsLookup = Callable[[str], RestartsSeen | None]


def status_writes(routing_key: str, body: bytes, *, now_ms: int, seen: RestartsLookup = _unknown) -> list[Write]:
    """The status row (or a rejection with its reason), the gaps it declares and the restarts it shows for the
    first time (`seen`: what the vehicle's stored status said before). Restart rows come first: the caller writes
    them before the status row, so that a failure between the two leaves the old counts in vehicle_status and a
    replay writes them again. Rows are written in arrival order, not by the status's own time: a last will is
    composed when the device connects, so its time is older than the heartbeats it follows. Never raises: a fault
    of ours while handling one message becomes its rejection row."""
    try:
        return _status_writes(routing_key, body, now_ms=now_ms, seen=seen)
    except Exception as exc:
        log.exception("processing a status message on %r failed; it is recorded as rejected", routing_key)
        reason = f"processing failed inside the job: {type(exc).__name__}: {exc}"
        return [rows.rejected_write(routing_key, body, reason, now_ms=now_ms, whole=True)]


def _status_writes(routing_key: str, body: bytes, *, now_ms: int, seen: RestartsLookup) -> list[Write]:
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
    writes = restart_writes(status, seen(vehicle) if status.restarts else None, now_ms=now_ms)
    writes.append(
        VEHICLE_STATUS.row(
            vehicle_id=vehicle,
            online=status.online,
            reason=status.reason,
            status_time=status.time_utc_us // 1000 if status.time_utc_us else None,
            received_at=now_ms,
            outbox_depth=status.outbox_depth,
            dropped_total=status.dropped_total,
            detail=json.dumps(detail, separators=(",", ":")),
            epoch=status.epoch,
            restarts=status.restarts,
            unclean_restarts=status.unclean_restarts,
            last_restart_lost_ms=status.last_restart_lost_ms,
            storage_error=status.storage_error,
            memory_batches=status.memory_batches,
            held_unsynced=status.held_unsynced,
            badge_id=status.badge,
        )
    )
    # Ranges the device dropped (a full outbox, an overflowing memory ring while storage failed): recorded as gaps,
    # keyed by their first seq (idempotent).
    epoch = status.epoch or 0
    writes += [rows.gap_write(vehicle, epoch, first, last, now_ms=now_ms) for first, last in status.dropped_ranges]
    return writes


MAX_RESTART_ROWS = 100  # restarts missed between two statuses beyond this get no row each (only the newest do)


def restart_writes(status: VehicleStatus, seen: RestartsSeen | None, *, now_ms: int) -> list[Write]:
    """A row for each restart `status` counts that `seen` (the vehicle's previous counts) did not: the newest with
    the loss the status reports and when it started (arrival minus uptime), the ones missed in between with what
    can be inferred. A status showing no restart beyond `seen` writes nothing, so a resent status adds no row, and
    a row written again (a replay) lands on the same key. Without `seen` (the vehicle's first status with restart
    counts, or a new sequence epoch) only the newest restart gets a row."""
    restarts = status.restarts
    if not restarts:
        return []
    epoch = status.epoch or 0
    if seen is not None and seen.epoch != epoch:
        seen = None  # another sequence epoch (a new state directory) counts its restarts from 0 again
    before = RestartsSeen(epoch, 0, 0) if seen is None else seen
    if restarts <= before.restarts:
        return []
    new = restarts - before.restarts
    first = restarts if seen is None else max(before.restarts + 1, restarts - MAX_RESTART_ROWS + 1)
    unclean = _all_unclean(status.unclean_restarts, before.unclean_restarts, new)
    started_ms = now_ms - round(status.uptime_s * 1000) if status.uptime_s is not None else None
    return [
        AGENT_RESTARTS.row(
            vehicle_id=status.vehicle_id,
            epoch=epoch,
            restart=number,
            started_at=started_ms if number == restarts else None,
            unclean=unclean,
            lost_ms=status.last_restart_lost_ms if number == restarts else None,
            reported_at=now_ms,
        )
        for number in range(first, restarts + 1)
    ]


def _all_unclean(unclean_now: int | None, unclean_before: int | None, new: int) -> bool | None:
    """Whether each of `new` restarts followed a crash: True when the unclean count rose by all of them, False when
    it did not rise, None when some did and some did not (which ones is not known) or a count is missing."""
    if unclean_now is None or unclean_before is None:
        return None
    rose = unclean_now - unclean_before
    return True if rose == new else False if rose == 0 else None


def seen_after(writes: list[Write]) -> dict[str, RestartsSeen | None]:
    """The restart counts the status rows among `writes` store: what vehicle_status says once they are written."""
    seen: dict[str, RestartsSeen | None] = {}
    for name, values in writes:
        if name != VEHICLE_STATUS.write:
            continue
        epoch, restarts, unclean = (VEHICLE_STATUS.value(values, c) for c in ("epoch", "restarts", "unclean_restarts"))
        vehicle = VEHICLE_STATUS.value(values, "vehicle_id")
        seen[vehicle] = None if restarts is None else RestartsSeen(epoch or 0, restarts, unclean)
    return seen
