"""Validation of one incoming message: either a decoded batch or the reason it was rejected.

The checks, in order: the routing key names a valid vehicle; the message decodes (magic, version, sizes, CRC,
sample block: see fleetsense.wire); the payload's vehicle is the topic's; every value is finite and physically
possible for the sensor; the sample period is sane; the sample times are plausible. A device whose clock is not
synchronised (flag CLOCK_UNSYNCED) is still accepted when its times are plausible; when they are not, the reason
says so, and the verdict carries the batch's header (`mistimed`): a message whose only fault is its clock is kept
whole in the time quarantine (cloud/quarantine.py), from which it can be re-admitted re-timed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from fleetsense.cloud.decode import DecodedBatch, decode_batch

from fleetsense import quantities, wire
from fleetsense.errors import FleetsenseError
from fleetsense.ids import vehicle_from_routing_key

MAX_FUTURE_US = 5 * 60 * 1_000_000  # clocks drift; more than this ahead is a wrong clock
MAX_AGE_US = 30 * 86_400 * 1_000_000  # the outbox holds about two days; older data is a wrong clock
# The two clock rules, as their reasons word them (docs/wire-format.md, "What the cloud enforces", rule 6).
IN_THE_FUTURE = "in the future"
TOO_OLD = "more than 30 days old"
CLOCK_RULES = (IN_THE_FUTURE, TOO_OLD)

# Per-channel bounds (low, high) for each kind, in wire channel order: what the sensor can measure at all
# (fleetsense.quantities: the chips' widest ranges plus a margin).
CHANNEL_BOUNDS: dict[wire.Kind, list[tuple[float, float]]] = {
    kind: [quantities.BY_KEY[name].possible for name in names] for kind, names in wire.CHANNEL_NAMES.items()
}


@dataclass(frozen=True)
class Verdict:
    batch: DecodedBatch | None
    reason: str | None
    mistimed: wire.Header | None = None  # set when the message is sound but its sample times are implausible


def check_message(routing_key: str, body: bytes, *, now_us: int | None = None) -> Verdict:
    try:
        vehicle = vehicle_from_routing_key(routing_key)
    except (ValueError, FleetsenseError) as exc:
        return Verdict(None, f"bad routing key: {exc}")
    if len(body) > wire.MAX_MESSAGE_BYTES:
        return Verdict(None, f"message of {len(body)} bytes exceeds the limit of {wire.MAX_MESSAGE_BYTES}")
    try:
        batch = decode_batch(body)
    except FleetsenseError as exc:
        return Verdict(None, f"undecodable: {exc.message}")
    # The routing key is what the broker authenticated; a payload claiming another vehicle is forged.
    if batch.header.vehicle_id != vehicle:
        return Verdict(None, f"payload names vehicle {batch.header.vehicle_id!r} but arrived on {vehicle!r}'s topic")
    reason = check_values(batch) or check_period(batch.header)
    if reason:
        return Verdict(None, reason)
    reason = check_clock(batch.header, time.time_ns() // 1000 if now_us is None else now_us)
    return Verdict(None, reason, mistimed=batch.header) if reason else Verdict(batch, None)


def check_values(batch: DecodedBatch) -> str | None:
    header = batch.header
    if batch.counts is None:
        return _check_values_si(batch)
    if not header.sample_count:
        return None
    # A float32 scale or offset turns a count into a double without overflow, so a value is non-finite exactly
    # when its channel's scale or offset is.
    if not all(map(math.isfinite, header.scales + header.offsets)):
        return _check_values_si(batch)
    channels = _channels_that_can_leave_range(header.kind, header.scales, header.offsets)
    if not channels:  # the usual case: the sensor's counts cannot reach beyond its range
        return None
    # offset + count * scale is monotonic in the count, in floating point too: a column's extreme values are
    # those of its extreme counts.
    least, most = batch.counts.min(axis=0).tolist(), batch.counts.max(axis=0).tolist()
    bounds = CHANNEL_BOUNDS[header.kind]
    for channel in channels:
        scale, offset = header.scales[channel], header.offsets[channel]
        low, high = bounds[channel]
        ends = (offset + least[channel] * scale, offset + most[channel] * scale)
        if min(ends) < low or max(ends) > high:
            return _check_values_si(batch)  # the reason, worded from the SI values
    return None


@lru_cache(maxsize=1024)  # keys cannot tell 0.0 from -0.0, which the comparisons below cannot either
def _channels_that_can_leave_range(
    kind: wire.Kind, scales: tuple[float, ...], offsets: tuple[float, ...]
) -> tuple[int, ...]:
    """The channels whose int16 counts can map beyond the sensor's range at these (finite) scales and offsets."""
    return tuple(
        channel
        for channel, ((low, high), scale, offset) in enumerate(zip(CHANNEL_BOUNDS[kind], scales, offsets, strict=True))
        if not all(low <= offset + count * scale <= high for count in (-32768, 32767))
    )


def _check_values_si(batch: DecodedBatch) -> str | None:
    values = batch.values_si
    if not np.isfinite(values).all():
        return "non-finite values (a NaN or infinite scale or offset)"
    names = wire.CHANNEL_NAMES[batch.header.kind]
    for channel, (low, high) in enumerate(CHANNEL_BOUNDS[batch.header.kind]):
        column = values[:, channel]
        if column.size and (column.min() < low or column.max() > high):
            bad = column.min() if column.min() < low else column.max()
            return f"physically impossible {names[channel]} = {bad:.6g} (the sensor's range is {low:.6g}..{high:.6g})"
    return None


def check_times(batch: DecodedBatch, now_us: int) -> str | None:
    return check_period(batch.header) or check_clock(batch.header, now_us)


def check_period(header: wire.Header) -> str | None:
    if not 1_000 <= header.sample_period_us <= 10_000_000:
        return f"sample period {header.sample_period_us} us is outside 1 ms..10 s"
    return None


def check_clock(header: wire.Header, now_us: int) -> str | None:
    """Whether the sample times can be true at `now_us`; re-timing the batch can fix what this refuses."""
    unsynced = " (the device says its clock is not synchronised)" if header.flags & wire.Flags.CLOCK_UNSYNCED else ""
    end_us = header.end_time_us
    if end_us > now_us + MAX_FUTURE_US:
        return f"sample times up to {_iso(end_us)} are {IN_THE_FUTURE}{unsynced}"
    if header.start_time_us < now_us - MAX_AGE_US:
        return f"sample times from {_iso(header.start_time_us)} are {TOO_OLD}{unsynced}"
    return None


def clock_rule(reason: str) -> str:
    """Which clock rule a quarantine reason names ("in the future", "more than 30 days old"), else the reason."""
    return next((rule for rule in CLOCK_RULES if rule in reason), reason)


def _iso(time_us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time_us / 1e6))
