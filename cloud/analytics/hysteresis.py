"""A hysteresis run detector over a stream cut into batches: the shared core of every event kind.

It walks runs of samples, not samples: numpy finds where the signal is above the exit level, and only the few
runs found (usually zero or one per batch) are looked at in Python, so a quiet batch costs one comparison.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics.state_versions import Piece

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class RunState(NamedTuple):
    """An open run, as HysteresisDetector.state() gives it."""

    entered_us: int  # first time at or above enter (-1: none yet)
    last_above_us: int  # last time at or above exit
    peak: float
    peak_payload: tuple[float, ...]
    period_us: int


RUN = Piece("open run", RunState, version=1)
# A detector's state as its holders pickle it: RUN's packed tuple, or None while no run is open.
PackedRun = tuple[Any, ...]


@dataclass(frozen=True)
class Run:
    """One detected episode: from the first sample at or above `enter` to the end of its above-exit run."""

    start_us: int
    end_us: int  # exclusive: one sample period after the last sample at or above the exit level
    peak: float  # largest signal value in the run
    peak_payload: tuple[float, ...] = ()  # the caller's payload row at the peak sample (e.g. the 3-D vector)


class HysteresisDetector:
    """Enter at `enter`, stay while the signal is at or above `exit_level`; dips below exit shorter than
    `merge_gap_us` are bridged. A run that never reached `enter`, or lasted under `min_duration_us`, is dropped.

    State between batches is a handful of numbers, so a run that spans batch boundaries is one run.
    """

    def __init__(self, *, enter: float, exit_level: float, min_duration_us: int, merge_gap_us: int) -> None:
        if exit_level > enter:
            raise ValueError(f"exit level {exit_level} is above enter level {enter}: hysteresis needs exit <= enter")
        self.enter = enter
        self.exit_level = exit_level
        self.min_duration_us = min_duration_us
        self.merge_gap_us = merge_gap_us
        self._open = False  # inside an above-exit run (or within merge_gap after one)
        self._entered_us = -1  # time of the first sample >= enter in the open run, -1 if none yet
        self._last_above_us = 0
        self._peak = -np.inf
        self._peak_payload: tuple[float, ...] = ()
        self._period_us = 10_000

    @property
    def is_open(self) -> bool:
        return self._open

    def push(self, t_us: IntArray, signal: FloatArray, period_us: int, payload: FloatArray | None = None) -> list[Run]:
        """Feed the next samples (times strictly after the previous batch's); returns the runs that ended.
        `payload` (one row per sample) lets the caller learn more about the peak sample than its value."""
        self._period_us = period_us
        if not self._open and (signal.size == 0 or float(signal.max()) < self.exit_level):
            return []  # the common, quiet case
        done: list[Run] = []
        above = np.flatnonzero(signal >= self.exit_level)
        if above.size:
            # A new run starts wherever consecutive above-exit samples are further apart than the merge gap allows.
            joins_limit_us = self.merge_gap_us + period_us + period_us // 2
            above_t = t_us[above]
            breaks = np.flatnonzero(above_t[1:] - above_t[:-1] > joins_limit_us) + 1
            if self._open and int(above_t[0]) - self._last_above_us > joins_limit_us:
                done += self._finish()
            bounds = [0, *breaks.tolist(), above.size]
            for first, last in itertools.pairwise(bounds):
                if first > 0:  # every piece after the first starts a new run
                    done += self._finish()
                self._extend(t_us, signal, above[first:last], payload)
        if self._open and int(t_us[-1]) - self._last_above_us > self.merge_gap_us + period_us // 2:
            done += self._finish()
        return done

    def close(self) -> list[Run]:
        """End an open run now (data gap or end of stream): it ends after its last above-exit sample."""
        return self._finish() if self._open else []

    def reset(self) -> None:
        self._open, self._entered_us, self._peak, self._peak_payload = False, -1, -np.inf, ()

    def state(self) -> RunState | None:
        """What has to survive a pickle, None while no run is open: a closed detector behaves exactly like a new
        one (the next push sets the period, and the last above-exit time is only read inside a run)."""
        if not self._open:
            return None
        return RunState(self._entered_us, self._last_above_us, self._peak, self._peak_payload, self._period_us)

    def restore(self, state: RunState | None) -> None:
        if state is None:
            self.reset()
            return
        self._open = True
        self._entered_us, self._last_above_us, self._peak, self._peak_payload, self._period_us = state

    def packed(self) -> PackedRun | None:
        """state() as its holders pickle it (RUN)."""
        state = self.state()
        return None if state is None else RUN.pack(state)

    def restore_packed(self, packed: PackedRun | None) -> None:
        self.restore(None if packed is None else RUN.unpack(packed))

    def _extend(self, t_us: IntArray, signal: FloatArray, indices: IntArray, payload: FloatArray | None) -> None:
        values = signal[indices]
        if self._entered_us < 0:
            entering = np.flatnonzero(values >= self.enter)
            if entering.size:
                self._entered_us = int(t_us[indices[entering[0]]])
        peak_at = int(values.argmax())
        if float(values[peak_at]) > self._peak:
            self._peak = float(values[peak_at])
            if payload is not None:
                self._peak_payload = tuple(float(v) for v in payload[indices[peak_at]])
        self._open = True
        self._last_above_us = int(t_us[indices[-1]])

    def _finish(self) -> list[Run]:
        start_us, end_us = self._entered_us, self._last_above_us + self._period_us
        peak, peak_payload = self._peak, self._peak_payload
        self.reset()
        if start_us < 0 or end_us - start_us < self.min_duration_us:
            return []
        return [Run(start_us, end_us, peak, peak_payload)]


def push_keeping_open(
    open_detectors: dict[str, HysteresisDetector],
    key: str,
    new_detector: Callable[[], HysteresisDetector],
    t_us: npt.NDArray[np.int64],
    signal: npt.NDArray[np.float64],
    period_us: int,
) -> list[Run]:
    """Push into `key`'s detector, kept in `open_detectors` only while it has a run in progress: a closed detector
    behaves exactly like a new one, so a quiet vehicle's state holds none."""
    detector = open_detectors.get(key) or new_detector()
    runs = detector.push(t_us, signal, period_us)
    if detector.is_open:
        open_detectors[key] = detector
    else:
        open_detectors.pop(key, None)
    return runs
