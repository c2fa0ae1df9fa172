"""Scorecards (service/scorecard.py), seeded and randomised (replay a failure with its seed): random minute rows,
random assignment histories and random dismissals, against brute-force oracles and the job's formula."""

from __future__ import annotations

import itertools
import random
from datetime import date, timedelta

import pytest
from fleetsense.cloud.analytics.score import driver_score
from fleetsense.service import scorecard as sc
from fleetsense.service.attribution import Assignment, split_by_driver
from hypothesis import given
from hypothesis import strategies as st

from fleetsense.event_kinds import COUNTED_KINDS

DAY0_US = sc.day_start_us(date(2026, 12, 6))
DRIVERS = ("ann", "bo", "cy")
CASES = 2_000


def random_minutes(rng: random.Random, vehicle_id: str, count: int) -> list[sc.MinuteRow]:
    first = rng.randrange(0, 1440 - count)
    return [
        sc.MinuteRow(
            vehicle_id=vehicle_id,
            minute_us=DAY0_US + (first + i) * sc.MINUTE_US,
            driving_s=round(rng.uniform(0, 60), 2) if rng.random() < 0.8 else 0.0,
            event_counts={kind: rng.choice((0, 0, 0, 1, 2)) for kind in COUNTED_KINDS},
        )
        for i in range(count)
    ]


def random_assignments(rng: random.Random, vehicle_id: str, minutes: list[sc.MinuteRow]) -> list[Assignment]:
    """Non-overlapping assignments at whole seconds over the minutes' span, with holes, the last maybe open."""
    lo, hi = minutes[0].minute_us, minutes[-1].minute_us + sc.MINUTE_US
    cuts = sorted({rng.randrange(lo, hi, 1_000_000) for _ in range(rng.randint(1, 8))} | {lo - 60_000_000})
    out = []
    for start, end in zip(cuts, [*cuts[1:], None], strict=True):
        if rng.random() < 0.25:
            continue  # nobody held it then
        out.append(
            Assignment(vehicle_id=vehicle_id, driver_id=rng.choice(DRIVERS), valid_from_us=start, valid_to_us=end)
        )
    return out


def random_dismissals(rng: random.Random, minutes: list[sc.MinuteRow]) -> list[sc.EventRef]:
    out = []
    for row in rng.sample(minutes, k=min(len(minutes), rng.randint(0, 5))):
        kind = rng.choice(COUNTED_KINDS)
        out.append(sc.EventRef(row.vehicle_id, row.minute_us + rng.randrange(0, sc.MINUTE_US), kind))
    return out


def brute_minute_driver(assignments: list[Assignment], minute_us: int) -> str | None:
    """Second by second: who held the vehicle longest in the minute; a tie goes to whose holding began later."""
    seconds: dict[str | None, list[int]] = {}
    for second in range(60):
        at_us = minute_us + second * 1_000_000
        holder = next((a.driver_id for a in assignments if a.holds(at_us)), None)
        seconds.setdefault(holder, []).append(second)

    # A driver's "later" is the start of their last stretch in the minute.
    def last_stretch(held: list[int]) -> int:
        start = held[-1]
        while start - 1 in held:
            start -= 1
        return start

    return max(seconds, key=lambda d: (len(seconds[d]), last_stretch(seconds[d])))


def summed(rows: list[sc.MinuteRow]) -> tuple[dict[str, int], float]:
    counts = dict.fromkeys(COUNTED_KINDS, 0)
    for row in rows:
        for kind, n in row.event_counts.items():
            counts[kind] += n
    return counts, sum(row.driving_s for row in rows)


@pytest.mark.parametrize("seed", range(4))
def test_splitting_a_vehicle_s_day_among_drivers_conserves_counts_and_driving_time(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(CASES // 4):
        minutes = random_minutes(rng, "van-1", rng.randint(1, 90))
        assignments = random_assignments(rng, "van-1", minutes)
        dismissed = random_dismissals(rng, minutes)
        keep = {"van-1": assignments}
        whole = sc.minutes_tally(minutes, dismissed)
        parts = [sc.minutes_tally(minutes, dismissed, keep=keep, driver_id=d) for d in (*DRIVERS, None)]
        total = parts[0] + parts[1] + parts[2] + parts[3]
        assert total.counts == whole.counts
        assert total.driving_s == pytest.approx(whole.driving_s, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_a_driver_s_minutes_are_those_they_held_longest_and_their_score_is_the_job_s_formula(seed: int) -> None:
    rng = random.Random(100 + seed)
    for _ in range(CASES // 8):  # the brute-force oracle is 60 lookups a minute
        minutes = random_minutes(rng, "van-2", rng.randint(1, 40))
        assignments = random_assignments(rng, "van-2", minutes)
        driver = rng.choice(DRIVERS)
        mine = [m for m in minutes if brute_minute_driver(assignments, m.minute_us) == driver]
        assert [m for m in minutes if sc.minute_driver(assignments, m.minute_us) == driver] == mine
        got = sc.minutes_tally(minutes, keep={"van-2": assignments}, driver_id=driver)
        counts, driving_s = summed(mine)
        assert got.counts == counts
        assert got.score == driver_score(counts, driving_s)


@pytest.mark.parametrize("seed", range(4))
def test_dismissing_an_event_takes_one_off_its_minute_and_never_lowers_a_score(seed: int) -> None:
    rng = random.Random(200 + seed)
    for _ in range(CASES // 4):
        minutes = random_minutes(rng, "van-3", rng.randint(1, 30))
        assignments = random_assignments(rng, "van-3", minutes)
        dismissed = random_dismissals(rng, minutes)
        extra = random_dismissals(rng, minutes)[:1]
        keep, driver = {"van-3": assignments}, rng.choice((*DRIVERS, None))
        before = sc.minutes_tally(minutes, dismissed, keep=keep, driver_id=driver)
        after = sc.minutes_tally(minutes, dismissed + extra, keep=keep, driver_id=driver)
        assert after.score >= before.score
        assert all(after.counts[k] <= before.counts[k] for k in COUNTED_KINDS)
        assert sum(before.counts.values()) - sum(after.counts.values()) in (0, 1)
        assert after.driving_s == before.driving_s
        if not dismissed and extra:
            event = extra[0]
            row = next(m for m in minutes if m.minute_us == event.start_us - event.start_us % sc.MINUTE_US)
            mine = sc.minute_driver(assignments, row.minute_us) == driver
            taken = 1 if mine and row.event_counts[event.kind] > 0 else 0
            assert before.counts[event.kind] - after.counts[event.kind] == taken


def test_a_vehicle_day_without_dismissals_scores_what_the_job_stores_and_dismissals_only_raise_it() -> None:
    rng = random.Random(300)
    for _ in range(CASES):
        counts = {kind: rng.randint(0, 6) for kind in COUNTED_KINDS}
        driving_s = rng.uniform(0, 20_000)
        day = date(2026, 12, rng.randint(1, 31))
        tally = sc.days_tally([(day, counts, driving_s)])
        assert tally.score == driver_score(counts, driving_s)  # what the job's DailyScore holds
        kind = rng.choice(COUNTED_KINDS)
        dismissed = [sc.EventRef("v", sc.day_start_us(day) + rng.randrange(sc.DAY_US), kind)]
        other_day = [sc.EventRef("v", sc.day_start_us(day + timedelta(days=1)), kind)]
        assert sc.days_tally([(day, counts, driving_s)], dismissed).score >= tally.score
        assert sc.days_tally([(day, counts, driving_s)], other_day) == tally  # another day's event: not this one's


@pytest.mark.parametrize("seed", range(2))
def test_a_trip_s_minutes_are_shared_among_its_parts_and_add_up_to_the_trip(seed: int) -> None:
    rng = random.Random(400 + seed)
    for _ in range(CASES // 2):
        minutes = random_minutes(rng, "van-4", rng.randint(2, 60))
        assignments = random_assignments(rng, "van-4", minutes)
        start_us = minutes[0].minute_us + rng.randrange(sc.MINUTE_US)
        end_us = max(start_us + 1, minutes[-1].minute_us + rng.randrange(sc.MINUTE_US))
        pieces = split_by_driver(assignments, start_us, end_us)
        parts = sc.split_minutes(minutes, pieces)
        flat = [row for part in parts for row in part]
        overlapping = [m for m in minutes if m.minute_us + sc.MINUTE_US > start_us and m.minute_us < end_us]
        assert sorted(flat, key=lambda m: m.minute_us) == overlapping
        for piece, part in zip(pieces, parts, strict=True):
            for row in part:  # each minute goes to a part it overlaps
                assert row.minute_us < piece.end_us and row.minute_us + sc.MINUTE_US > piece.start_us


@given(st.dates(min_value=date(1972, 1, 1), max_value=date(2999, 12, 31)), st.sampled_from(list(sc.Period)))
def test_a_period_holds_its_day_and_the_periods_before_it_tile_time(at: date, period: sc.Period) -> None:
    first, last = sc.period_days(period, at)
    assert first <= at <= last
    if period is sc.Period.WEEK:
        assert first.isoweekday() == 1 and (last - first).days == 6
    if period is sc.Period.MONTH:
        assert first.day == 1 and (last + timedelta(days=1)).day == 1
    spans = sc.periods_back(period, at, 4)
    assert spans[-1] == (first, last)
    for (_, before_last), (after_first, _) in itertools.pairwise(spans):
        assert after_first == before_last + timedelta(days=1)
    assert sc.span_us(first, last)[1] - sc.span_us(first, last)[0] == ((last - first).days + 1) * sc.DAY_US
