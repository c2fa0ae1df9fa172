"""Moving or stopped, from the IMU alone (no GPS), and the trips and stops that follow.

A moving vehicle shakes: road vibration grows with speed, manoeuvres change the acceleration, corners turn the gyro.
A parked one reads gravity plus sensor noise. So each quarter-second window is "active" when the variance of the
accelerometer or gyro exceeds a floor set just above the sensor's own noise; a hysteresis state machine then turns
windows into moving/stopped, a stop into a trip break when it lasts long enough.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics.events import DRIVING_EVENT_KINDS
from fleetsense.cloud.analytics.score import ScoreWeights, driver_score
from fleetsense.cloud.analytics.state_versions import Piece

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, kw_only=True)
class TripSettings:
    window_s: float = 0.25
    # MPU-6050 noise is ~0.03 m/s^2 per axis (0.0027 m^2/s^4 summed over 3 axes) and ~0.001 rad/s; the road
    # vibration of a van at 6 m/s alone adds ~0.0026. Floors at ~1.7x the noise variance.
    active_accel_var_m2_s4: float = 0.0045
    active_gyro_var_rad2_s2: float = 3e-5
    min_move_s: float = 1.0  # this much activity (within one cluster, see resume_gap_s) ends a stop
    resume_gap_s: float = 10.0  # activity separated by less quiet than this is one cluster (one pull-away)
    settle_s: float = 8.0  # activity this soon after a stop began was the vehicle coming to rest: the stop starts after
    min_stop_s: float = 3.0  # quiet this long is a stop (shorter: rolling slowly in traffic)
    trip_break_s: float = 180.0  # a stop this long ends the trip (parking, delivery), shorter ones are inside it


@dataclass(frozen=True)
class Windows:
    """Per-window activity of one aligned chunk, as Python lists: the trip state machine walks them one by one."""

    start_us: list[int]
    end_us: list[int]
    active: list[bool]

    @property
    def all_quiet(self) -> bool:
        return not any(self.active)

    @property
    def last_active_end_us(self) -> int:
        """End of the last active window (-1 if none)."""
        ends = (end for end, active in zip(reversed(self.end_us), reversed(self.active), strict=True) if active)
        return next(ends, -1)


@functools.lru_cache(maxsize=64)
def _window_cuts(n: int, per_window: int) -> tuple[IntArray, FloatArray, tuple[int, ...]]:
    """First index of each window, window sizes as a [count, 1] column, and the first indices as ints. Cached:
    batches come in a handful of sizes, and building these is a dozen numpy calls."""
    count = max(1, round(n / per_window))
    starts = (np.arange(count) * n) // count
    sizes = np.diff(np.append(starts, n)).astype(np.float64)[:, None]
    starts.setflags(write=False)
    sizes.setflags(write=False)
    return starts, sizes, tuple(starts.tolist())


def window_activity(t_us: IntArray, imu: FloatArray, period_us: int, settings: TripSettings) -> Windows:
    """Cut the chunk into windows of ~window_s and test each one's variance (summed over axes) against the floors.
    `imu` is [n, 6]: accelerometer (m/s^2) then gyro (rad/s) columns."""
    n = t_us.size
    per_window = max(2, round(settings.window_s * 1e6 / period_us))
    starts, sizes, first = _window_cuts(n, per_window)
    sums = np.add.reduceat(imu, starts, axis=0)
    squares = np.add.reduceat(imu * imu, starts, axis=0)
    # [count, 2]: accelerometer and gyro variance, each summed over its three axes.
    variance = (squares / sizes - (sums / sizes) ** 2).reshape(-1, 2, 3).sum(axis=2)
    active = (variance[:, 0] > settings.active_accel_var_m2_s4) | (variance[:, 1] > settings.active_gyro_var_rad2_s2)
    start_us = [int(t_us[i]) for i in first]
    return Windows(start_us, [*start_us[1:], int(t_us[-1]) + period_us], active.tolist())


@dataclass(frozen=True, kw_only=True)
class Stop:
    start_us: int
    end_us: int
    duration_s: float


@dataclass(frozen=True, kw_only=True)
class Trip:
    """A trip from first motion to the start of the stop that ended it. For the open trip, end_us is the last
    sample seen and `is_open` is True; its counts and score are running values."""

    start_us: int
    end_us: int
    duration_s: float
    driving_s: float  # time moving within the trip
    stop_count: int
    is_open: bool
    event_counts: dict[str, int]  # by kind, every counted kind of fleetsense.event_kinds
    score: float  # score.driver_score over the trip's events and moving time


class TripState(NamedTuple):
    """TripTracker.state(): the open trip's event counts, then the state machine's fields (see TripTracker)."""

    event_counts: tuple[int, ...]  # the open trip's, in DRIVING_EVENT_KINDS order
    moving: bool
    state_since_us: int
    quiet_since_us: int
    quiet_moving_us: int
    cluster_start_us: int
    cluster_active_us: int
    last_active_end_us: int
    last_us: int
    trip_start_us: int  # -1: no open trip
    trip_moving_us: int
    trip_stops: int


TRIP = Piece("trip", TripState, version=1)


class TripTracker:
    """The moving/stopped state machine. Starts "stopped" at the first window; all times are window edges.

    Below ~4 m/s a vehicle's vibration is under the sensor noise, so a gentle constant acceleration just after
    a stop, or deceleration just before one, looks like standing still. Two rules keep those out of the stops:
    a stop ends at the first activity of the cluster that reaches min_move_s, and quiet that starts within settle_s
    of a departure must last settle_s to be a stop (so the quiet part of a pull-away belongs to the drive); activity
    within settle_s of a stop's start moves the start after it (so the slow roll before the final jerk of stopping
    belongs to the drive).
    """

    def __init__(self, settings: TripSettings | None = None, weights: ScoreWeights | None = None) -> None:
        self.settings = settings or TripSettings()
        self.weights = weights or ScoreWeights()
        self.trip_events = dict.fromkeys(DRIVING_EVENT_KINDS, 0)
        self.moving = False
        self._state_since_us = -1  # moving: when motion began; stopped: when the stop began
        self._quiet_since_us = -1  # moving: when the current quiet stretch began
        self._quiet_moving_us = 0  # moving: time of that stretch (counted as moving until it becomes a stop)
        self._cluster_start_us = -1  # stopped: first activity of the current cluster
        self._cluster_active_us = 0
        self._last_active_end_us = -1
        self._last_us = -1
        self.trip_start_us = -1  # -1: no open trip
        self.trip_moving_us = 0
        self.trip_stops = 0

    @property
    def trip_open(self) -> bool:
        return self.trip_start_us >= 0

    def state(self) -> TripState:
        # Positional (a keyword call costs a microsecond more, after every batch); the comments name the fields.
        return TripState(
            tuple(self.trip_events.values()),  # event_counts
            self.moving,  # moving
            self._state_since_us,  # state_since_us
            self._quiet_since_us,  # quiet_since_us
            self._quiet_moving_us,  # quiet_moving_us
            self._cluster_start_us,  # cluster_start_us
            self._cluster_active_us,  # cluster_active_us
            self._last_active_end_us,  # last_active_end_us
            self._last_us,  # last_us
            self.trip_start_us,  # trip_start_us
            self.trip_moving_us,  # trip_moving_us
            self.trip_stops,  # trip_stops
        )

    @classmethod
    def restored(cls, settings: TripSettings, weights: ScoreWeights, state: TripState) -> TripTracker:
        tracker = cls.__new__(cls)  # skips __init__: the state sets everything it would
        tracker.settings, tracker.weights = settings, weights
        tracker.trip_events = dict(zip(DRIVING_EVENT_KINDS, state.event_counts, strict=True))
        tracker.moving = state.moving
        tracker._state_since_us, tracker._quiet_since_us = state.state_since_us, state.quiet_since_us
        tracker._quiet_moving_us = state.quiet_moving_us
        tracker._cluster_start_us, tracker._cluster_active_us = state.cluster_start_us, state.cluster_active_us
        tracker._last_active_end_us, tracker._last_us = state.last_active_end_us, state.last_us
        tracker.trip_start_us, tracker.trip_moving_us = state.trip_start_us, state.trip_moving_us
        tracker.trip_stops = state.trip_stops
        return tracker

    def count_event(self, kind: str, start_us: int) -> bool:
        """Count a driving event in the open trip if it happened during it; True if counted."""
        if not self.trip_open or start_us < self.trip_start_us - int(self.settings.min_move_s * 1e6):
            return False
        self.trip_events[kind] += 1
        return True

    def push(self, windows: Windows) -> tuple[list[Stop], list[Trip], list[tuple[int, int]]]:
        """Returns the stops and trips that ended, and (start_us, end_us) of the windows counted as moving."""
        stops: list[Stop] = []
        trips: list[Trip] = []
        moving_windows: list[tuple[int, int]] = []
        for start, end, active in zip(windows.start_us, windows.end_us, windows.active, strict=True):
            if self._state_since_us < 0:
                self._state_since_us = start
            if self.moving:
                moving_windows.append((start, end))
                self.trip_moving_us += end - start
                self._moving_window(start, end, active)
            else:
                moving_windows += self._stopped_window(start, end, active, stops, trips)
        if windows.end_us:
            self._last_us = windows.end_us[-1]
        return stops, trips, moving_windows

    def _moving_window(self, start: int, end: int, active: bool) -> None:
        if active:
            self._quiet_since_us, self._quiet_moving_us = -1, 0
            return
        if self._quiet_since_us < 0:
            self._quiet_since_us = start
        self._quiet_moving_us += end - start
        s = self.settings
        needed_us = int(s.min_stop_s * 1e6)
        if self._quiet_since_us - self._state_since_us < int(s.settle_s * 1e6):
            needed_us = max(needed_us, int(s.settle_s * 1e6))  # just departed: likely the pull-away's quiet part
        if end - self._quiet_since_us >= needed_us:
            self.trip_moving_us -= self._quiet_moving_us
            self.moving, self._state_since_us = False, self._quiet_since_us
            self._quiet_since_us, self._quiet_moving_us = -1, 0
            self._cluster_start_us, self._cluster_active_us, self._last_active_end_us = -1, 0, -1
            self.trip_stops += 1

    def _stopped_window(
        self, start: int, end: int, active: bool, stops: list[Stop], trips: list[Trip]
    ) -> list[tuple[int, int]]:
        s = self.settings
        resume_gap_us = int(s.resume_gap_s * 1e6)
        if self._cluster_start_us >= 0 and start - self._last_active_end_us >= resume_gap_us:
            # The cluster faded out: it was the vehicle settling, a door, a passing lorry; not a departure.
            if self._cluster_start_us - self._state_since_us < int(s.settle_s * 1e6):
                if self.trip_open:
                    self.trip_moving_us += self._last_active_end_us - self._state_since_us
                self._state_since_us = self._last_active_end_us
            self._cluster_start_us, self._cluster_active_us = -1, 0
        if not active:
            if self.trip_open and end - self._state_since_us >= int(s.trip_break_s * 1e6):
                trips.append(self._end_trip(self._state_since_us))
            return []
        if self._cluster_start_us < 0:
            self._cluster_start_us, self._cluster_active_us = start, 0
        self._cluster_active_us += end - start
        self._last_active_end_us = end
        if self._cluster_active_us < int(s.min_move_s * 1e6):
            return []
        began_us = self._cluster_start_us
        stopped_us = began_us - self._state_since_us
        if stopped_us >= int(s.min_stop_s * 1e6):
            stops.append(Stop(start_us=self._state_since_us, end_us=began_us, duration_s=stopped_us / 1e6))
        if self.trip_open and stopped_us >= int(s.trip_break_s * 1e6):
            trips.append(self._end_trip(self._state_since_us))
        if not self.trip_open:
            self.trip_start_us, self.trip_moving_us, self.trip_stops = began_us, 0, 0
            self.trip_events = dict.fromkeys(DRIVING_EVENT_KINDS, 0)
        self.moving, self._state_since_us = True, began_us
        self._quiet_since_us, self._quiet_moving_us = -1, 0
        self._cluster_start_us, self._cluster_active_us = -1, 0
        self.trip_moving_us += end - began_us
        return [(began_us, end)]

    def gap(self, next_start_us: int) -> tuple[list[Stop], list[Trip]]:
        """Samples are missing before next_start_us. A gap shorter than a trip break is bridged (the vehicle may
        have kept moving; it is not counted as moving time); a longer one ends the trip and any stop at the last
        sample seen, and the next data starts afresh."""
        if self._last_us < 0 or next_start_us - self._last_us < int(self.settings.trip_break_s * 1e6):
            self._quiet_since_us, self._quiet_moving_us = -1, 0
            self._cluster_start_us, self._cluster_active_us = -1, 0
            return [], []
        last_us, stops, trips = self._last_us, [], []
        stopped_us = last_us - self._state_since_us
        if not self.moving and self._state_since_us >= 0 and stopped_us >= self.settings.min_stop_s * 1e6:
            stops.append(Stop(start_us=self._state_since_us, end_us=last_us,
                              duration_s=(last_us - self._state_since_us) / 1e6))  # fmt: skip
        if self.trip_open:
            trips.append(self._end_trip(last_us if self.moving else self._state_since_us))
        self.moving, self._state_since_us, self._quiet_since_us, self._quiet_moving_us = False, -1, -1, 0
        self._cluster_start_us, self._cluster_active_us = -1, 0
        return stops, trips

    def open_trip(self) -> Trip | None:
        if not self.trip_open:
            return None
        return self._trip(self._last_us, is_open=True)

    def _end_trip(self, end_us: int) -> Trip:
        trip = self._trip(end_us, is_open=False)
        self.trip_start_us, self.trip_moving_us, self.trip_stops = -1, 0, 0
        return trip

    def _trip(self, end_us: int, *, is_open: bool) -> Trip:
        # A stop that ends the trip is not one of its stops.
        stops = self.trip_stops - (0 if is_open or self.moving else 1)
        counts = self.trip_events
        return Trip(
            start_us=self.trip_start_us,
            end_us=end_us,
            duration_s=(end_us - self.trip_start_us) / 1e6,
            driving_s=self.trip_moving_us / 1e6,
            stop_count=max(0, stops),
            is_open=is_open,
            event_counts=dict(counts),
            score=driver_score(counts, self.trip_moving_us / 1e6, self.weights),
        )
