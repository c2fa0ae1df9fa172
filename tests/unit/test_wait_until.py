"""process.wait_until: a start check that fails early when the process died, and only then."""

from __future__ import annotations

import random

import pytest

from fleetsense.errors import StackError
from fleetsense.stack import process


def test_a_process_missing_from_one_snapshot_is_not_called_dead() -> None:
    # The process list misses the daemon once (it was exec'ing its JVM), then it is ready.
    seen = iter([False, True, True, True])
    ready = iter([False, False, True])
    process.wait_until(
        lambda: next(ready), timeout_s=5, what="probe", still_running=lambda: next(seen), interval_s=0, confirm_exit_s=0
    )


def test_a_process_gone_in_two_snapshots_fails_the_start_with_its_log() -> None:
    with pytest.raises(StackError, match="probe: the process exited during start-up") as info:
        process.wait_until(
            lambda: False, timeout_s=5, what="probe", still_running=lambda: False, interval_s=0, confirm_exit_s=0
        )
    assert info.value.hint == "read the end of the log for the cause"


def fails_by_the_rule(alive: list[bool], ready_at: int) -> bool:
    """The rule, stated on its own: before the check holds, a read that misses the process is followed by one more
    read; the start fails when that one misses it too."""
    at = 0
    for poll in range(len(alive)):
        if poll >= ready_at:
            return False
        if not alive[at]:
            at += 1
            if not alive[at]:
                return True
        at += 1
    raise AssertionError("the history ran out")


@pytest.mark.parametrize("seed", range(2000))
def test_random_snapshot_histories_fail_exactly_by_the_rule(seed: int) -> None:
    rng = random.Random(seed)
    alive = [rng.random() < rng.choice((0.5, 0.8, 0.95)) for _ in range(100)]
    ready_at = rng.randrange(0, 40)
    polls = iter(range(1000))
    reads = iter(alive)
    try:
        process.wait_until(
            lambda: next(polls) >= ready_at,
            timeout_s=5,
            what="p",
            still_running=lambda: next(reads),
            interval_s=0,
            confirm_exit_s=0,
        )
        failed = False
    except StackError:
        failed = True
    assert failed == fails_by_the_rule(alive, ready_at), f"seed {seed}"
