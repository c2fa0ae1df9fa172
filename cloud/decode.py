"""Vectorised decoding of a wire message: the header in Python, the sample block in one numpy call."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetsense import wire


@dataclass(frozen=True)
class DecodedBatch:
    header: wire.Header
    values_si: npt.NDArray[np.float32]  # [sample, channel] in SI units (m/s² for accel)
    sample_time_us: npt.NDArray[np.int64]  # [sample]


def decode_batch(message: bytes) -> DecodedBatch:
    header = wire.decode_header(message)
    channels = len(header.scales)
    counts = np.frombuffer(message, dtype=">i2", offset=header.samples_offset).reshape(-1, channels)
    values = counts.astype(np.float32) * np.asarray(header.scales, dtype=np.float32)
    times = header.start_time_us + np.arange(header.sample_count, dtype=np.int64) * header.sample_period_us
    return DecodedBatch(header=header, values_si=values, sample_time_us=times)
