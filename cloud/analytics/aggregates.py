"""Per-minute and per-day running totals of one vehicle, written by the job as idempotent upserts.

Each call returns the rows it touched with their totals so far, so writing them again (after a replay) gives the
same row. Only the last few minutes (and days) are kept in state; data for an older one, which only a very late
event could bring, is counted in `late_updates_dropped` rather than written as a partial row over the full one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics.events import DRIVING_EVENT_KINDS
from fleetsense.cloud.analytics.score import ScoreWeights, driver_score

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MINUTE_US = 60_000_000
DAY_US = 86_400_000_000


@dataclass(frozen=True, kw_only=True)
class MinuteAggregate:
    minute_start_us: int  # UTC, a multiple of 60 s
    imu_sample_count: int
    moving_s: float
    max_abs_longitudinal_g: float | None  # None until the mounting is calibrated
    max_abs_lateral_g: float | None
    rms_vertical_g: float | None  # RMS of vertical specific force minus 1 g (ride roughness); None until "up" known
    harsh_brake_count: int
    harsh_acceleration_count: int
    harsh_corner_left_count: int
    harsh_corner_right_count: int
    bump_count: int
    environment_sample_count: int
    mean_temperature_c: float | None
    altitude_change_m: float | None  # last altitude in the minute minus the last one before it (or its first)


@dataclass(frozen=True, kw_only=True)
class DailyScore:
    day_start_us: int  # UTC midnight
    moving_s: float
    harsh_brake_count: int
    harsh_acceleration_count: int
    harsh_corner_left_count: int
    harsh_corner_right_count: int
    bump_count: int
    score: float


@dataclass
class _MinuteTotals:
    imu_samples: int = 0
    moving_us: int = 0
    max_longitudinal_g: float = -1.0  # -1: nothing calibrated yet
    max_lateral_g: float = -1.0
    vertical_sum_sq_g2: float = 0.0
    vertical_n: int = 0
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DRIVING_EVENT_KINDS, 0))
    env_samples: int = 0
    temperature_sum_c: float = 0.0
    altitude_ref_m: float | None = None
    altitude_last_m: float | None = None

    def row(self, minute_start_us: int) -> MinuteAggregate:
        e = self.events
        return MinuteAggregate(
            minute_start_us=minute_start_us,
            imu_sample_count=self.imu_samples,
            moving_s=self.moving_us / 1e6,
            max_abs_longitudinal_g=None if self.max_longitudinal_g < 0 else round(self.max_longitudinal_g, 4),
            max_abs_lateral_g=None if self.max_lateral_g < 0 else round(self.max_lateral_g, 4),
            rms_vertical_g=round(float(np.sqrt(self.vertical_sum_sq_g2 / self.vertical_n)), 5)
            if self.vertical_n
            else None,
            harsh_brake_count=e["harsh_brake"],
            harsh_acceleration_count=e["harsh_acceleration"],
            harsh_corner_left_count=e["harsh_corner_left"],
            harsh_corner_right_count=e["harsh_corner_right"],
            bump_count=e["bump"],
            environment_sample_count=self.env_samples,
            mean_temperature_c=round(self.temperature_sum_c / self.env_samples, 3) if self.env_samples else None,
            altitude_change_m=None
            if self.altitude_last_m is None or self.altitude_ref_m is None
            else round(self.altitude_last_m - self.altitude_ref_m, 3),
        )


@dataclass
class _DayTotals:
    moving_us: int = 0
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DRIVING_EVENT_KINDS, 0))


def _segments(t_us: IntArray, bucket_us: int) -> list[tuple[int, int, int]]:
    """(bucket start, first index, end index) of each bucket a sorted time array touches; usually one."""
    first_bucket, last_bucket = int(t_us[0]) // bucket_us, int(t_us[-1]) // bucket_us
    if first_bucket == last_bucket:
        return [(first_bucket * bucket_us, 0, int(t_us.size))]
    edges = np.arange(first_bucket + 1, last_bucket + 1, dtype=np.int64) * bucket_us
    cuts = [0, *np.searchsorted(t_us, edges).tolist(), int(t_us.size)]
    buckets = range(first_bucket, last_bucket + 1)
    return [(b * bucket_us, lo, hi) for b, lo, hi in zip(buckets, cuts[:-1], cuts[1:], strict=True) if hi > lo]


class MinuteAggregator:
    def __init__(self, *, keep_minutes: int = 5, weights: ScoreWeights | None = None) -> None:
        self.keep_minutes = keep_minutes
        self.weights = weights or ScoreWeights()
        self._minutes: dict[int, _MinuteTotals] = {}
        self._days: dict[int, _DayTotals] = {}
        self._last_altitude_m: float | None = None
        self._touched: set[int] = set()
        self._touched_days: set[int] = set()
        self.late_updates_dropped = 0

    def _minute(self, minute_start_us: int) -> _MinuteTotals | None:
        totals = self._minutes.get(minute_start_us)
        if totals is not None:
            self._touched.add(minute_start_us)
            return totals
        if self._minutes and minute_start_us < max(self._minutes) - (self.keep_minutes - 1) * MINUTE_US:
            self.late_updates_dropped += 1
            return None
        totals = self._minutes[minute_start_us] = _MinuteTotals()
        oldest_kept = max(self._minutes) - (self.keep_minutes - 1) * MINUTE_US
        for old in [m for m in self._minutes if m < oldest_kept]:
            del self._minutes[old]
        self._touched.add(minute_start_us)
        return totals

    def _day(self, t_us: int) -> _DayTotals | None:
        """Today and yesterday are kept (an event just before midnight can complete after it)."""
        day = t_us // DAY_US * DAY_US
        if day not in self._days:
            if self._days and day < max(self._days):
                self.late_updates_dropped += 1
                return None
            self._days[day] = _DayTotals()
            for old in [d for d in self._days if d < day - DAY_US]:
                del self._days[old]
        self._touched_days.add(day)
        return self._days[day]

    def add_imu(
        self,
        t_us: IntArray,
        longitudinal_g: FloatArray | None,
        lateral_g: FloatArray | None,
        vertical_dynamic_g: FloatArray | None,
    ) -> None:
        if t_us.size == 0:
            return
        for minute_start, lo, hi in _segments(t_us, MINUTE_US):
            totals = self._minute(minute_start)
            if totals is None:
                continue
            totals.imu_samples += hi - lo
            if longitudinal_g is not None and lateral_g is not None:
                totals.max_longitudinal_g = max(totals.max_longitudinal_g, float(np.abs(longitudinal_g[lo:hi]).max()))
                totals.max_lateral_g = max(totals.max_lateral_g, float(np.abs(lateral_g[lo:hi]).max()))
            if vertical_dynamic_g is not None:
                part = vertical_dynamic_g[lo:hi]
                totals.vertical_sum_sq_g2 += float(part @ part)
                totals.vertical_n += hi - lo

    def add_moving(self, windows: list[tuple[int, int]]) -> None:
        for start_us, end_us in windows:
            totals = self._minute(start_us // MINUTE_US * MINUTE_US)
            if totals is not None:
                totals.moving_us += end_us - start_us
            day = self._day(start_us)
            if day is not None:
                day.moving_us += end_us - start_us

    def add_event(self, kind: str, start_us: int) -> None:
        totals = self._minute(start_us // MINUTE_US * MINUTE_US)
        if totals is not None:
            totals.events[kind] += 1
        day = self._day(start_us)
        if day is not None:
            day.events[kind] += 1

    def add_environment(self, t_us: IntArray, temperature_c: FloatArray, altitude_m: FloatArray, *, gap: bool) -> None:
        if t_us.size == 0:
            return
        if gap:
            self._last_altitude_m = None  # an altitude change across a gap is not this minute's climb
        for minute_start, lo, hi in _segments(t_us, MINUTE_US):
            totals = self._minute(minute_start)
            if totals is None:
                continue
            totals.env_samples += hi - lo
            totals.temperature_sum_c += float(temperature_c[lo:hi].sum())
            if totals.altitude_ref_m is None:
                totals.altitude_ref_m = (
                    float(altitude_m[lo]) if self._last_altitude_m is None else self._last_altitude_m
                )
            totals.altitude_last_m = self._last_altitude_m = float(altitude_m[hi - 1])

    def take_touched(self) -> tuple[list[MinuteAggregate], list[DailyScore]]:
        """The rows changed since the last call, with their running totals, oldest first."""
        minutes = [self._minutes[m].row(m) for m in sorted(self._touched) if m in self._minutes]
        days = [self._day_row(d) for d in sorted(self._touched_days) if d in self._days]
        self._touched.clear()
        self._touched_days.clear()
        return minutes, days

    def _day_row(self, day_start_us: int) -> DailyScore:
        totals = self._days[day_start_us]
        moving_us, counts = totals.moving_us, totals.events
        return DailyScore(
            day_start_us=day_start_us,
            moving_s=moving_us / 1e6,
            harsh_brake_count=counts["harsh_brake"],
            harsh_acceleration_count=counts["harsh_acceleration"],
            harsh_corner_left_count=counts["harsh_corner_left"],
            harsh_corner_right_count=counts["harsh_corner_right"],
            bump_count=counts["bump"],
            score=driver_score(counts, moving_us / 1e6, self.weights),
        )
