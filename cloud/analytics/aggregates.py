"""Per-minute and per-day running totals of one vehicle, written by the job as idempotent upserts.

Each call returns the rows it touched with their totals so far, so writing them again (after a replay) gives the
same row. Only the last few minutes (and days) are kept in state; data for an older one, which only a very late
event could bring, is counted in `late_updates_dropped` rather than written as a partial row over the full one.
"""

from __future__ import annotations

import math
import operator
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics.events import DRIVING_EVENT_KINDS
from fleetsense.cloud.analytics.score import ScoreWeights, driver_score
from fleetsense.cloud.analytics.state_versions import UNRECORDED_KINDS_ORDER, Piece, reorder_counts

from fleetsense.event_kinds import COUNTED_KINDS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MINUTE_US = 60_000_000
DAY_US = 86_400_000_000


@dataclass(frozen=True, kw_only=True)
class MinuteAggregate:
    minute_start_us: int  # UTC, a multiple of 60 s
    sample_count: int  # IMU samples
    driving_s: float  # time moving (trips.py)
    max_longitudinal_g: float | None  # largest |longitudinal|; None until the mounting is calibrated
    max_lateral_g: float | None  # largest |lateral|
    rms_vertical_g: float | None  # RMS of vertical specific force minus 1 g (ride roughness); None until "up" known
    event_counts: dict[str, int]  # by kind, every counted kind of fleetsense.event_kinds
    environment_sample_count: int
    mean_temperature_c: float | None
    altitude_change_m: float | None  # last altitude in the minute minus the last one before it (or its first)

    def __reduce__(self) -> tuple[Callable[..., MinuteAggregate], tuple[object, ...]]:
        # The job keeps rows waiting to be written in its per-vehicle state, pickled after every batch: as a plain
        # tuple of values a row pickles to a third of the default's size (no field names) and loads ~3x faster.
        return minute_row, (packed_minute_row(self),)

    def __hash__(self) -> int:  # the counts dict is not hashable; equal rows have equal minutes and counts
        return hash((self.minute_start_us, self.sample_count, tuple(self.event_counts.values())))


_MINUTE_AGGREGATE_FIELDS = tuple(f.name for f in fields(MinuteAggregate))
_MINUTE_AGGREGATE_VALUES = operator.attrgetter(*_MINUTE_AGGREGATE_FIELDS)
_COUNTS_AT = _MINUTE_AGGREGATE_FIELDS.index("event_counts")
# A minute row as the job's state keeps it: MinuteAggregate's fields in order, the event counts as a tuple in
# COUNTED_KINDS order (the state that holds rows records that order: see VehicleState).
MinuteRowState = namedtuple("MinuteRowState", _MINUTE_AGGREGATE_FIELDS)  # type: ignore[misc]


def _minute_row_from_v1(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """60ddf97's rows (version 1) had five count fields where version 2 has one counts tuple."""
    counts_at, kinds = 6, 5  # after minute start, samples, moving s, two peaks and the RMS
    return (*values[:counts_at], tuple(values[counts_at : counts_at + kinds]), *values[counts_at + kinds :])


MINUTE_ROW: Piece[Any] = Piece("minute row", MinuteRowState, version=2, migrations={1: _minute_row_from_v1})


# Where a packed minute row keeps its counts tuple (after the version).
PACKED_ROW_COUNTS_AT = 1 + _COUNTS_AT


def packed_minute_row(row: MinuteAggregate) -> tuple[Any, ...]:
    values = list(_MINUTE_AGGREGATE_VALUES(row))
    values[_COUNTS_AT] = tuple(row.event_counts[kind] for kind in COUNTED_KINDS)
    return (MINUTE_ROW.version, *values)


def minute_row(packed: tuple[Any, ...]) -> MinuteAggregate:
    """A MinuteAggregate from packed_minute_row's tuple (or an older version's), without __init__ (as the default
    unpickling does)."""
    values = MINUTE_ROW.unpack(packed)
    row = object.__new__(MinuteAggregate)
    row.__dict__.update(zip(_MINUTE_AGGREGATE_FIELDS, values, strict=True))
    row.__dict__["event_counts"] = dict(zip(COUNTED_KINDS, values[_COUNTS_AT], strict=True))
    return row


def _minute_aggregate(*values: object) -> MinuteAggregate:
    """Rows pickled before minute rows carried a version (60ddf97: version 1's 14 values; af6abb6: version 2's
    10 values, unversioned): the name their pickles call."""
    version = 1 if len(values) == len(_MINUTE_AGGREGATE_FIELDS) + 4 else 2
    # Their counts are in the order of the kinds of their day, which a kind added since must not shift.
    unpacked = list(MINUTE_ROW.unpack((version, *values)))
    unpacked[_COUNTS_AT] = reorder_counts(unpacked[_COUNTS_AT], UNRECORDED_KINDS_ORDER)
    return minute_row((MINUTE_ROW.version, *unpacked))


@dataclass(frozen=True, kw_only=True)
class DailyScore:
    day_start_us: int  # UTC midnight
    driving_s: float
    event_counts: dict[str, int]  # by kind, every counted kind of fleetsense.event_kinds
    score: float


# _MinuteTotals as the pickled state keeps it: its fields in declaration order, the event counts as a tuple in
# DRIVING_EVENT_KINDS order (a tuple, not a NamedTuple: thousands are pickled, and a class reference costs bytes).
PackedMinute = tuple[int, int, float, float, float, int, tuple[int, ...], int, float, float | None, float | None]
# _DayTotals packed the same way: moving us, event counts.
PackedDay = tuple[int, tuple[int, ...]]


class AggregatorState(NamedTuple):
    """MinuteAggregator.state()."""

    minutes: tuple[tuple[int, PackedMinute], ...]  # (minute start us, totals) of the kept minutes
    days: tuple[tuple[int, PackedDay], ...]  # (day start us, totals) of the kept days
    last_altitude_m: float | None
    touched_minutes: tuple[int, ...]  # rows touched since the last take_touched
    touched_days: tuple[int, ...]
    late_updates_dropped: int


AGGREGATES = Piece("minute and day totals", AggregatorState, version=1)


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
        return MinuteAggregate(
            minute_start_us=minute_start_us,
            sample_count=self.imu_samples,
            driving_s=self.moving_us / 1e6,
            max_longitudinal_g=None if self.max_longitudinal_g < 0 else round(self.max_longitudinal_g, 4),
            max_lateral_g=None if self.max_lateral_g < 0 else round(self.max_lateral_g, 4),
            rms_vertical_g=round(math.sqrt(self.vertical_sum_sq_g2 / self.vertical_n), 5) if self.vertical_n else None,
            event_counts=dict(self.events),
            environment_sample_count=self.env_samples,
            mean_temperature_c=round(self.temperature_sum_c / self.env_samples, 3) if self.env_samples else None,
            altitude_change_m=None
            if self.altitude_last_m is None or self.altitude_ref_m is None
            else round(self.altitude_last_m - self.altitude_ref_m, 3),
        )

    def packed(self) -> PackedMinute:
        return (
            self.imu_samples,
            self.moving_us,
            self.max_longitudinal_g,
            self.max_lateral_g,
            self.vertical_sum_sq_g2,
            self.vertical_n,
            tuple(self.events.values()),
            self.env_samples,
            self.temperature_sum_c,
            self.altitude_ref_m,
            self.altitude_last_m,
        )

    @classmethod
    def unpacked(cls, packed: PackedMinute) -> _MinuteTotals:
        (imu_samples, moving_us, longitudinal_g, lateral_g, sum_sq_g2, vertical_n, counts,
         env_samples, temperature_sum_c, altitude_ref_m, altitude_last_m) = packed  # fmt: skip
        events = dict(zip(DRIVING_EVENT_KINDS, counts, strict=True))
        return cls(
            imu_samples, moving_us, longitudinal_g, lateral_g, sum_sq_g2, vertical_n, events,
            env_samples, temperature_sum_c, altitude_ref_m, altitude_last_m,
        )  # fmt: skip


@dataclass
class _DayTotals:
    moving_us: int = 0
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DRIVING_EVENT_KINDS, 0))

    def packed(self) -> PackedDay:
        return self.moving_us, tuple(self.events.values())

    @classmethod
    def unpacked(cls, packed: PackedDay) -> _DayTotals:
        moving_us, counts = packed
        return cls(moving_us, dict(zip(DRIVING_EVENT_KINDS, counts, strict=True)))


# Where PackedMinute keeps its counts tuple: _MinuteTotals' `events` field.
_PACKED_MINUTE_COUNTS_AT = [f.name for f in fields(_MinuteTotals)].index("events")


def with_counts(totals: PackedMinute, counts: Callable[[tuple[int, ...]], tuple[int, ...]]) -> PackedMinute:
    """Packed minute totals with their counts tuple replaced by `counts` of it (a state in another kinds order)."""
    values = list(totals)
    values[_PACKED_MINUTE_COUNTS_AT] = counts(totals[_PACKED_MINUTE_COUNTS_AT])  # type: ignore[arg-type]
    return cast(PackedMinute, tuple(values))


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
    """Totals of the kept minutes and days. Between calls they are kept packed as tuples (the pickled form), and
    only the one or two rows a batch touches are unpacked into objects and packed back by take_touched(): the
    analyzer is pickled after every batch, and packing or unpacking all of them each time would be wasted work."""

    def __init__(self, *, keep_minutes: int = 5, weights: ScoreWeights | None = None) -> None:
        self.keep_minutes = keep_minutes
        self.weights = weights or ScoreWeights()
        self._minutes: dict[int, _MinuteTotals | PackedMinute] = {}
        self._days: dict[int, _DayTotals | PackedDay] = {}
        self._last_altitude_m: float | None = None
        self._touched: set[int] = set()
        self._touched_days: set[int] = set()
        self.late_updates_dropped = 0

    def state(self) -> AggregatorState:
        minutes = tuple((m, t if isinstance(t, tuple) else t.packed()) for m, t in self._minutes.items())
        days = tuple((d, t if isinstance(t, tuple) else t.packed()) for d, t in self._days.items())
        # Positional (a keyword call costs a microsecond more, after every batch); the comments name the fields.
        return AggregatorState(
            minutes,  # minutes
            days,  # days
            self._last_altitude_m,  # last_altitude_m
            tuple(self._touched),  # touched_minutes
            tuple(self._touched_days),  # touched_days
            self.late_updates_dropped,  # late_updates_dropped
        )

    def restore(self, state: AggregatorState) -> None:
        self._minutes, self._days = dict(state.minutes), dict(state.days)
        self._last_altitude_m, self.late_updates_dropped = state.last_altitude_m, state.late_updates_dropped
        self._touched, self._touched_days = set(state.touched_minutes), set(state.touched_days)

    def _minute_totals(self, minute_start_us: int) -> _MinuteTotals | None:
        totals = self._minutes.get(minute_start_us)
        if isinstance(totals, tuple):
            totals = self._minutes[minute_start_us] = _MinuteTotals.unpacked(totals)
        return totals

    def _day_totals(self, day_start_us: int) -> _DayTotals | None:
        totals = self._days.get(day_start_us)
        if isinstance(totals, tuple):
            totals = self._days[day_start_us] = _DayTotals.unpacked(totals)
        return totals

    def _minute(self, minute_start_us: int) -> _MinuteTotals | None:
        totals = self._minute_totals(minute_start_us)
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
        totals = self._day_totals(day)
        if totals is None:
            if self._days and day < max(self._days):
                self.late_updates_dropped += 1
                return None
            totals = self._days[day] = _DayTotals()
            for old in [d for d in self._days if d < day - DAY_US]:
                del self._days[old]
        self._touched_days.add(day)
        return totals

    def add_imu(
        self,
        t_us: IntArray,
        longitudinal_g: FloatArray | None,
        lateral_g: FloatArray | None,
        vertical_dynamic_g: FloatArray | None,
        *,
        abs_peaks_g: tuple[float, float] | None = None,
    ) -> None:
        """`abs_peaks_g`: max |longitudinal| and |lateral| over the batch, if the caller has them already."""
        if t_us.size == 0:
            return
        segments = _segments(t_us, MINUTE_US)
        for minute_start, lo, hi in segments:
            totals = self._minute(minute_start)
            if totals is None:
                continue
            totals.imu_samples += hi - lo
            if longitudinal_g is not None and lateral_g is not None:
                if abs_peaks_g is not None and len(segments) == 1:
                    longitudinal_peak_g, lateral_peak_g = abs_peaks_g
                else:
                    longitudinal_peak_g = float(np.abs(longitudinal_g[lo:hi]).max())
                    lateral_peak_g = float(np.abs(lateral_g[lo:hi]).max())
                totals.max_longitudinal_g = max(totals.max_longitudinal_g, longitudinal_peak_g)
                totals.max_lateral_g = max(totals.max_lateral_g, lateral_peak_g)
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
        minutes, days = [], []
        for minute in sorted(self._touched):
            if (totals := self._minute_totals(minute)) is not None:
                minutes.append(totals.row(minute))
                self._minutes[minute] = totals.packed()
        for day in sorted(self._touched_days):
            if (day_totals := self._day_totals(day)) is not None:
                days.append(self._day_row(day, day_totals))
                self._days[day] = day_totals.packed()
        self._touched.clear()
        self._touched_days.clear()
        return minutes, days

    def _day_row(self, day_start_us: int, totals: _DayTotals) -> DailyScore:
        moving_us, counts = totals.moving_us, totals.events
        return DailyScore(
            day_start_us=day_start_us,
            driving_s=moving_us / 1e6,
            event_counts=dict(counts),
            score=driver_score(counts, moving_us / 1e6, self.weights),
        )
