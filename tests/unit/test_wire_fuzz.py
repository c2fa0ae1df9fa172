"""Fuzzing the wire format: every batch the format can carry round-trips, and whatever bytes arrive, the only
error a decoder raises is WireFormatError. The pure-Python and numpy decoders must agree on every input:
the same counts, or the same error."""

from __future__ import annotations

import random
import struct
import zlib

import numpy as np
from fleetsense.cloud.decode import decode_batch, decode_counts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetsense import wire
from fleetsense.errors import WireFormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
int16 = st.integers(-32768, 32767)
float32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def resign(message: bytes) -> bytes:
    body = message[:-4]
    return body + struct.pack(">I", zlib.crc32(body))


def outcome(decoder: str, message: bytes) -> tuple[str, object]:
    """('ok', counts) or ('error', reason); anything but WireFormatError propagates and fails the test."""
    try:
        if decoder == "pure":
            return "ok", wire.decode(message).samples
        header = wire.decode_header(message)
        counts = decode_counts(message, header)
        decode_batch(message)  # the SI conversion and times must not fail either
        return "ok", tuple(tuple(int(v) for v in row) for row in counts)
    except WireFormatError as exc:
        return "error", exc.message


def assert_decoders_agree(message: bytes) -> None:
    assert outcome("pure", message) == outcome("numpy", message)


@st.composite
def batches(draw: st.DrawFn) -> wire.Batch:
    kind = draw(st.sampled_from(list(wire.Kind)))
    channels = len(wire.CHANNEL_NAMES[kind])
    count = draw(st.integers(0, 120))
    # Mix of regimes: smooth ramps, noise around a level, full-range garbage, constant, spikes.
    style = draw(st.sampled_from(["noise", "ramp", "full", "constant", "spiky"]))
    level = draw(int16)
    spread = draw(st.integers(0, 40000))
    rng = random.Random(draw(st.integers(0, 2**32)))

    def value(i: int) -> int:
        if style == "full":
            return rng.randint(-32768, 32767)
        if style == "constant":
            return level
        if style == "ramp":
            return level + i * spread // 50
        base = level + int(rng.gauss(0, 1 + spread / 100))
        return base + (rng.choice([-1, 1]) * spread if style == "spiky" and rng.random() < 0.05 else 0)

    samples = tuple(tuple(max(-32768, min(32767, value(i) + c)) for c in range(channels)) for i in range(count))
    return wire.Batch(
        vehicle_id=draw(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)),
        seq=draw(st.integers(0, 2**63 - 1)),
        start_time_us=draw(st.integers(-(2**63), 2**63 - 1)),
        sample_period_us=draw(st.integers(1, 2**32 - 1)),
        kind=kind,
        scales=tuple(draw(st.lists(float32, min_size=channels, max_size=channels))),
        offsets=tuple(draw(st.lists(float32, min_size=channels, max_size=channels))),
        samples=samples,
        flags=wire.Flags(draw(st.integers(0, 0x0F))),
        epoch=draw(st.just(0) | st.integers(1, 2**32 - 1)),  # v2 or v3
    )


@FUZZ
@given(batches())
def test_every_batch_round_trips_through_both_decoders(batch: wire.Batch) -> None:
    message = wire.encode(batch)
    decoded = wire.decode(message)
    assert decoded.samples == batch.samples
    assert (decoded.vehicle_id, decoded.seq, decoded.start_time_us, decoded.sample_period_us, decoded.flags) == (
        batch.vehicle_id,
        batch.seq,
        batch.start_time_us,
        batch.sample_period_us,
        batch.flags,
    )
    assert decoded.scales == batch.scales and decoded.offsets == batch.offsets  # float32 values travel exactly
    assert outcome("numpy", message) == ("ok", batch.samples)
    values = decode_batch(message).values_si
    assert values.shape == (len(batch.samples), batch.channels)
    if batch.samples and all(np.isfinite(batch.scales)):
        expected = np.array(batch.offsets) + np.array(batch.samples, dtype=np.float64) * np.array(batch.scales)
        np.testing.assert_array_equal(values, expected)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_only_ever_raise_wire_format_errors(data: bytes) -> None:
    for message in (data, b"FS\x01" + data, b"FS\x02" + data, resign(b"FS\x02" + data + b"\0\0\0\0")):
        assert_decoders_agree(message)


@FUZZ
@given(batches(), st.data())
def test_truncations_and_bit_flips_are_caught(batch: wire.Batch, data: st.DataObject) -> None:
    message = wire.encode(batch)
    cut = data.draw(st.integers(0, len(message) - 1))
    assert outcome("pure", message[:cut])[0] == "error"
    assert outcome("numpy", message[:cut])[0] == "error"
    bit = data.draw(st.integers(0, 8 * len(message) - 1))
    flipped = bytearray(message)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)
    assert outcome("pure", bytes(flipped))[0] == "error"  # CRC-32 catches every burst up to 32 bits
    assert outcome("numpy", bytes(flipped))[0] == "error"


@FUZZ
@given(batches(), st.data())
def test_mutations_behind_a_valid_crc_never_escape_as_other_errors(batch: wire.Batch, data: st.DataObject) -> None:
    """A buggy encoder (or a forger) produces a correct CRC: the checks behind it must hold on their own."""
    body = bytearray(wire.encode(batch)[:-4])
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(body)))
        action = data.draw(st.sampled_from(["set", "insert", "delete"]))
        byte = data.draw(st.integers(0, 255))
        if action == "set" and where < len(body):
            body[where] = byte
        elif action == "insert":
            body.insert(where, byte)
        elif where < len(body):
            del body[where]
    assert_decoders_agree(resign(bytes(body) + b"\0\0\0\0"))


def test_many_seeded_mutations_behind_a_valid_crc() -> None:
    """The same as above without hypothesis' shrinking but with many more cases, mutating where it hurts:
    the counts, escape count, descriptors and the sample block."""
    rng = random.Random(20251126)
    originals = []
    for count in (0, 1, 5, 40):
        for kind in wire.Kind:
            channels = len(wire.CHANNEL_NAMES[kind])
            samples = tuple(
                tuple(rng.choice([rng.randint(-32768, 32767), rng.randint(-5, 5), 16384]) for _ in range(channels))
                for _ in range(count)
            )
            batch = wire.Batch(
                vehicle_id="van-001",
                seq=count,
                start_time_us=0,
                sample_period_us=10_000,
                kind=kind,
                scales=(1.0,) * channels,
                samples=samples,
            )
            originals.append(wire.encode(batch)[:-4])
    outcomes = {"ok": 0, "error": 0}
    for _ in range(4000):
        body = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(6 + 7 + 20, len(body) + 1)  # behind the vehicle id and times
            if rng.random() < 0.7 and where < len(body):
                body[where] = rng.choice([0, 1, 2, 15, 16, 17, 0x7F, 0x80, 0xFF, rng.randint(0, 255)])
            elif rng.random() < 0.5:
                body.insert(where, rng.randint(0, 255))
            elif where < len(body):
                del body[where]
        message = resign(bytes(body) + b"\0\0\0\0")
        result = outcome("pure", message)
        assert result == outcome("numpy", message)
        outcomes[result[0]] += 1
    assert outcomes["error"] > 1000 and outcomes["ok"] > 50  # both paths were exercised
