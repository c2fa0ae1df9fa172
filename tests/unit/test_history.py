"""The replay order of a vehicle's log (cloud/history.py). Seeded random histories (thousands per run;
FLEETSENSE_SIM_SEED=N replays one): agent restarts (new epochs), clocks that step back, redeliveries stored twice,
hours read in any row order; and resumed replays."""

from __future__ import annotations

import os
import random
from collections import Counter

from fleetsense.cloud.history import (
    HOUR_MS,
    START,
    LogRow,
    Position,
    ReplayCounts,
    hour_of,
    hours_to_read,
    replay_order,
)

CASES = int(os.environ.get("FLEETSENSE_SIM_CASES", "3000"))
SEED_ENV = os.environ.get("FLEETSENSE_SIM_SEED")
SEEDS = [int(SEED_ENV)] if SEED_ENV else list(range(CASES))
T0 = 1_780_000_000_000 - 1_780_000_000_000 % HOUR_MS


def row(epoch: int, seq: int, start_ms: int, samples: int = 50) -> LogRow:
    return LogRow("van-1", hour_of(start_ms), epoch, seq, b"m%d.%d" % (epoch, seq), start_ms + 20, samples)


def history(rng: random.Random, *, steps_back: bool) -> list[LogRow]:
    """A vehicle's log: batches of ~1 s, idle stretches, agent restarts; with `steps_back`, clocks that jump back
    by up to 90 min (the batch is stored in an earlier hour than batches sent before it)."""
    rows, clock, epoch, seq = [], T0 + rng.randrange(HOUR_MS), 0, 0
    for _ in range(rng.randrange(1, 120)):
        draw = rng.random()
        if draw < 0.05:
            epoch, seq = epoch + 1, 0
        elif draw < 0.15:
            clock += rng.randrange(HOUR_MS // 2, 3 * HOUR_MS)  # parked
        elif steps_back and draw < 0.2:
            clock -= rng.randrange(1, 90 * 60_000)
        rows.append(row(epoch, seq, clock))
        if rng.random() < 0.03:
            rows.append(row(epoch, seq, clock + rng.randrange(1, 5_000)))  # the same batch, re-timed: a conflict
        seq += 1
        clock += rng.randrange(500, 60_000)
    return rows


def by_hour(rows: list[LogRow], rng: random.Random) -> list[list[LogRow]]:
    hours: dict[int, list[LogRow]] = {}
    for r in rows:
        hours.setdefault(r.hour_ms, []).append(r)
    for hour_rows in hours.values():
        rng.shuffle(hour_rows)  # Cassandra returns (epoch ASC, seq DESC); the order must not matter
    return [hours[hour] for hour in sorted(hours)]


def test_in_order_logs_replay_sorted_whatever_the_order_rows_come_in() -> None:
    for seed in SEEDS:
        rng = random.Random(seed)
        rows = history(rng, steps_back=False)
        counts = ReplayCounts()
        out = list(replay_order(by_hour(rows, rng), counts=counts))
        assert Counter(out) == Counter(rows), seed  # nothing lost, nothing doubled
        positions = [r.position for r in out]
        assert positions == sorted(positions), seed
        assert counts.late_rows == 0 and counts.rows == len(rows) and counts.samples == 50 * len(rows), seed


def test_clock_steps_lose_nothing_and_count_what_they_leave_late() -> None:
    late_seen = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        rows = history(rng, steps_back=True)
        counts = ReplayCounts()
        out = list(replay_order(by_hour(rows, rng), counts=counts))
        assert Counter(out) == Counter(rows), seed
        inversions, high = 0, START
        for r in out:
            if r.position < high:
                inversions += 1
            high = max(high, r.position)
        assert counts.late_rows == inversions, seed
        late_seen += inversions
    # Steps of up to 90 min reach past the one-hour look-ahead sometimes: the property above is not vacuous.
    assert late_seen > 0 or len(SEEDS) < 100


def test_a_resumed_replay_feeds_exactly_what_the_first_pass_had_not() -> None:
    for seed in SEEDS:
        rng = random.Random(seed)
        rows = history(rng, steps_back=False)
        full = list(replay_order(by_hour(rows, rng)))
        cut = rng.randrange(len(full) + 1)
        after = full[cut - 1].position if cut else START
        counts = ReplayCounts()
        rest = list(replay_order(by_hour(rows, rng), after=after, counts=counts))
        assert Counter(rest) == Counter(r for r in rows if r.position > after), seed
        assert counts.skipped_rows == len(rows) - len(rest), seed


def test_hours_to_read_start_at_since_or_an_hour_before_the_resume_point() -> None:
    hours = [T0 + i * HOUR_MS for i in range(6)]
    assert hours_to_read(reversed(hours), since_ms=T0 + 2 * HOUR_MS + 5, after_hour_ms=None) == hours[2:]
    assert hours_to_read(hours, since_ms=T0, after_hour_ms=T0 + 4 * HOUR_MS) == hours[3:]
    assert hours_to_read(hours, since_ms=T0 + 5 * HOUR_MS, after_hour_ms=T0 + HOUR_MS) == hours[5:]


def test_positions_order_by_epoch_then_seq() -> None:
    assert Position(0, 999) < Position(1, 0) < Position(1, 1)
    assert Position(0, 0) > START
