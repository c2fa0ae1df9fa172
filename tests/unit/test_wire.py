"""Wire format: the spec's exact bytes, round trips through both decoders, and a specific error for every kind
of malformed message. Fuzzing is in test_wire_fuzz.py, the size target in test_wire_size.py."""

from __future__ import annotations

import dataclasses
import random
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fleetsense.cloud.decode import decode_batch

from fleetsense import wire
from fleetsense.errors import ConfigError, WireFormatError

SPEC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"


def spec_example(name: str) -> bytes:
    """The hex of the code block after `<!-- example:NAME -->` in docs/wire-format.md (comments ignored)."""
    block = re.search(rf"<!-- example:{name} -->\n```\n(.*?)```", SPEC.read_text(), re.S)
    assert block, f"docs/wire-format.md has no example {name}"
    data = bytearray()
    for line in block.group(1).splitlines():
        for token in line.split():
            if not re.fullmatch(r"[0-9a-f]{2}", token):
                break
            data.append(int(token, 16))
    return bytes(data)


def baro_example() -> wire.Batch:
    pressures_pa = (101325.0, 101325.3, 101325.1, 101324.8, 101400.2, 101400.4)
    temperatures_c = (21.50, 21.50, 21.51, 21.49, 21.52, 21.50)
    return wire.Batch(
        vehicle_id="van-042",
        seq=7,
        start_time_us=1_764_000_000_000_000,
        sample_period_us=1_000_000,
        kind=wire.Kind.BARO,
        scales=(0.1, 0.01),
        offsets=(101325.0, 0.0),
        samples=tuple(
            (wire.counts_from_si(p, scale=0.1, offset=101325.0), wire.counts_from_si(t, scale=0.01))
            for p, t in zip(pressures_pa, temperatures_c, strict=True)
        ),
        flags=wire.Flags.GAP_BEFORE,
    )


def accel_example(**overrides: object) -> wire.Batch:
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


def imu_batch(samples: tuple[tuple[int, ...], ...], **overrides: object) -> wire.Batch:
    fields: dict[str, object] = {
        "vehicle_id": "van-001",
        "seq": 2**63 - 1,
        "start_time_us": -5,
        "sample_period_us": 2**32 - 1,
        "kind": wire.Kind.IMU,
        "scales": (0.5, 0.25, 1.0, 2.0, 0.001, 1e-6),
        "samples": samples,
    }
    fields.update(overrides)
    return wire.Batch(**fields)  # type: ignore[arg-type]


def counts_via_numpy(message: bytes) -> tuple[tuple[int, ...], ...]:
    decoded = decode_batch(message)
    counts = np.round((decoded.values_si - np.array(decoded.header.offsets)) / np.array(decoded.header.scales))
    return tuple(tuple(int(v) for v in row) for row in counts)


def resign(message: bytes) -> bytes:
    """`message` with its CRC recomputed, so a test reaches the checks behind the CRC."""
    body = message[:-4]
    return body + struct.pack(">I", zlib.crc32(body))


# --- the spec's examples ------------------------------------------------------------------------------------


def test_v2_worked_example_is_what_the_encoder_writes() -> None:
    assert wire.encode(baro_example()) == spec_example("v2")


def test_v2_worked_example_decodes_in_both_decoders() -> None:
    message = spec_example("v2")
    batch = baro_example()
    assert (
        wire.decode(message).samples
        == batch.samples
        == ((0, 2150), (3, 2150), (1, 2151), (-2, 2149), (752, 2152), (754, 2150))
    )
    decoded = decode_batch(message)
    np.testing.assert_allclose(decoded.values_si[:, 0], [101325.0, 101325.3, 101325.1, 101324.8, 101400.2, 101400.4])
    np.testing.assert_allclose(decoded.values_si[:, 1], [21.50, 21.50, 21.51, 21.49, 21.52, 21.50], rtol=1e-7)
    assert decoded.values_si.dtype == np.float64
    assert decoded.sample_time_us.tolist() == [1_764_000_000_000_000 + i * 1_000_000 for i in range(6)]
    header = decoded.header
    assert (header.version, header.kind, header.flags, header.escape_count) == (
        2,
        wire.Kind.BARO,
        wire.Flags.GAP_BEFORE,
        1,
    )
    assert header.codings == (
        wire.ChannelCoding(predictor=wire.Predictor.PREVIOUS, base=0, rice_k=1),
        wire.ChannelCoding(predictor=wire.Predictor.BASE, base=2150, rice_k=0),
    )


def test_v1_worked_example_still_decodes() -> None:
    message = spec_example("v1")
    assert wire.encode_v1(accel_example()) == message
    batch = wire.decode(message)
    assert batch.samples == ((1, -2, 16384), (-32768, 32767, 0))
    assert batch.offsets == (0.0, 0.0, 0.0)
    assert counts_via_numpy(message) == batch.samples
    assert decode_batch(message).header.version == 1


def test_crc_is_the_zlib_one_the_spec_names() -> None:
    assert zlib.crc32(b"123456789") == 0xCBF43926
    assert "0xCBF43926" in SPEC.read_text()


# --- round trips --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "samples",
    [
        (),
        ((0, 0, 0, 0, 0, 0),),
        ((-32768, 32767, -32768, 32767, 0, 1), (32767, -32768, 32767, -32768, -1, 0)),  # deltas wrap around
        tuple((i, -i, 16384 + (i % 3), 7, 7, 7) for i in range(300)),
        tuple(((i * 7919) % 65536 - 32768,) * 6 for i in range(100)),  # every residual escapes or k is large
    ],
)
def test_round_trip_through_both_decoders(samples: tuple[tuple[int, ...], ...]) -> None:
    batch = imu_batch(samples, flags=wire.Flags.CLOCK_UNSYNCED | wire.Flags.RESTARTED)
    message = wire.encode(batch)
    decoded = wire.decode(message)
    assert decoded.samples == samples
    assert (decoded.vehicle_id, decoded.seq, decoded.start_time_us, decoded.sample_period_us) == (
        "van-001",
        2**63 - 1,
        -5,
        2**32 - 1,
    )
    assert decoded.flags == wire.Flags.CLOCK_UNSYNCED | wire.Flags.RESTARTED
    assert decoded.scales == pytest.approx(batch.scales, rel=1e-7)
    numpy_counts = decode_batch(message)
    assert numpy_counts.values_si.shape == (len(samples), 6)
    assert counts_via_numpy(message) == samples


def test_offsets_default_to_zero_and_travel_as_float32() -> None:
    assert accel_example().offsets == (0.0, 0.0, 0.0)
    batch = baro_example()
    assert wire.decode(wire.encode(batch)).offsets == (101325.0, 0.0)


def test_sample_times_and_channel_names() -> None:
    assert accel_example().sample_time_us(3) == 1_764_000_000_000_000 + 30_000
    for kind in wire.Kind:
        assert wire.CHANNEL_NAMES[kind]
    assert wire.CHANNEL_NAMES[wire.Kind.IMU][3:] == ("gx_rad_s", "gy_rad_s", "gz_rad_s")


def test_counts_from_si_rounds_and_saturates() -> None:
    assert wire.counts_from_si(101325.34, scale=0.1, offset=101325.0) == 3
    assert wire.counts_from_si(1e9, scale=0.1) == 32767
    assert wire.counts_from_si(-1e9, scale=0.1) == -32768


def test_outliers_are_escaped_instead_of_widening_the_channel() -> None:
    quiet = [(i % 3 - 1, 0, 16384, 0, 0, 0) for i in range(100)]
    calm = wire.encode(imu_batch(tuple(quiet)))
    quiet[50] = (30000, 0, 16384, 0, 0, 0)  # one pothole
    message = wire.encode(imu_batch(tuple(quiet)))
    header = wire.decode_header(message)
    # One escape with the level predictor (two with deltas: into the spike and out of it).
    assert header.escape_count == 1 and header.codings[0].rice_k <= 2
    assert len(message) - len(calm) <= 2 * 33 // 8 + 1  # fixed-width packing would add ~170 bytes
    assert wire.decode(message).samples == tuple(quiet)


def test_the_edge_needs_no_numpy() -> None:
    script = (
        "import sys\n"
        "sys.modules['numpy'] = None\n"
        "from fleetsense import wire\n"
        "b = wire.Batch(vehicle_id='v', seq=0, start_time_us=0, sample_period_us=1, kind=wire.Kind.BARO,\n"
        "               scales=(1.0, 1.0), samples=((1, 2), (3, 4)))\n"
        "assert wire.decode(wire.encode(b)).samples == b.samples\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- malformed messages -------------------------------------------------------------------------------------

Decoder = Callable[[bytes], object]
DECODERS: list[Decoder] = [wire.decode, decode_batch]


def v2() -> bytes:
    return spec_example("v2")


def with_byte(message: bytes, offset: int, value: int) -> bytes:
    return message[:offset] + bytes([value]) + message[offset + 1 :]


# Offsets in the v2 example (L = 7): N at 33, C at 35, E at 36, descriptors at 38 and 50, escapes at 62,
# bit stream at 64..70, CRC at 71.
MALFORMED: list[tuple[str, Callable[[], bytes], str]] = [
    ("empty", lambda: b"", "truncated"),
    ("not ours", lambda: b"XX" + v2()[2:], "not a fleetsense message"),
    ("future version", lambda: with_byte(v2(), 2, 9), "unsupported wire version 9"),
    ("too short for v2", lambda: v2()[:20], "truncated"),
    ("cut short", lambda: v2()[:-3], "bad CRC"),
    ("bit flip", lambda: with_byte(v2(), 40, v2()[40] ^ 0x10), "bad CRC"),
    ("crc flip", lambda: v2()[:-1] + bytes([v2()[-1] ^ 1]), "bad CRC"),
    ("header into the crc", lambda: resign(v2()[:40] + b"\0\0\0\0"), "truncated"),
    ("bad vehicle id", lambda: resign(v2()[:6] + b"van/042" + v2()[13:]), "malformed header"),
    ("non-ascii vehicle id", lambda: resign(with_byte(v2(), 6, 0xFF)), "not ASCII"),
    ("unknown kind", lambda: resign(with_byte(v2(), 4, 0x63)), "unknown sensor kind 99"),
    ("reserved flag", lambda: resign(with_byte(v2(), 3, 0x80)), "reserves"),
    ("channel count", lambda: resign(with_byte(v2(), 4, 2)), "channel count mismatch"),
    ("zero period", lambda: resign(v2()[:29] + b"\0\0\0\0" + v2()[33:]), "zero sample period"),
    ("too many escapes", lambda: resign(v2()[:36] + b"\0\x0d" + v2()[38:]), "escapes for only 12 values"),
    ("unknown predictor", lambda: resign(with_byte(v2(), 48, 2)), "unknown predictor 2"),
    ("k out of range", lambda: resign(with_byte(v2(), 49, 17)), "bit width .* out of range"),
    ("block too short", lambda: resign(with_byte(v2(), 34, 60)), "lengths disagree"),
    ("block too long", lambda: resign(v2()[:71] + b"\0\0\0" * 40 + v2()[71:]), "lengths disagree"),
    ("escape count", lambda: resign(with_byte(v2(), 37, 0)), "lengths disagree|escape codes"),
    ("extra byte", lambda: resign(v2()[:71] + b"\0" + v2()[71:]), "lengths disagree"),
    ("extra codes", lambda: resign(v2()[:70] + b"\x81" + v2()[71:]), "more unary codes"),
    ("missing codes", lambda: resign(v2()[:64] + b"\x32\x29\x00\x00\x9c\xa1\x00" + v2()[71:]), "truncated sample"),
    ("code too long", lambda: resign(v2()[:64] + b"\x32\x29\x00\x00\x4e\x50\xc0" + v2()[71:]), "unary code of 17"),
    ("small escape", lambda: resign(v2()[:62] + b"\x00\x03" + v2()[64:]), "below 16"),
    ("escape too big", lambda: resign(v2()[:62] + b"\xff\xff" + v2()[64:]), "exceeds 16 bits"),
]


@pytest.mark.parametrize("decoder", DECODERS, ids=["pure", "numpy"])
@pytest.mark.parametrize(("mutate", "complaint"), [(m, c) for _, m, c in MALFORMED], ids=[n for n, _, _ in MALFORMED])
def test_malformed_messages_are_refused_with_a_reason(
    decoder: Decoder, mutate: Callable[[], bytes], complaint: str
) -> None:
    with pytest.raises(WireFormatError, match=complaint):
        decoder(mutate())


@pytest.mark.parametrize("decoder", DECODERS, ids=["pure", "numpy"])
@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda m: m[:-1], "header promises"),
        (lambda m: m + b"\x00\x00", "header promises"),
        (lambda m: m[:10], "truncated"),
        (lambda m: with_byte(m, 4, 0x63), "unknown sensor kind"),
        (lambda m: with_byte(m, 3, 0x02), "reserves"),
        (lambda m: with_byte(m, 26 + 7, 6), "channel count mismatch"),
        (lambda m: m[:6] + b"van/042" + m[13:], "malformed header"),
    ],
)
def test_malformed_v1_messages_are_refused(decoder: Decoder, mutate: Callable[[bytes], bytes], complaint: str) -> None:
    with pytest.raises(WireFormatError, match=complaint):
        decoder(mutate(spec_example("v1")))


def test_errors_say_what_to_do_about_corruption_and_versions() -> None:
    with pytest.raises(WireFormatError) as corrupted:
        wire.decode(v2()[:-1] + b"\0")
    assert corrupted.value.hint and "outbox" in corrupted.value.hint
    with pytest.raises(WireFormatError) as newer:
        wire.decode(with_byte(v2(), 2, 4))
    assert newer.value.hint and "update" in newer.value.hint


# --- what the encoder refuses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "complaint"),
    [
        (lambda: accel_example(samples=((40000, 0, 0),)), "int16"),
        (lambda: accel_example(samples=((1, 2),)), "3 channels"),
        (lambda: accel_example(scales=(1.0, 1.0)), "kind ACCEL has 3 channels"),
        (lambda: accel_example(offsets=(1.0,)), "offsets"),
        (lambda: accel_example(seq=-1), "sequence number"),
        (lambda: accel_example(seq=2**63), "sequence number"),
        (lambda: accel_example(sample_period_us=0), "sample period"),
        (lambda: accel_example(start_time_us=2**63), "start time"),
        (lambda: accel_example(flags=wire.Flags(0x40)), "flags"),
        (lambda: accel_example(scales=(1e39, 1.0, 1.0)), "float32"),
        (lambda: imu_batch(((0,) * 6,) * 10923), "at most 65535 values"),
        (lambda: accel_example(samples=((0, 0, 0),) * 65536), "at most 65535 samples"),
    ],
)
def test_encoder_refuses_what_the_format_cannot_carry(batch: Callable[[], wire.Batch], complaint: str) -> None:
    with pytest.raises(WireFormatError, match=complaint):
        wire.encode(batch())


def test_encoder_refuses_a_bad_vehicle_id_and_v1_refuses_offsets() -> None:
    with pytest.raises(ConfigError, match="invalid vehicle id"):
        wire.encode(accel_example(vehicle_id="fleet.#"))
    with pytest.raises(WireFormatError, match="offsets"):
        wire.encode_v1(dataclasses.replace(baro_example(), flags=wire.Flags.NONE))
    with pytest.raises(WireFormatError, match="flags"):
        wire.encode_v1(accel_example(flags=wire.Flags.GAP_BEFORE))


@pytest.mark.parametrize("encode", [wire.encode, wire.encode_v1])
def test_a_seq_of_2_to_the_63_or_more_is_refused_by_every_decoder(encode: object) -> None:
    """seq is a u64 on the wire but the cloud stores it as a signed 64-bit int: a larger one once passed
    validation and crashed the job when the bigint column was bound (issue 12)."""
    message = bytearray(encode(accel_example(seq=2**63 - 1)))  # type: ignore[operator]
    seq_at = 6 + len("van-042")
    message[seq_at] = 0x80  # 2^63 + 2^63 - 1 ... the top bit set
    body = bytes(message[:-4])
    if message[2] == 2:
        message[-4:] = zlib.crc32(body).to_bytes(4, "big")
    with pytest.raises(wire.WireFormatError, match="not below 2\\^63"):
        wire.decode_header(bytes(message))
    with pytest.raises(wire.WireFormatError, match="not below 2\\^63"):
        decode_batch(bytes(message))


def test_a_batch_with_a_sequence_epoch_is_v3_and_round_trips_through_both_decoders() -> None:
    batch = imu_batch(((1, 2, 3, 4, 5, 6), (-7, 8, -9, 10, -11, 12)), seq=41, epoch=0xDEADBEEF)
    message = wire.encode(batch)
    assert message[2] == 3
    assert message[6 + 7 + 8 : 6 + 7 + 12] == bytes.fromhex("deadbeef")  # right after the seq
    assert len(message) == len(wire.encode(dataclasses.replace(batch, epoch=0))) + 4  # v2 plus the epoch
    assert wire.decode(message) == dataclasses.replace(batch, scales=wire.decode(message).scales)
    assert wire.decode_header(message).epoch == 0xDEADBEEF
    assert decode_batch(message).header.epoch == 0xDEADBEEF
    assert counts_via_numpy(message) == batch.samples


def test_a_v3_message_must_state_a_non_zero_epoch_and_v1_v2_cannot_carry_one() -> None:
    message = bytearray(wire.encode(imu_batch(((1,) * 6,), epoch=5)))
    message[6 + 7 + 8 : 6 + 7 + 12] = bytes(4)
    message[-4:] = zlib.crc32(bytes(message[:-4])).to_bytes(4, "big")
    with pytest.raises(WireFormatError, match="must state its sequence epoch"):
        wire.decode_header(bytes(message))
    with pytest.raises(WireFormatError, match="sequence epoch"):
        wire.encode_v1(accel_example(epoch=5))
    with pytest.raises(WireFormatError, match="sequence epoch"):
        wire.encode(accel_example(epoch=2**32))


def test_retimed_moves_only_the_start_time_and_the_flags_and_stays_valid() -> None:
    rng = random.Random(1306)
    for case in range(500):
        batch = wire.Batch(
            vehicle_id="van-7",
            seq=rng.randrange(2**40),
            start_time_us=rng.randrange(-(2**50), 2**50),
            sample_period_us=10_000,
            kind=wire.Kind.BARO,
            scales=(0.1, 0.01),
            offsets=(100_000.0, 0.0),
            samples=tuple((rng.randrange(-500, 500), rng.randrange(2000, 3000)) for _ in range(rng.randrange(0, 12))),
            flags=wire.Flags.CLOCK_UNSYNCED,
            epoch=rng.choice([0, rng.randrange(1, 2**32)]),
        )
        shift = rng.randrange(-(2**45), 2**45)
        moved = wire.decode(
            wire.retimed(
                wire.encode(batch), shift, set_flags=wire.Flags.CLOCK_STEPPED, clear_flags=wire.Flags.CLOCK_UNSYNCED
            )
        )
        expected = dataclasses.replace(
            wire.decode(wire.encode(batch)), start_time_us=batch.start_time_us + shift, flags=wire.Flags.CLOCK_STEPPED
        )
        assert moved == expected, f"case {case}"


def test_retimed_refuses_a_shift_out_of_range_and_flags_the_version_lacks() -> None:
    batch = wire.Batch(
        vehicle_id="van-7",
        seq=1,
        start_time_us=2**62,
        sample_period_us=10_000,
        kind=wire.Kind.ACCEL,
        scales=(0.001,) * 3,
        offsets=(0.0,) * 3,
        samples=((1, 2, 3),),
    )
    with pytest.raises(wire.WireFormatError, match="int64 range"):
        wire.retimed(wire.encode(batch), 2**62)
    with pytest.raises(wire.WireFormatError, match="not defined for version 1"):
        wire.retimed(wire.encode_v1(batch), 5, set_flags=wire.Flags.RESTARTED)
