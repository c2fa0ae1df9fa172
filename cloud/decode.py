"""Vectorised decoding of a wire message: the header in Python (fleetsense.wire checks it), the sample block
with whole-array numpy operations, one message at a time and never sample by sample.

A 1 s IMU batch holds only 600 values, so what a message costs is the number of numpy calls (a microsecond or
so each), not their arithmetic: the sample block takes about fifteen calls whatever its channel count, using index
arrays that depend only on the sample count and the channels' Rice parameters and are cached (a fleet's batches
use a few dozen combinations of them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from fleetsense import wire
from fleetsense.errors import WireFormatError

# The residual of every zigzagged value 0..65535 (0, 1, 2, 3, 4 ... -> 0, -1, 1, -2, 2 ...): one lookup per value
# instead of four whole-array operations.
_ZIGZAG = np.arange(1 << 16, dtype=np.int32)
_RESIDUALS = ((_ZIGZAG >> 1) ^ -(_ZIGZAG & 1)).astype(np.int16)
_RESIDUALS.flags.writeable = False
# Without escapes a high part is at most 15, so (h << k) | lo fits in 16 bits for every k up to this.
_K_THAT_CANNOT_OVERFLOW = 12
_PREVIOUS = wire.Predictor.PREVIOUS
# Index arrays are cached for batches of up to this many values (32 bytes each: 19 KB for a 1 s IMU batch, 8 MB
# for a full cache of the largest); a longer batch is rare, and decoding it costs much more than computing them.
_CACHED_VALUES = 2048


@dataclass(frozen=True)
class DecodedBatch:
    header: wire.Header
    values_si: npt.NDArray[np.float64]  # [sample, channel]: offset + count * scale, units in wire.CHANNEL_NAMES
    sample_time_us: npt.NDArray[np.int64]  # [sample]
    # [sample, channel]: the raw int16 counts values_si comes from (validation checks ranges on them); None when
    # the batch was built from SI values only.
    counts: npt.NDArray[np.int16] | None = None


def decode_batch(message: bytes) -> DecodedBatch:
    """Decode any readable version; raises WireFormatError, with the reason, for anything malformed."""
    header = wire.decode_header(message)
    counts = decode_counts(message, header)
    return DecodedBatch(
        header=header,
        values_si=_values_si(counts, header.scales, header.offsets),
        sample_time_us=_sample_offsets_us(header.sample_count, header.sample_period_us) + header.start_time_us,
        counts=counts,
    )


def decode_counts(message: bytes, header: wire.Header) -> npt.NDArray[np.int16]:
    """The raw counts [sample, channel] of a message whose header `wire.decode_header` has checked."""
    if header.version == 1:
        block = np.frombuffer(
            message, dtype=">i2", count=header.sample_count * header.channels, offset=header.samples_offset
        )
        return block.reshape(header.sample_count, header.channels).astype(np.int16)
    return _decode_v2_counts(message, header)


def _values_si(
    counts: npt.NDArray[np.int16], scales: tuple[float, ...], offsets: tuple[float, ...]
) -> npt.NDArray[np.float64]:
    """offset + count * scale per channel, in double precision."""
    # Cached only for positive scales: a cache key cannot tell 0.0 from -0.0, and with positive scales the sign of a
    # zero offset cannot show in any value.
    conversion = _conversion(scales, offsets) if min(scales) > 0.0 else None
    values: npt.NDArray[np.float64]
    if conversion is None:
        with np.errstate(all="ignore"):  # non-finite values, which validation rejects; inf * 0 would warn
            values = np.asarray(offsets, dtype=np.float64) + counts.astype(np.float64) * np.asarray(scales)
        return values
    scale_array, offset_array = conversion
    values = np.multiply(counts, scale_array)
    if offset_array is not None:
        values += offset_array
    return values


@lru_cache(maxsize=1024)  # an IMU's scales and offsets are the same in every batch
def _conversion(
    scales: tuple[float, ...], offsets: tuple[float, ...]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None] | None:
    """For positive scales: the scales and the offsets as arrays, the offsets None when they are all zero (adding
    them would change nothing); None if a scale or offset is not finite. Finite float32 scales and offsets need
    no errstate: they cannot overflow a double (32768 * 3.4e38 + 3.4e38)."""
    if not all(map(math.isfinite, scales + offsets)):
        return None
    scale_array, offset_array = np.array(scales, dtype=np.float64), np.array(offsets, dtype=np.float64)
    scale_array.flags.writeable = offset_array.flags.writeable = False
    return scale_array, offset_array if any(offsets) else None


def _sample_offsets_us(count: int, period_us: int) -> npt.NDArray[np.int64]:
    """i * period for every sample i, read-only: cached for the usual batch sizes."""
    return _cached_sample_offsets_us(count, period_us) if count <= _CACHED_VALUES else _offsets_us(count, period_us)


def _offsets_us(count: int, period_us: int) -> npt.NDArray[np.int64]:
    offsets = np.arange(count, dtype=np.int64) * period_us
    offsets.flags.writeable = False
    return offsets


_cached_sample_offsets_us = lru_cache(maxsize=64)(_offsets_us)  # (count, period): a fleet uses a handful


@dataclass(frozen=True)
class _LowFields:
    """Where the low-bit fields of a v2 sample block lie, for one sample count and one Rice k per channel.

    Every array is per value, in stream order (channel by channel, sample by sample). The field of a value is read
    as the big-endian u32 at stream byte `byte`, shifted right by `shift`, OR-ed with `fill` = -2**k: that keeps
    the field's k bits, sets every bit above them, and so gives `lo - 2**k` (-1 for k = 0, whatever was read).
    """

    bits: int  # the low-bit fields' total length: the unary codes start here
    byte: npt.NDArray[np.intp]
    shift: npt.NDArray[np.int64]
    fill: npt.NDArray[np.int64]
    k: npt.NDArray[np.int64]
    widest: int  # the largest k


def _low_fields(count: int, ks: tuple[int, ...]) -> _LowFields:
    return _cached_low_fields(count, ks) if count * len(ks) <= _CACHED_VALUES else _find_low_fields(count, ks)


def _find_low_fields(count: int, ks: tuple[int, ...]) -> _LowFields:
    k = np.repeat(np.array(ks, dtype=np.int64), count)
    first_bit = np.repeat(np.cumsum([0, *ks[:-1]], dtype=np.int64) * count, count)
    position = first_bit + np.tile(np.arange(count, dtype=np.int64), len(ks)) * k
    # A field of at most 16 bits starting at bit (position mod 8) of its byte lies within the u32 read there.
    shift = np.where(k > 0, 32 - k - (position & 7), 0)
    byte = np.where(k > 0, position >> 3, 0).astype(np.intp)
    fill = -(np.int64(1) << k)
    for array in (byte, shift, fill, k):
        array.flags.writeable = False
    return _LowFields(count * sum(ks), byte, shift, fill, k, max(ks, default=0))


_cached_low_fields = lru_cache(maxsize=128)(_find_low_fields)  # a fleet's batches use a few dozen


def _decode_v2_counts(message: bytes, header: wire.Header) -> npt.NDArray[np.int16]:
    """Undo docs/wire-format.md 'Sample block' for all channels at once; the same checks as wire.decode."""
    count, channels, escape_count, codings = header.sample_count, header.channels, header.escape_count, header.codings
    needed = count * channels
    stream_offset = header.samples_offset + 2 * escape_count
    stream_bytes = header.samples_end - stream_offset
    fields = _low_fields(count, tuple([coding.rice_k for coding in codings]))

    # High parts: unary codes (h zeros then a one); the ones mark where each code ends. The stream is unpacked
    # from the byte before it (the header's last) so that a one can be planted just before the first code: then
    # every code's length, h + 1, is the distance between two ones.
    bits = np.unpackbits(np.frombuffer(message, dtype=np.uint8, count=stream_bytes + 1, offset=stream_offset - 1))
    before_codes = 7 + fields.bits
    bits[before_codes] = 1
    ones = bits[before_codes:].view(np.bool_).nonzero()[0]
    codes = ones.size - 1
    if codes < needed:
        raise WireFormatError(f"truncated sample block: {codes} of {needed} unary codes present")
    end_bit = fields.bits + int(ones[needed])
    if codes > needed or stream_bytes != (end_bit + 7) // 8:
        wire.check_bitstream_end(stream_bytes, end_bit, codes - needed)
    if not needed:
        wire.check_escapes(0, 0, escape_count, wire.ESCAPE)
        return np.zeros((0, channels), dtype=np.int16)
    lengths = ones[1 : needed + 1] - ones[:needed]
    longest = int(lengths.max()) - 1
    if longest >= wire.ESCAPE:
        escapes = np.frombuffer(message, dtype=">u2", count=escape_count, offset=header.samples_offset)
        escaped = lengths == wire.ESCAPE + 1
        wire.check_escapes(longest, int(np.count_nonzero(escaped)), escape_count, int(escapes.min(initial=wire.ESCAPE)))
        lengths[escaped] = escapes.astype(np.intp) + 1
    elif escape_count:
        wire.check_escapes(longest, 0, escape_count, wire.ESCAPE)

    # z = (h << k) | lo = ((h + 1) << k) + (lo - 2**k), the low fields read all at once (see _LowFields).
    if fields.bits:
        words: npt.NDArray[np.uint32] = np.ndarray(
            (stream_bytes,), dtype=">u4", buffer=message, offset=stream_offset, strides=(1,)
        )  # word j: the 4 bytes from stream byte j on, which the CRC after the stream always completes
        low = np.right_shift(words[fields.byte], fields.shift)
        low |= fields.fill
    else:
        low = fields.fill
    zigzagged = np.left_shift(lengths, fields.k, out=lengths)  # in place: saves an allocation per step
    zigzagged += low
    if (longest >= wire.ESCAPE or fields.widest > _K_THAT_CANNOT_OVERFLOW) and zigzagged.max() > 0xFFFF:
        channel = int(np.argmax((zigzagged.reshape(channels, count) > 0xFFFF).any(axis=1)))
        raise WireFormatError(f"channel {channel}: a residual exceeds 16 bits (escape value too large for k)")

    # x = wrap16(base + r) or wrap16(base + cumulative sum of r): int16 arithmetic wraps by itself.
    residuals = _RESIDUALS[zigzagged].reshape(channels, count)
    bases = []
    for channel, coding in enumerate(codings):
        bases.append(coding.base)
        if coding.predictor is _PREVIOUS:
            np.add.accumulate(residuals[channel], out=residuals[channel])
    counts = np.empty((count, channels), dtype=np.int16)
    np.add(residuals.T, np.array(bases, dtype=np.int16), out=counts)
    return counts
