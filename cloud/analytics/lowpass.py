"""A zero-phase low-pass FIR over a stream cut into batches: the tail of each batch is carried into the next, so
the filtered stream is the same however it was batched.

Why a FIR and not an exponential moving average: an EMA is recursive, so it needs a Python loop (scipy's lfilter is
not available); a short symmetric FIR is one vectorised product, adds no phase lag once each output is stamped with
its centre sample's time, and its step response is symmetric, so event start times are not pushed later.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics.state_versions import Piece

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class FirState(NamedTuple):
    """What a CarriedFir keeps between batches while a stream is open (None otherwise), as raw bytes: a pickled
    numpy array costs several microseconds and ~150 bytes of header; bytes cost neither."""

    values: bytes  # float64, C order [samples, channels]: the carried samples
    times_us: bytes  # int64 [samples]: their times


FIR = Piece("low-pass filter", FirState, version=1)


@functools.cache
def hann_taps(half_width: int) -> FloatArray:
    """2*half_width+1 Hann-window taps summing to 1. With half_width 8 at 100 Hz: -3 dB at 4 Hz, gain 0.003
    at 11 Hz and below 0.002 above (the simulator's wheel-hop and tyre vibration), 0.95 at 1.6 Hz.
    Cached (an analyzer restored from a pickle asks again), so the array is read-only."""
    taps = np.hanning(2 * half_width + 3)[1:-1]
    taps = np.asarray(taps / taps.sum(), dtype=np.float64)
    taps.setflags(write=False)
    return taps


@dataclass(frozen=True)
class AlignedChunk:
    """Samples whose filter window is complete: each row is stamped with its own time (the window's centre)."""

    t_us: IntArray  # [n]
    filtered: FloatArray  # [n, filtered channels]: the low-passed channels
    raw: FloatArray  # [n, all channels]: the unfiltered samples, aligned with `filtered`

    def __len__(self) -> int:
        return int(self.t_us.size)


class CarriedFir:
    """Filters the first `filtered_channels` columns; holds back the last `half_width` samples of each batch until
    the next batch completes their window. `flush()` ends the stream (data gap) by repeating the last sample."""

    def __init__(self, taps: FloatArray, *, channels: int, filtered_channels: int) -> None:
        if taps.ndim != 1 or taps.size % 2 == 0:
            raise ValueError("the FIR must have an odd number of taps so each output has a centre sample")
        self._taps = taps
        self._half = taps.size // 2
        self._channels = channels
        self._filtered_channels = filtered_channels
        # Samples kept from earlier batches: `half` of context before the first sample not yet output, then those.
        self._values: FloatArray | None = None  # C-contiguous [2 * half, channels]
        self._times: IntArray | None = None

    @property
    def pending(self) -> int:
        """Samples received but not yet output."""
        return 0 if self._times is None else int(self._times.size) - self._half

    def push(self, t_us: IntArray, values: FloatArray) -> AlignedChunk:
        return self.push_columns(t_us, (values,))

    def push_columns(self, t_us: IntArray, column_groups: tuple[FloatArray, ...]) -> AlignedChunk:
        """`push` with the channels given as side-by-side column groups ([n, k] each, e.g. accelerometer and gyro),
        copied once into the filter's buffer instead of being concatenated first."""
        n, lead = t_us.size, self._half if self._values is None else self._values.shape[0]
        values = np.empty((lead + n, self._channels))
        times = np.empty(lead + n, dtype=np.int64)
        times[lead:] = t_us
        column = 0
        for group in column_groups:
            width = group.shape[1]
            values[lead:, column : column + width] = group
            column += width
        if self._values is None or self._times is None:
            # Start of a stream: the first sample stands in for the half window before it.
            values[:lead] = values[lead]
            times[:lead] = times[lead]
        else:
            values[:lead] = self._values
            times[:lead] = self._times
        return self._emit(times, values)

    def flush(self) -> AlignedChunk:
        """Output the held-back samples (their window completed by repeating the last sample) and forget the stream."""
        if self._values is None or self._times is None or self.pending <= 0:
            self.reset()
            return self._empty()
        values = np.concatenate((self._values, np.repeat(self._values[-1:], self._half, axis=0)))
        t_us = np.concatenate((self._times, np.repeat(self._times[-1:], self._half)))
        chunk = self._emit(t_us, values)
        self.reset()
        return chunk

    def reset(self) -> None:
        self._values, self._times = None, None

    def state(self) -> FirState | None:
        if self._values is None or self._times is None:
            return None
        return FirState(self._values.tobytes(), self._times.tobytes())

    @classmethod
    def restored(cls, taps: FloatArray, *, channels: int, filtered_channels: int, state: FirState | None) -> CarriedFir:
        """A filter in the `state` another one's state() gave (its arrays read-only: push copies them, never writes)."""
        fir = cls(taps, channels=channels, filtered_channels=filtered_channels)
        if state is not None:
            fir._values = np.frombuffer(state.values, dtype=np.float64).reshape(-1, channels)
            fir._times = np.frombuffer(state.times_us, dtype=np.int64)
        return fir

    def _emit(self, t_us: IntArray, values: FloatArray) -> AlignedChunk:
        """`values` must be C-contiguous [m, channels]."""
        half, width, filtered_channels = self._half, self._taps.size, self._filtered_channels
        count = values.shape[0] - 2 * half  # samples with a complete window
        if count <= 0:
            self._values, self._times = values, t_us
            return self._empty()
        # The [count, channels, width] sliding-window view, built directly: numpy's sliding_window_view builds the
        # same strides but costs ~15 us of Python checks per call, more than the product itself.
        row_bytes, item_bytes = values.strides
        windows: FloatArray = np.ndarray(
            (count, filtered_channels, width), np.float64, values, strides=(row_bytes, item_bytes, row_bytes)
        )
        filtered = windows @ self._taps
        # Keep the last `half` samples output as context, and the `half` samples still waiting for theirs.
        self._values, self._times = values[-2 * half :].copy(), t_us[-2 * half :].copy()
        return AlignedChunk(t_us[half : half + count], filtered, values[half : half + count])

    def _empty(self) -> AlignedChunk:
        return AlignedChunk(
            np.empty(0, dtype=np.int64),
            np.empty((0, self._filtered_channels), dtype=np.float64),
            np.empty((0, self._channels), dtype=np.float64),
        )
