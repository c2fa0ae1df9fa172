"""Scorecards: a driver's or a vehicle's harsh events, driving time and score over a UTC day, ISO week or month,
with the job's formula (cloud/analytics/score.py `driver_score`, docs/analytics.md). Pure; times are UTC
microseconds.

The rules (docs/analytics.md, "Scorecards"):
- A driver's scorecard adds up the minute rows (`vehicle_minutes`) of the vehicles they held. A minute row is the
  driver's who held the vehicle for the larger part of that minute (a tie: the later one), since a minute is the
  finest the aggregates go; a minute nobody held for most of it is unassigned (in no driver's scorecard).
- A dismissed event (a review in state "dismissed", a false positive) leaves every count: one is taken off its kind
  in the minute (and day) its start falls in. Dismissing can therefore only raise a score or keep it.
- The score of a period is `driver_score` of the period's summed counts and driving time, not a mean of daily scores.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from fleetsense.cloud.analytics.score import driver_score
from fleetsense.service.attribution import Assignment, Piece, split_by_driver

from fleetsense.event_kinds import COUNTED_KINDS, SCORE_WEIGHTS

MINUTE_US = 60_000_000
DAY_US = 86_400_000_000


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO: Monday to Sunday
    MONTH = "month"


def period_days(period: Period, at: date) -> tuple[date, date]:
    """The first and last UTC day of the period that holds `at`."""
    if period is Period.DAY:
        return at, at
    if period is Period.WEEK:
        monday = at - timedelta(days=at.weekday())
        return monday, monday + timedelta(days=6)
    last = calendar.monthrange(at.year, at.month)[1]
    return at.replace(day=1), at.replace(day=last)


def previous_period(period: Period, at: date) -> date:
    """A day of the period before the one holding `at`."""
    first, _ = period_days(period, at)
    return first - timedelta(days=1)


def periods_back(period: Period, at: date, count: int) -> list[tuple[date, date]]:
    """The `count` periods ending with the one holding `at`, oldest first."""
    out: list[tuple[date, date]] = []
    day = at
    for _ in range(count):
        out.append(period_days(period, day))
        day = previous_period(period, day)
    return out[::-1]


def day_start_us(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000


def span_us(first: date, last: date) -> tuple[int, int]:
    """[start, end) of the whole days first..last."""
    return day_start_us(first), day_start_us(last) + DAY_US


@dataclass(frozen=True, kw_only=True)
class MinuteRow:
    vehicle_id: str
    minute_us: int  # the minute's start
    driving_s: float
    event_counts: Mapping[str, int]


@dataclass(frozen=True)
class EventRef:
    """An event by its key's parts (a dismissed one)."""

    vehicle_id: str
    start_us: int
    kind: str


@dataclass(frozen=True, kw_only=True)
class Tally:
    """Counts per counted kind and driving time, and what follows from them."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED_KINDS, 0))
    driving_s: float = 0.0

    def __add__(self, other: Tally) -> Tally:
        counts = {kind: self.counts.get(kind, 0) + other.counts.get(kind, 0) for kind in COUNTED_KINDS}
        return Tally(counts=counts, driving_s=self.driving_s + other.driving_s)

    @property
    def score(self) -> float:
        return driver_score(self.counts, self.driving_s)

    @property
    def harsh_events(self) -> int:
        """Events of the kinds the score weighs (a bump is the road's doing, not the driver's)."""
        return sum(n for kind, n in self.counts.items() if SCORE_WEIGHTS.get(kind, 0.0) > 0.0)

    @property
    def events_per_hour(self) -> float | None:
        """Harsh events per hour of driving; None without driving."""
        return self.harsh_events / (self.driving_s / 3600.0) if self.driving_s > 0 else None


def tally(counts: Mapping[str, int], driving_s: float) -> Tally:
    """A Tally of a row's counts (kinds not counted, or no longer, are left out)."""
    return Tally(counts={kind: int(counts.get(kind, 0) or 0) for kind in COUNTED_KINDS}, driving_s=float(driving_s))


def without_dismissed(counts: Mapping[str, int], dismissed_kinds: Iterable[str]) -> dict[str, int]:
    """`counts` with one taken off per dismissed event's kind (never below 0: a review of an event the job no
    longer counts takes nothing)."""
    left = Counter({kind: int(n or 0) for kind, n in counts.items()})
    for kind in dismissed_kinds:
        if left.get(kind, 0) > 0:
            left[kind] -= 1
    return dict(left)


def _dismissed_by_minute(dismissed: Iterable[EventRef]) -> dict[tuple[str, int], list[str]]:
    out: dict[tuple[str, int], list[str]] = {}
    for event in dismissed:
        out.setdefault((event.vehicle_id, event.start_us - event.start_us % MINUTE_US), []).append(event.kind)
    return out


def minute_driver(assignments: Sequence[Assignment], minute_us: int) -> str | None:
    """Who held the vehicle for the larger part of the minute (a tie: the later); None: nobody."""
    held_us: dict[str | None, int] = {}
    latest_us: dict[str | None, int] = {}
    for piece in split_by_driver(assignments, minute_us, minute_us + MINUTE_US):
        held_us[piece.driver_id] = held_us.get(piece.driver_id, 0) + piece.end_us - piece.start_us
        latest_us[piece.driver_id] = piece.start_us
    return max(held_us, key=lambda driver: (held_us[driver], latest_us[driver]))


def minutes_tally(
    minutes: Iterable[MinuteRow],
    dismissed: Iterable[EventRef] = (),
    *,
    keep: Mapping[str, Sequence[Assignment]] | None = None,
    driver_id: str | None = None,
    from_us: int = 0,
    to_us: int = 2**63 - 1,
) -> Tally:
    """The summed minute rows whose start is in [from_us, to_us), dismissed events taken off; with `keep` (each
    vehicle's assignments), only the minutes that are `driver_id`'s by the minute rule."""
    by_minute = _dismissed_by_minute(dismissed)
    total = Tally()
    for row in minutes:
        if not from_us <= row.minute_us < to_us:
            continue
        if keep is not None and minute_driver(keep.get(row.vehicle_id, ()), row.minute_us) != driver_id:
            continue
        counts = without_dismissed(row.event_counts, by_minute.get((row.vehicle_id, row.minute_us), ()))
        total = total + tally(counts, row.driving_s)
    return total


def days_tally(days: Iterable[tuple[date, Mapping[str, int], float]], dismissed: Iterable[EventRef] = ()) -> Tally:
    """A vehicle's daily_scores rows (day, event_counts, driving_s) summed, its dismissed events taken off each
    day's counts (by the UTC day of the event's start)."""
    by_day: dict[date, list[str]] = {}
    for event in dismissed:
        by_day.setdefault(datetime.fromtimestamp(event.start_us / 1e6, UTC).date(), []).append(event.kind)
    total = Tally()
    for day, counts, driving_s in days:
        total = total + tally(without_dismissed(counts, by_day.get(day, ())), driving_s)
    return total


def trend(now: Tally, before: Tally) -> float | None:
    """Score points gained since the previous period; None when either had no driving."""
    if now.driving_s <= 0 or before.driving_s <= 0:
        return None
    return round(now.score - before.score, 2)


def split_minutes(minutes: Iterable[MinuteRow], pieces: Sequence[Piece]) -> list[list[MinuteRow]]:
    """A trip's minute rows shared among its parts (`split_by_driver`'s pieces, which tile the trip): each minute
    to the part that holds the larger part of it within the trip (a tie: the later), so a trip's parts add up to
    the trip and each part's minutes are its driver's by the scorecard's rule. Minutes outside the trip: none."""
    parts: list[list[MinuteRow]] = [[] for _ in pieces]
    if not pieces:
        return parts
    start_us, end_us = pieces[0].start_us, pieces[-1].end_us
    for row in minutes:
        lo, hi = max(row.minute_us, start_us), min(row.minute_us + MINUTE_US, end_us)
        if lo >= hi:
            continue
        overlaps = [(min(hi, p.end_us) - max(lo, p.start_us), index) for index, p in enumerate(pieces)]
        parts[max(overlaps)[1]].append(row)
    return parts
