"""Vectorised decoding of a wire message: the header in Python (fleetsense.wire checks it), the sample block
with whole-array numpy operations, one message at a time and never sample by sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetsense import wire
from fleetsense.errors import WireFormatError


@dataclass(frozen=True)
class DecodedBatch:
    header: wire.Header
    values_si: npt.NDArray[np.float64]  # [sample, channel]: offset + count * scale, units in wire.CHANNEL_NAMES
    sample_time_us: npt.NDArray[np.int64]  # [sample]


def decode_batch(message: bytes) -> DecodedBatch:
    """Decode any readable version; raises WireFormatError, with the reason, for anything malformed."""
    header = wire.decode_header(message)
    counts = decode_counts(message, header)
    scales = np.asarray(header.scales, dtype=np.float64)
    offsets = np.asarray(header.offsets, dtype=np.float64)
    with np.errstate(all="ignore"):  # a non-finite scale gives non-finite values, which validation rejects
        values = offsets + counts.astype(np.float64) * scales
    times = header.start_time_us + np.arange(header.sample_count, dtype=np.int64) * header.sample_period_us
    return DecodedBatch(header=header, values_si=values, sample_time_us=times)


def decode_counts(message: bytes, header: wire.Header) -> npt.NDArray[np.int16]:
    """The raw counts [sample, channel] of a message whose header `wire.decode_header` has checked."""
    if header.version == 1:
        block = np.frombuffer(
            message, dtype=">i2", count=header.sample_count * header.channels, offset=header.samples_offset
        )
        return block.reshape(header.sample_count, header.channels).astype(np.int16)
    return _decode_v2_counts(message, header)


def _decode_v2_counts(message: bytes, header: wire.Header) -> npt.NDArray[np.int16]:
    """Undo docs/wire-format.md 'Sample block' for all channels at once; the same checks as wire.decode."""
    count, channels = header.sample_count, header.channels
    k = np.array([coding.rice_k for coding in header.codings], dtype=np.int64)
    escapes = np.frombuffer(message, dtype=">u2", count=header.escape_count, offset=header.samples_offset)
    stream = np.frombuffer(
        message, dtype=np.uint8, count=header.samples_end - header.bitstream_offset, offset=header.bitstream_offset
    )
    bits = np.unpackbits(stream)

    # Low bits: channel c holds `count` fields of k[c] bits, MSB first, right after channel c - 1.
    lows = np.zeros((channels, count), dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(k * count)))
    for c in range(channels):  # at most 6 channels; each is one vectorised step over all its samples
        if k[c]:
            field = bits[starts[c] : starts[c + 1]].reshape(count, int(k[c])).astype(np.int64)
            lows[c] = field @ (1 << np.arange(k[c] - 1, -1, -1, dtype=np.int64))

    # High parts: unary codes (h zeros then a one); the ones mark where each code ends.
    code_bits = bits[starts[-1] :]
    ends = np.flatnonzero(code_bits)
    needed = count * channels
    if ends.size < needed:
        raise WireFormatError(f"truncated sample block: {ends.size} of {needed} unary codes present")
    end_bit = int(starts[-1]) + (int(ends[needed - 1]) + 1 if needed else 0)
    wire.check_bitstream_end(stream.size, end_bit, ends.size - needed)
    highs = np.diff(ends[:needed], prepend=-1) - 1
    escaped = highs == wire.ESCAPE
    wire.check_escapes(
        int(highs.max(initial=0)),
        int(escaped.sum()),
        header.escape_count,
        int(escapes.min(initial=wire.ESCAPE)),
    )
    highs[escaped] = escapes

    zigzagged = (highs.reshape(channels, count) << k[:, None]) | lows
    overflowing = (zigzagged > 0xFFFF).any(axis=1)
    if overflowing.any():
        channel = int(np.argmax(overflowing))
        raise WireFormatError(f"channel {channel}: a residual exceeds 16 bits (escape value too large for k)")
    residuals = (zigzagged >> 1) ^ -(zigzagged & 1)
    previous = np.array([coding.predictor is wire.Predictor.PREVIOUS for coding in header.codings])
    residuals[previous] = np.cumsum(residuals[previous], axis=1)
    bases = np.array([coding.base for coding in header.codings], dtype=np.int64)
    counts = ((bases[:, None] + residuals + 32768) & 0xFFFF) - 32768
    return np.ascontiguousarray(counts.T, dtype=np.int16)
