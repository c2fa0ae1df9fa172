"""The cloud's vectorised decoder and validation against their references: the pure-Python `wire.decode` for the
counts, `offset + count * scale` for the SI values, the float check of the SI values for the range verdicts.

The messages are written here by a spec-level encoder that takes any predictor, base and k per channel, not only
the ones `wire.encode` would pick (k = 16, k = 0 with escapes, bases far from the data), so that every path of the
decoder is taken: all low-field widths and offsets within a byte, escapes, long streams and one-sample batches."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import struct
import zlib

import numpy as np
import pytest
from fleetsense.cloud.decode import DecodedBatch, decode_batch, decode_counts
from fleetsense.cloud.validate import CHANNEL_BOUNDS, check_values

from fleetsense import wire
from fleetsense.errors import WireFormatError

Coding = tuple[int, int, int]  # predictor, base, k
Samples = tuple[tuple[int, ...], ...]


def encode_with(
    kind: wire.Kind,
    samples: Samples,
    codings: list[Coding],
    *,
    scales: tuple[float, ...] | None = None,
    offsets: tuple[float, ...] | None = None,
    start_time_us: int = 1_764_000_000_000_000,
    period_us: int = 10_000,
) -> bytes:
    """A v2 message straight from docs/wire-format.md 'Sample block', with the codings given."""
    channels = len(codings)
    scales = scales or (1.0,) * channels
    offsets = offsets or (0.0,) * channels
    lows, codes, escapes = [], [], []
    for c, (predictor, base, k) in enumerate(codings):
        column = [sample[c] for sample in samples]
        predictions = [base, *column][: len(column)] if predictor == wire.Predictor.PREVIOUS else [base] * len(column)
        for x, prediction in zip(column, predictions, strict=True):
            r = ((x - prediction + 32768) & 0xFFFF) - 32768
            z = 2 * r if r >= 0 else -2 * r - 1
            lows.append(format(z & ((1 << k) - 1), f"0{k}b") if k else "")
            high = z >> k
            if high >= wire.ESCAPE:
                escapes.append(high)
                high = wire.ESCAPE
            codes.append("0" * high + "1")
    bits = "".join(lows) + "".join(codes)
    bits += "0" * (-len(bits) % 8)
    vid = b"van-042"
    body = b"".join(
        [
            struct.pack(">2sBBBB", b"FS", 2, 0, int(kind), len(vid)),
            vid,
            struct.pack(">QqIHBH", 7, start_time_us, period_us, len(samples), channels, len(escapes)),
            *(struct.pack(">ffhBB", s, o, b, p, k) for s, o, (p, b, k) in zip(scales, offsets, codings, strict=True)),
            struct.pack(f">{len(escapes)}H", *escapes),
            int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b"",
        ]
    )
    return body + struct.pack(">I", zlib.crc32(body))


def random_case(rng: random.Random, count: int | None = None) -> tuple[wire.Kind, Samples, list[Coding]]:
    kind = rng.choice(list(wire.Kind))
    channels = len(wire.CHANNEL_NAMES[kind])
    count = rng.choice([0, 1, 2, 3, 5, 8, 31, 100, 100, 100, 333]) if count is None else count
    columns = []
    for _ in range(channels):
        style = rng.choice(["noise", "ramp", "full", "constant", "spiky"])
        level, spread = rng.randint(-32768, 32767), rng.choice([0, 1, 3, 30, 300, 3000, 40000])
        if style == "full":
            column = [rng.randint(-32768, 32767) for _ in range(count)]
        elif style == "constant":
            column = [level] * count
        elif style == "ramp":
            column = [level + i * spread // 50 for i in range(count)]
        else:
            column = [level + int(rng.gauss(0, 1 + spread / 100)) for _ in range(count)]
            if style == "spiky":
                column = [x + rng.choice([-spread, spread]) if rng.random() < 0.05 else x for x in column]
        columns.append([max(-32768, min(32767, x)) for x in column])
    codings = []
    for column in columns:
        predictor = rng.choice([0, 1])
        base = rng.choice([rng.randint(-32768, 32767), column[0] if column else 0, sorted(column or [0])[count // 2]])
        codings.append((predictor, base, rng.randint(0, 16)))
    return kind, tuple(zip(*columns, strict=True)) if count else (), codings


def test_every_coding_decodes_like_the_reference() -> None:
    """Counts, SI values (bit for bit, signed zeros and NaNs included) and sample times, on random batches."""
    rng = random.Random(20260521)
    specials = [0.0, -0.0, 1.0, -1.0, 1e-45, 3.4e38, -3.4e38, math.inf, -math.inf, math.nan]
    seen_k, seen_escapes = set(), 0
    for _ in range(1500):
        kind, samples, codings = random_case(rng)
        channels = len(codings)
        scales = tuple(
            rng.choice([*specials, rng.uniform(-1, 1), rng.uniform(0, 1e-3)])
            if rng.random() < 0.3
            else rng.uniform(1e-4, 0.1)
            for _ in range(channels)
        )
        offsets = tuple(rng.choice([0.0, 0.0, -0.0, *specials, float(rng.randint(-200_000, 200_000))]) for _ in scales)
        start = rng.choice([0, -(2**63), 2**63 - 1, rng.randint(-(2**63), 2**63 - 1)])
        message = encode_with(
            kind,
            samples,
            codings,
            scales=scales,
            offsets=offsets,
            start_time_us=start,
            period_us=rng.randint(1, 2**32 - 1),
        )
        reference = wire.decode(message)
        assert reference.samples == samples  # the encoder above follows the spec
        batch = decode_batch(message)
        assert batch.counts is not None and batch.counts.dtype == np.int16
        assert batch.counts.shape == (len(samples), channels) and batch.counts.tolist() == [list(s) for s in samples]
        counts = np.array(samples, dtype=np.int16).reshape(len(samples), channels)
        with np.errstate(all="ignore"):
            expected = np.array(reference.offsets) + counts.astype(np.float64) * np.array(reference.scales)
        assert batch.values_si.dtype == np.float64 and batch.values_si.flags.c_contiguous
        assert batch.values_si.tobytes() == expected.tobytes()  # bit for bit
        with np.errstate(over="ignore"):
            times = reference.start_time_us + np.arange(len(samples), dtype=np.int64) * reference.sample_period_us
        assert batch.sample_time_us.dtype == np.int64 and batch.sample_time_us.tolist() == times.tolist()
        seen_k.update(k for _, _, k in codings)
        seen_escapes += batch.header.escape_count > 0
    assert seen_k == set(range(17)) and seen_escapes > 100


def test_caches_never_confuse_zero_with_minus_zero() -> None:
    """0.0 == -0.0 as cache keys, but not in the values they lead to (0.0 * -3 is -0.0, -0.0 + 0.0 is 0.0)."""
    samples = ((-3, 0), (0, 0), (3, 0))
    for scales, offsets in itertools.product(itertools.product([0.0, -0.0, 0.5], repeat=2), repeat=2):
        batch = decode_batch(encode_with(wire.Kind.BARO, samples, [(0, 0, 2)] * 2, scales=scales, offsets=offsets))
        expected = np.array(offsets) + np.array(samples, dtype=np.float64) * np.array(scales)
        assert batch.values_si.tobytes() == expected.tobytes(), (scales, offsets)


def test_long_batches_and_many_escapes() -> None:
    rng = random.Random(7)
    for count in (1000, 10922):
        kind, samples, codings = random_case(rng, count)
        codings = [(p, b, rng.choice([0, 1, 16])) for p, b, _ in codings]
        message = encode_with(kind, samples, codings)
        assert decode_counts(message, wire.decode_header(message)).tolist() == [list(s) for s in samples]


def test_returned_arrays_are_the_callers_own() -> None:
    """Index arrays and time offsets are cached between messages: what a caller gets must never alias them."""
    message = encode_with(wire.Kind.ACCEL, ((1, 2, 3), (4, 5, 6)), [(1, 0, 3), (0, 5, 0), (1, 3, 16)])
    first = decode_batch(message)
    for array in (first.values_si, first.sample_time_us, first.counts):
        assert array is not None and array.flags.writeable
        array[...] = 0
    second = decode_batch(message)
    assert second.counts is not None and second.counts.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert second.sample_time_us.tolist() == [1_764_000_000_000_000, 1_764_000_000_010_000]


def outcome(decoder: str, message: bytes) -> tuple[str, object]:
    try:
        if decoder == "pure":
            return "ok", wire.decode(message).samples
        counts = decode_batch(message).counts
        assert counts is not None
        return "ok", tuple(tuple(row) for row in counts.tolist())
    except WireFormatError as exc:
        return "error", exc.message


def test_mutated_sample_blocks_are_refused_alike() -> None:
    """Behind a valid CRC, whatever is changed in the counts, descriptors, escapes or bit stream, both decoders
    give the same counts or the same reason."""
    rng = random.Random(99)
    originals = []
    while len(originals) < 300:
        kind, samples, codings = random_case(rng, rng.choice([1, 2, 3, 6, 20, 100]))
        originals.append(encode_with(kind, samples, codings)[:-4])
    outcomes: dict[str, int] = {"ok": 0, "error": 0}
    reasons = set()
    for _ in range(6000):
        body = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(33, len(body) + 1)  # from N on: N, C, E, descriptors, escapes, stream
            action = rng.random()
            if action < 0.6 and where < len(body):
                if rng.random() < 0.5:
                    body[where] ^= 1 << rng.randrange(8)
                else:
                    body[where] = rng.choice([0, 1, 16, 17, 0x7F, 0x80, 0xFF, rng.randint(0, 255)])
            elif action < 0.8:
                body.insert(where, rng.randint(0, 255))
            elif where < len(body):
                del body[where]
        message = bytes(body) + struct.pack(">I", zlib.crc32(body))
        result = outcome("pure", message)
        assert outcome("numpy", message) == result
        outcomes[result[0]] += 1
        if result[0] == "error":
            reasons.add(str(result[1]).split(":")[0].split(" ")[0])
    assert outcomes["ok"] > 300 and outcomes["error"] > 3000
    assert {"truncated", "lengths", "malformed", "channel"} <= reasons  # the sample block's every check was hit


@pytest.mark.parametrize("kind", list(wire.Kind))
def test_range_verdicts_from_counts_match_the_si_values(kind: wire.Kind) -> None:
    """check_values decides on the counts' extremes; the verdict and its wording must be those of the SI values."""
    rng = random.Random(int(kind))
    channels = len(wire.CHANNEL_NAMES[kind])
    verdicts = set()
    for _ in range(400):
        _, samples, codings = random_case(rng, rng.choice([0, 1, 5, 50]))
        samples = tuple(sample[:channels] + (0,) * (channels - len(sample)) for sample in samples)
        codings = (codings + [(0, 0, 8)] * channels)[:channels]
        scales = tuple(
            rng.choice([rng.uniform(-0.02, 0.02), rng.uniform(-5, 5), 0.0, -0.0, 0.1, 1e-3]) for _ in codings
        )
        offsets = tuple(
            rng.choice([0.0, -0.0, float(rng.randint(-120_000, 120_000)), float(rng.randint(25_000, 115_000))])
            for _ in codings
        )
        if rng.random() < 0.05:
            scales = (math.nan, *scales[1:])
        batch = decode_batch(encode_with(kind, samples, codings, scales=scales, offsets=offsets))
        from_si = check_values(dataclasses.replace(batch, counts=None))
        assert check_values(batch) == from_si
        verdicts.add(from_si.split(" ")[0] if from_si else None)
    assert {None, "physically"} <= verdicts


@pytest.mark.parametrize("kind", list(wire.Kind))
def test_range_verdicts_at_the_extreme_counts(kind: wire.Kind) -> None:
    """Scales and offsets that put a bound of the sensor's range just inside count -32768 or 32767, so that only
    the most extreme count is out of range, and then only that one."""
    channels = len(wire.CHANNEL_NAMES[kind])
    verdicts = set()
    for channel, (low, high) in enumerate(CHANNEL_BOUNDS[kind]):
        step = (high - low) / 65534.5  # 65534 steps fit in the range, 65535 do not
        middle = float(round((low + high) / 2))
        half = min(middle - low, high - middle)
        for scale, offset in [
            (step, low + 32768.25 * step),  # only 32767 is too high
            (step, high - 32767.25 * step),  # only -32768 is too low
            (-step, high - 32767.25 * step),  # only -32768 is too high
            (half / 32767.5, middle),  # -32768 is too low
            (-half / 32767.5, middle),  # -32768 is too high
            (half / 32768, middle),  # -32768 is exactly on the bound
        ]:
            for count in (-32768, -32767, 32766, 32767, 0):
                sample = tuple(count if c == channel else 0 for c in range(channels))
                scales = tuple(scale if c == channel else 1e-3 for c in range(channels))
                offsets = tuple(offset if c == channel else 0.0 for c in range(channels))
                codings = [(0, 0, 16)] * channels
                batch = decode_batch(encode_with(kind, (sample,), codings, scales=scales, offsets=offsets))
                from_si = check_values(dataclasses.replace(batch, counts=None))
                assert check_values(batch) == from_si, (channel, scale, offset, count)
                verdicts.add(from_si.split(" ")[0] if from_si else None)
    assert verdicts == {None, "physically"}


def test_a_batch_built_without_counts_is_still_checked() -> None:
    header = wire.decode_header(encode_with(wire.Kind.BARO, ((0, 0),), [(0, 0, 0), (0, 0, 0)]))
    batch = DecodedBatch(header, np.array([[5_000.0, 20.0]]), np.array([0], dtype=np.int64))
    assert (check_values(batch) or "").startswith("physically impossible pressure_pa = 5000")
