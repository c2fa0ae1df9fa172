"""Pure mapping from what the job decided to the Cassandra writes that record it (see cloud/store.STATEMENTS).
Every key is deterministic (vehicle, seq, start time, minute, day), so replaying the same input rewrites the
same rows: idempotent writes are what make at-least-once delivery exactly-once in the tables."""

from __future__ import annotations

from typing import Any

from fleetsense.cloud.store import Write, day_bucket, hour_bucket_ms, rejected_message_id, rejected_values

from fleetsense import wire
from fleetsense.errors import FleetsenseError
from fleetsense.ids import vehicle_from_routing_key


def block_writes(
    header: wire.Header, message: bytes, *, epoch: int, new_hour: bool, latest: bool = True
) -> list[Write]:
    """The batch as received (one row), the vehicle's hour index when this batch opens an hour, and (if
    `latest`) the vehicle's latest-seen row."""
    hour = hour_bucket_ms(header.start_time_us)
    end_us = header.end_time_us
    writes: list[Write] = [
        (
            "block",
            (
                header.vehicle_id,
                hour,
                epoch,
                header.seq,
                int(header.kind),
                header.start_time_us // 1000,
                header.sample_period_us,
                header.sample_count,
                int(header.flags),
                message,
            ),
        ),
    ]
    if latest:
        writes.append(vehicle_write(header.vehicle_id, header.seq, end_us))
    if new_hour:
        writes.append(("hour", (header.vehicle_id, hour)))
    return writes


def vehicle_write(vehicle_id: str, seq: int, end_us: int) -> Write:
    """The vehicle's latest seq and sample time, timestamped with that sample time (older never wins)."""
    return ("vehicle", (vehicle_id, seq, end_us // 1000, end_us))


def event_writes(vehicle_id: str, event: Any, *, detected_at_ms: int) -> list[Write]:
    """A driving event (peak in g) or an environment event (peak in degC), by vehicle and by fleet."""
    if hasattr(event, "peak_g"):
        kind, peak, unit = event.kind, float(event.peak_g), "g"
    else:
        kind, peak, unit = f"{event.kind}_{event.direction}", float(event.peak_c), "degC"
    day = day_bucket(event.start_us)
    start_ms, end_ms = event.start_us // 1000, event.end_us // 1000
    duration_ms = int((event.end_us - event.start_us) // 1000)
    hour_of_day = int((event.start_us // 3_600_000_000) % 24)
    return [
        ("event_by_vehicle", (vehicle_id, day, start_ms, kind, end_ms, duration_ms, peak, unit, detected_at_ms)),
        ("event_by_fleet", (day, hour_of_day, start_ms, vehicle_id, kind, end_ms, duration_ms, peak, unit)),
    ]


def stop_writes(vehicle_id: str, stop: Any, *, detected_at_ms: int) -> list[Write]:
    """A stop is an event of kind "stop" whose peak is its length in seconds."""
    day = day_bucket(stop.start_us)
    start_ms, end_ms = stop.start_us // 1000, stop.end_us // 1000
    duration_ms = int((stop.end_us - stop.start_us) // 1000)
    hour_of_day = int((stop.start_us // 3_600_000_000) % 24)
    peak = float(stop.duration_s)
    return [
        ("event_by_vehicle", (vehicle_id, day, start_ms, "stop", end_ms, duration_ms, peak, "s", detected_at_ms)),
        ("event_by_fleet", (day, hour_of_day, start_ms, vehicle_id, "stop", end_ms, duration_ms, peak, "s")),
    ]


def minute_write(vehicle_id: str, minute: Any, *, now_ms: int) -> Write:
    return (
        "minute",
        (
            vehicle_id,
            day_bucket(minute.minute_start_us),
            minute.minute_start_us // 1000,
            minute.sample_count,
            float(minute.driving_s),
            minute.max_longitudinal_g,
            minute.max_lateral_g,
            minute.rms_vertical_g,
            minute.event_counts,
            minute.mean_temperature_c,
            minute.altitude_change_m,
            now_ms,
        ),
    )


def trip_write(vehicle_id: str, trip: Any) -> Write:
    return (
        "trip",
        (
            vehicle_id,
            trip.start_us // 1000,
            trip.end_us // 1000,
            float(trip.duration_s),
            bool(trip.is_open),
            trip.event_counts,
            float(trip.score),
        ),
    )


def score_write(vehicle_id: str, score: Any, *, now_ms: int) -> Write:
    return (
        "score",
        (
            vehicle_id,
            day_bucket(score.day_start_us),
            float(score.score),
            float(score.driving_s),
            score.event_counts,
            now_ms,
        ),
    )


def gap_write(vehicle_id: str, epoch: int, first_seq: int, last_seq: int, *, now_ms: int) -> Write:
    return ("gap", (vehicle_id, epoch, first_seq, last_seq, now_ms))


def late_write(vehicle_id: str, epoch: int, seq: int, *, now_ms: int) -> Write:
    return ("late", (vehicle_id, epoch, seq, now_ms))


def conflict_write(
    vehicle_id: str, seq: int, *, epoch: int, first_crc: int, other_crc: int, message: bytes, now_ms: int
) -> Write:
    return ("conflict", (vehicle_id, seq, other_crc, epoch, first_crc, now_ms, message))


def restart_write(vehicle_id: str, *, epoch: int, previous_next_seq: int | None, first_seq: int, now_ms: int) -> Write:
    # A sequence that took the last seq (2^63 - 1) expects 2^63 next, which no bigint holds: recorded as unknown.
    if previous_next_seq is not None and previous_next_seq > wire.SEQ_LIMIT - 1:
        previous_next_seq = None
    return ("restart", (vehicle_id, epoch, now_ms, previous_next_seq, first_seq))


def rejected_write(routing_key: str, body: bytes, reason: str, *, now_ms: int, whole: bool = False) -> Write:
    """A rejection row for a message, its source the vehicle its routing key names (store.rejected_values)."""
    return ("rejected", rejected_values(source_of(routing_key), routing_key, body, reason, now_ms=now_ms, whole=whole))


INT64_MAX = 2**63 - 1


def quarantine_writes(routing_key: str, header: wire.Header, body: bytes, reason: str, *, now_ms: int) -> list[Write]:
    """A message rejected for its sample times only, kept whole in the time quarantine (by vehicle and day of
    arrival, under its rejection's message id) and the day's index row. Not rejection rows: the limiter that
    keeps excerpts of the rest never drops these (cloud/rejections.py)."""
    day = day_bucket(now_ms * 1000)
    values = (
        header.vehicle_id,
        day,
        rejected_message_id(routing_key, body),
        now_ms,
        routing_key,
        reason[:1000],
        header.epoch,
        header.seq,
        int(header.kind),
        header.start_time_us,
        min(header.end_time_us, INT64_MAX),  # a start near the int64 limit cannot end beyond what a bigint holds
        body,
    )
    return [("quarantine", values), ("quarantine_day", (day, header.vehicle_id, reason[:1000], now_ms))]


def source_of(routing_key: str) -> str:
    """The vehicle a routing key names (the broker authenticated it), or "" for one that names none."""
    try:
        return vehicle_from_routing_key(routing_key)
    except (ValueError, FleetsenseError):
        return ""
