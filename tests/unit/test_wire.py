"""Wire format: exact bytes, round trips, and a clear error for every kind of malformed message."""

from __future__ import annotations

import struct

import pytest

from fleetsense import wire
from fleetsense.errors import WireFormatError


def make_batch(**overrides: object) -> wire.Batch:
    fields: dict[str, object] = {
        "vehicle_id": "van-042",
        "seq": 7,
        "start_time_us": 1_764_000_000_000_000,
        "sample_period_us": 10_000,
        "kind": wire.Kind.ACCEL,
        "scales": (0.000598, 0.000598, 0.000598),
        "samples": ((1, -2, 16384), (-32768, 32767, 0)),
    }
    fields.update(overrides)
    return wire.Batch(**fields)  # type: ignore[arg-type]


def test_exact_bytes_of_a_small_batch() -> None:
    message = wire.encode(make_batch())
    expected = (
        b"FS\x01\x00\x01\x07van-042"
        + struct.pack(">QqIB", 7, 1_764_000_000_000_000, 10_000, 3)
        + struct.pack(">fff", 0.000598, 0.000598, 0.000598)
        + b"\x00\x02"
        + struct.pack(">6h", 1, -2, 16384, -32768, 32767, 0)
    )
    assert message == expected


def test_round_trip_keeps_every_field() -> None:
    batch = make_batch(flags=wire.Flags.CLOCK_UNSYNCED)
    decoded = wire.decode(wire.encode(batch))
    assert decoded.samples == batch.samples
    assert decoded.flags == wire.Flags.CLOCK_UNSYNCED
    assert (decoded.vehicle_id, decoded.seq, decoded.start_time_us) == ("van-042", 7, batch.start_time_us)
    assert decoded.scales == pytest.approx(batch.scales)
    assert decoded.sample_time_us(1) == batch.start_time_us + 10_000


def test_header_says_where_the_samples_start() -> None:
    message = wire.encode(make_batch())
    header = wire.decode_header(message)
    assert header.sample_count == 2
    assert len(message) - header.samples_offset == 2 * 3 * 2


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda m: b"XX" + m[2:], "not a fleetsense message"),
        (lambda m: m[:2] + b"\x09" + m[3:], "unsupported wire version 9"),
        (lambda m: m[:-1], "header promises"),
        (lambda m: m + b"\x00\x00", "header promises"),
        (lambda m: m[:10], "truncated"),
        (lambda m: m[:4] + b"\x63" + m[5:], "unknown sensor kind"),
        (lambda m: m[:6] + b"van/042" + m[13:], "malformed header"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(mutate, complaint) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WireFormatError, match=complaint):
        wire.decode(mutate(wire.encode(make_batch())))


def test_encoder_refuses_what_the_format_cannot_carry() -> None:
    with pytest.raises(WireFormatError, match="int16"):
        wire.encode(make_batch(samples=((40000, 0, 0),)))
    with pytest.raises(WireFormatError, match="channels"):
        wire.encode(make_batch(samples=((1, 2),)))
    with pytest.raises(Exception, match="invalid vehicle id"):
        wire.encode(make_batch(vehicle_id="fleet.#"))
