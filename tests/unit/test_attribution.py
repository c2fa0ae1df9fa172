"""Driver attribution (service/attribution.py): who had a vehicle when, and the pieces a span is cut into.
Seeded random histories of assignments (thousands per run; FLEETSENSE_SIM_SEED=N replays one)."""

from __future__ import annotations

import itertools
import os
import random

import pytest
from fleetsense.service.attribution import Assignment, Piece, driver_at, place, split_by_driver

from fleetsense.errors import ConfigError

CASES = int(os.environ.get("FLEETSENSE_SIM_CASES", "1500"))
SEED_ENV = os.environ.get("FLEETSENSE_SIM_SEED")
SEEDS = [int(SEED_ENV)] if SEED_ENV else list(range(CASES))
H = 3_600_000_000  # an hour in microseconds


def a(driver: str, start_h: float, end_h: float | None = None) -> Assignment:
    return Assignment(
        vehicle_id="van-1",
        driver_id=driver,
        valid_from_us=int(start_h * H),
        valid_to_us=None if end_h is None else int(end_h * H),
    )


def test_a_shift_change_ends_the_running_assignment_at_the_next_ones_start() -> None:
    history, ended = place([a("ann", 8)], a("bob", 14))
    assert ended == a("ann", 8, 14)
    assert history == [a("ann", 8, 14), a("bob", 14)]
    assert driver_at(history, int(13.99 * H)) == "ann" and driver_at(history, 14 * H) == "bob"


def test_an_overlap_with_an_ended_assignment_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="van-1 is assigned to ann from 28800000000 to 50400000000"):
        place([a("ann", 8, 14)], a("bob", 13, 15))


def test_a_trip_across_a_driver_change_is_split_at_the_change() -> None:
    history = [a("ann", 8, 10), a("bob", 10)]
    assert split_by_driver(history, int(9.5 * H), int(10.5 * H)) == [
        Piece("ann", int(9.5 * H), 10 * H),
        Piece("bob", 10 * H, int(10.5 * H)),
    ]
    # A forgotten shift logged afterwards: the gap 12-13 had nobody, now it is carl's.
    gap = split_by_driver([a("ann", 8, 12), a("dan", 13)], 11 * H, 14 * H)
    assert [p.driver_id for p in gap] == ["ann", None, "dan"]
    corrected, _ = place([a("ann", 8, 12), a("dan", 13)], a("carl", 12, 13))
    assert [p.driver_id for p in split_by_driver(corrected, 11 * H, 14 * H)] == ["ann", "carl", "dan"]


def test_an_assignment_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"ends .* before it starts"):
        a("ann", 9, 8)


def random_assignment(rng: random.Random) -> Assignment:
    start = rng.randrange(0, 48)
    end = None if rng.random() < 0.3 else start + rng.randrange(1, 12)
    return a(rng.choice("ABCD"), start, end)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_histories_never_overlap_and_split_tiles_every_span(seed: int) -> None:
    rng = random.Random(seed)
    history: list[Assignment] = []
    for _ in range(rng.randrange(1, 12)):
        new = random_assignment(rng)
        open_before = [x for x in history if x.valid_to_us is None and x.valid_from_us < new.valid_from_us]
        closed = [
            x if x not in open_before else a(x.driver_id, x.valid_from_us / H, new.valid_from_us / H) for x in history
        ]
        should_refuse = any(x.overlaps(new) for x in closed)
        try:
            history, ended = place(history, new)
            assert not should_refuse, f"seed {seed}: {new} placed over {closed}"
            assert (ended is not None) == bool(open_before)
        except ConfigError:
            assert should_refuse, f"seed {seed}: {new} refused though nothing overlaps {closed}"
    for i, x in enumerate(history):  # one driver at a time
        assert not any(x.overlaps(y) for y in history[i + 1 :]), f"seed {seed}: {history}"
    start, end = sorted(rng.randrange(0, 70 * H) for _ in range(2))
    pieces = split_by_driver(history, start, end)
    if start == end:
        assert pieces == []
        return
    assert pieces[0].start_us == start and pieces[-1].end_us == end
    for left, right in itertools.pairwise(pieces):
        assert left.end_us == right.start_us and left.driver_id != right.driver_id
    for piece in pieces:
        for at in {piece.start_us, piece.end_us - 1, rng.randrange(piece.start_us, piece.end_us)}:
            holders = [x.driver_id for x in history if x.valid_from_us <= at < x.end_us]
            assert holders == ([piece.driver_id] if piece.driver_id else []), f"seed {seed} at {at}: {holders}"
