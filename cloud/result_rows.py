"""Pure mapping from what the job decided to the Cassandra writes that record it, each row built by column name
against its table's declaration (cloud/tables.py), so a value can never land in another column.
Every key is deterministic (vehicle, seq, start time, minute, day), so replaying the same input rewrites the
same rows: idempotent writes are what make at-least-once delivery exactly-once in the tables."""

from __future__ import annotations

from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.cloud.store import Write, day_bucket, hour_bucket_ms, rejected_message_id, rejected_row

from fleetsense import event_kinds, wire
from fleetsense.errors import FleetsenseError
from fleetsense.ids import vehicle_from_routing_key


def block_writes(
    header: wire.Header, message: bytes, *, epoch: int, new_hour: bool, latest: bool = True
) -> list[Write]:
    """The batch as received (one row), the vehicle's hour index when this batch opens an hour, and (if
    `latest`) the vehicle's latest-seen row."""
    hour = hour_bucket_ms(header.start_time_us)
    writes: list[Write] = [
        t.BATCHES.row(
            vehicle_id=header.vehicle_id,
            hour_bucket=hour,
            epoch=epoch,
            seq=header.seq,
            kind=int(header.kind),
            start_time=header.start_time_us // 1000,
            sample_period_us=header.sample_period_us,
            sample_count=header.sample_count,
            flags=int(header.flags),
            message=message,
        )
    ]
    if latest:
        writes.append(vehicle_write(header.vehicle_id, header.seq, header.end_time_us))
    if new_hour:
        writes.append(t.VEHICLE_HOURS.row(vehicle_id=header.vehicle_id, hour_bucket=hour))
    return writes


def vehicle_write(vehicle_id: str, seq: int, end_us: int) -> Write:
    """The vehicle's latest seq and sample time, timestamped with that sample time (older never wins)."""
    return t.VEHICLES.row(
        vehicle_id=vehicle_id, last_seq=seq, last_sample_time=end_us // 1000, using_timestamp_us=end_us
    )


def event_writes(vehicle_id: str, event: Any, *, detected_at_ms: int) -> list[Write]:
    """A driving event (peak in g) or an environment event (peak in degC), by vehicle and by fleet; the peak's
    unit is its kind's (fleetsense.event_kinds)."""
    if hasattr(event, "peak_g"):
        return _event_rows(vehicle_id, event, event.kind, float(event.peak_g), detected_at_ms)
    return _event_rows(vehicle_id, event, event.key, float(event.peak_c), detected_at_ms)


def stop_writes(vehicle_id: str, stop: Any, *, detected_at_ms: int) -> list[Write]:
    """A stop is an event of kind "stop" whose peak is its length in seconds."""
    return _event_rows(vehicle_id, stop, "stop", float(stop.duration_s), detected_at_ms)


def _event_rows(vehicle_id: str, event: Any, kind: str, peak: float, detected_at_ms: int) -> list[Write]:
    unit = event_kinds.BY_KEY[kind].peak_unit
    day = day_bucket(event.start_us)
    start_ms, end_ms = event.start_us // 1000, event.end_us // 1000
    duration_ms = int((event.end_us - event.start_us) // 1000)
    hour_of_day = int((event.start_us // 3_600_000_000) % 24)
    common = {"start_time": start_ms, "kind": kind, "end_time": end_ms, "duration_ms": duration_ms}
    return [
        t.EVENTS_BY_VEHICLE.row(
            vehicle_id=vehicle_id, day_bucket=day, **common, peak=peak, peak_unit=unit, detected_at=detected_at_ms
        ),
        t.EVENTS_BY_FLEET.row(
            day_bucket=day, hour=hour_of_day, vehicle_id=vehicle_id, **common, peak=peak, peak_unit=unit
        ),
    ]


def minute_write(vehicle_id: str, minute: Any, *, now_ms: int) -> Write:
    return t.MINUTE_AGGREGATES.row(
        vehicle_id=vehicle_id,
        day_bucket=day_bucket(minute.minute_start_us),
        minute=minute.minute_start_us // 1000,
        sample_count=minute.sample_count,
        driving_s=float(minute.driving_s),
        max_longitudinal_g=minute.max_longitudinal_g,
        max_lateral_g=minute.max_lateral_g,
        rms_vertical_g=minute.rms_vertical_g,
        event_counts=minute.event_counts,
        mean_temperature_c=minute.mean_temperature_c,
        altitude_change_m=minute.altitude_change_m,
        updated_at=now_ms,
    )


def trip_write(vehicle_id: str, trip: Any) -> Write:
    return t.TRIPS.row(
        vehicle_id=vehicle_id,
        start_time=trip.start_us // 1000,
        end_time=trip.end_us // 1000,
        duration_s=float(trip.duration_s),
        open=bool(trip.is_open),
        event_counts=trip.event_counts,
        score=float(trip.score),
    )


def score_write(vehicle_id: str, score: Any, *, now_ms: int) -> Write:
    return t.DRIVER_SCORES.row(
        vehicle_id=vehicle_id,
        day_bucket=day_bucket(score.day_start_us),
        score=float(score.score),
        driving_s=float(score.driving_s),
        event_counts=score.event_counts,
        updated_at=now_ms,
    )


def gap_write(vehicle_id: str, epoch: int, first_seq: int, last_seq: int, *, now_ms: int) -> Write:
    return t.SEQ_GAPS.row(
        vehicle_id=vehicle_id, epoch=epoch, first_seq=first_seq, last_seq=last_seq, recorded_at=now_ms
    )


def late_write(vehicle_id: str, epoch: int, seq: int, *, now_ms: int) -> Write:
    return t.LATE_ARRIVALS.row(vehicle_id=vehicle_id, epoch=epoch, seq=seq, arrived_at=now_ms)


def conflict_write(
    vehicle_id: str, seq: int, *, epoch: int, first_crc: int, other_crc: int, message: bytes, now_ms: int
) -> Write:
    return t.SEQ_CONFLICTS.row(
        vehicle_id=vehicle_id,
        seq=seq,
        other_crc=other_crc,
        epoch=epoch,
        first_crc=first_crc,
        recorded_at=now_ms,
        message=message,
    )


def restart_write(vehicle_id: str, *, epoch: int, previous_next_seq: int | None, first_seq: int, now_ms: int) -> Write:
    # A sequence that took the last seq (2^63 - 1) expects 2^63 next, which no bigint holds: recorded as unknown.
    if previous_next_seq is not None and previous_next_seq > wire.SEQ_LIMIT - 1:
        previous_next_seq = None
    return t.SEQUENCE_RESTARTS.row(
        vehicle_id=vehicle_id,
        epoch=epoch,
        restarted_at=now_ms,
        previous_next_seq=previous_next_seq,
        first_seq=first_seq,
    )


def rejected_write(routing_key: str, body: bytes, reason: str, *, now_ms: int, whole: bool = False) -> Write:
    """A rejection row for a message, its source the vehicle its routing key names (store.rejected_row)."""
    return rejected_row(source_of(routing_key), routing_key, body, reason, now_ms=now_ms, whole=whole)


INT64_MAX = 2**63 - 1


def quarantine_writes(routing_key: str, header: wire.Header, body: bytes, reason: str, *, now_ms: int) -> list[Write]:
    """A message rejected for its sample times only, kept whole in the time quarantine (by vehicle and day of
    arrival, under its rejection's message id) and the day's index row. Not rejection rows: the limiter that
    keeps excerpts of the rest never drops these (cloud/rejections.py)."""
    day = day_bucket(now_ms * 1000)
    return [
        t.TIME_QUARANTINE.row(
            vehicle_id=header.vehicle_id,
            day_bucket=day,
            message_id=rejected_message_id(routing_key, body),
            received_at=now_ms,
            routing_key=routing_key,
            reason=reason[:1000],
            epoch=header.epoch,
            seq=header.seq,
            kind=int(header.kind),
            start_time_us=header.start_time_us,
            # A start near the int64 limit cannot end beyond what a bigint holds.
            end_time_us=min(header.end_time_us, INT64_MAX),
            message=body,
        ),
        t.QUARANTINE_DAYS.row(day_bucket=day, vehicle_id=header.vehicle_id, last_reason=reason[:1000], last_at=now_ms),
    ]


def source_of(routing_key: str) -> str:
    """The vehicle a routing key names (the broker authenticated it), or "" for one that names none."""
    try:
        return vehicle_from_routing_key(routing_key)
    except (ValueError, FleetsenseError):
        return ""
