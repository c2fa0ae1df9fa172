"""Per-vehicle deduplication and ordering (cloud/sequencer.py)."""

from __future__ import annotations

import pickle

from fleetsense.cloud.sequencer import Released, Sequencer, Verdict
from hypothesis import given, settings
from hypothesis import strategies as st


def seqs(decision_released: tuple[Released, ...]) -> list[int]:
    return [r.seq for r in decision_released]


def test_in_order_batches_are_released_at_once_and_duplicates_dropped() -> None:
    s = Sequencer()
    for seq in range(3):
        decision = s.offer(seq, gap_before=False, now_ms=0)
        assert decision.verdict is Verdict.RELEASE and seqs(decision.released) == [seq]
    assert s.offer(1, gap_before=False, now_ms=0).verdict is Verdict.DUPLICATE
    assert s.offer(2, gap_before=False, now_ms=0).verdict is Verdict.DUPLICATE


def test_a_reordered_batch_waits_for_the_one_before_it() -> None:
    s = Sequencer()
    s.offer(0, gap_before=False, now_ms=0)
    assert s.offer(2, gap_before=False, now_ms=10).verdict is Verdict.WAIT
    assert s.offer(2, gap_before=False, now_ms=11).verdict is Verdict.DUPLICATE  # waiting counts as seen
    decision = s.offer(1, gap_before=False, now_ms=20)
    assert seqs(decision.released) == [1, 2] and not any(r.gap_before for r in decision.released)
    assert s.deadline_ms() is None


def test_a_gap_is_skipped_after_the_wait_and_a_late_batch_is_reported_once() -> None:
    s = Sequencer(gap_wait_ms=1000)
    s.offer(0, gap_before=False, now_ms=0)
    s.offer(3, gap_before=False, now_ms=100)
    s.offer(4, gap_before=False, now_ms=200)
    assert s.deadline_ms() == 1100
    assert s.expire(1099).verdict is Verdict.WAIT
    decision = s.expire(1100)
    assert seqs(decision.released) == [3, 4] and decision.skipped == ((1, 2),)
    assert [r.gap_before for r in decision.released] == [True, False]
    assert s.offer(2, gap_before=False, now_ms=2000).verdict is Verdict.LATE
    assert s.offer(2, gap_before=False, now_ms=2001).verdict is Verdict.DUPLICATE
    assert s.offer(1, gap_before=False, now_ms=2002).verdict is Verdict.LATE


def test_a_gap_the_device_declared_is_not_waited_for() -> None:
    s = Sequencer()
    s.offer(0, gap_before=False, now_ms=0)
    decision = s.offer(50, gap_before=True, now_ms=1)
    assert decision.verdict is Verdict.RELEASE and decision.released == (Released(50, True),)
    assert decision.skipped == ((1, 49),)


def test_first_contact_past_seq_0_starts_at_the_lowest_seq_of_the_wait_with_no_gap_and_lower_seqs_are_late() -> None:
    s = Sequencer(gap_wait_ms=500)
    assert s.offer(7, gap_before=False, now_ms=0).verdict is Verdict.WAIT
    assert s.offer(6, gap_before=False, now_ms=10).verdict is Verdict.WAIT  # a reordered start: 6 came after 7
    decision = s.expire(500)
    assert seqs(decision.released) == [6, 7] and decision.skipped == ()  # no invented gap 0..5
    assert s.offer(2, gap_before=False, now_ms=600).verdict is Verdict.LATE
    assert s.offer(2, gap_before=False, now_ms=601).verdict is Verdict.DUPLICATE
    assert s.offer(8, gap_before=False, now_ms=602).verdict is Verdict.RELEASE


def test_a_declared_gap_during_the_first_contact_wait_does_not_strand_the_lower_seqs() -> None:
    """Found by the stream simulation (seed 175): seq 2 waited at first contact, then seq 25 flagged GAP_BEFORE
    started the sequence at 25; seq 2's release moved the sequence back to 3, and 0 and 1 were later dropped as
    duplicates without a trace."""
    s = Sequencer(gap_wait_ms=500)
    assert s.offer(2, gap_before=False, now_ms=0).verdict is Verdict.WAIT
    assert s.offer(25, gap_before=True, now_ms=10).verdict is Verdict.WAIT
    decision = s.expire(500)
    assert seqs(decision.released) == [2, 25] and decision.skipped == ((3, 24),)
    assert s.offer(0, gap_before=False, now_ms=600).verdict is Verdict.LATE
    assert s.offer(1, gap_before=False, now_ms=601).verdict is Verdict.LATE


def test_a_seq_below_a_sequence_started_by_a_declared_gap_is_late_not_a_silent_duplicate() -> None:
    """Found by the stream simulation (seed 244): the first seq seen, 18, flagged GAP_BEFORE, started the sequence;
    seq 0 arriving later was taken for a duplicate and dropped without a trace."""
    s = Sequencer()
    assert s.offer(18, gap_before=True, now_ms=0).verdict is Verdict.RELEASE
    assert s.offer(0, gap_before=False, now_ms=10).verdict is Verdict.LATE


def test_first_contact_at_seq_0_or_after_a_declared_gap_starts_at_once() -> None:
    for seq, gap_before in ((0, False), (40, True)):
        s = Sequencer()
        decision = s.offer(seq, gap_before=gap_before, now_ms=0)
        assert decision.verdict is Verdict.RELEASE and seqs(decision.released) == [seq] and decision.skipped == ()


def test_no_batch_waits_longer_than_the_gap_wait_from_its_own_arrival() -> None:
    """Two gaps one after the other: the batch behind the second gap arrived with the first and is released
    when its own wait ends, not a second full wait later."""
    s = Sequencer(gap_wait_ms=1000)
    s.offer(0, gap_before=False, now_ms=0)
    s.offer(1, gap_before=False, now_ms=0)
    s.offer(3, gap_before=False, now_ms=100)
    s.offer(5, gap_before=False, now_ms=200)
    assert s.deadline_ms() == 1100
    decision = s.expire(1100)
    assert seqs(decision.released) == [3] and decision.skipped == ((2, 2),)
    assert s.deadline_ms() == 1200
    decision = s.expire(5000)  # a timer that fires late releases everything that is due, in one call
    assert seqs(decision.released) == [5] and decision.skipped == ((4, 4),) and s.deadline_ms() is None


def test_a_state_pickled_by_version_1_loads_with_each_waiting_batch_arrived_at_the_old_wait_start() -> None:
    old = Sequencer(gap_wait_ms=1000)
    old.offer(0, gap_before=False, now_ms=0)
    old.offer(2, gap_before=False, now_ms=50)
    state = dict(vars(old))
    del state["arrived_ms"]  # version 1 had no version field either
    state["wait_since_ms"] = 40
    restored = Sequencer.__new__(Sequencer)
    restored.__setstate__(state)
    assert restored.arrived_ms == {2: 40} and restored.deadline_ms() == 1040
    assert seqs(restored.expire(1040).released) == [2]


def test_too_many_waiting_batches_force_the_gap_to_be_skipped() -> None:
    s = Sequencer(max_waiting=3)
    s.offer(0, gap_before=False, now_ms=0)
    for seq in (2, 3, 4):
        assert s.offer(seq, gap_before=False, now_ms=0).verdict is Verdict.WAIT
    decision = s.offer(5, gap_before=False, now_ms=0)
    assert decision.verdict is Verdict.RELEASE and seqs(decision.released) == [2, 3, 4, 5]


def test_the_state_is_small_when_pickled() -> None:
    s = Sequencer()
    for seq in range(0, 100_000, 3):  # thousands of gaps: only the latest are remembered
        s.offer(seq, gap_before=True, now_ms=seq)
    assert len(pickle.dumps(s)) < 4096


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=40).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.permutations(list(range(n))),
            st.lists(st.integers(0, n - 1), max_size=20),  # duplicates
            st.lists(st.integers(0, 60), max_size=5),  # when the clock jumps past the wait
        )
    )
)
def test_every_seq_is_released_or_late_exactly_once_and_releases_are_in_order(case: tuple) -> None:  # type: ignore[type-arg]
    n, order, dups, expiries = case
    s = Sequencer(gap_wait_ms=1000, max_waiting=8)
    released: list[int] = []
    late: list[int] = []
    now = 0
    for step, seq in enumerate(order + dups):
        now += 10
        if step in expiries:
            now += 2000
            released += seqs(s.expire(now).released)
        decision = s.offer(seq, gap_before=False, now_ms=now)
        released += seqs(decision.released)
        if decision.verdict is Verdict.LATE:
            late.append(seq)
    released += seqs(s.expire(now + 10_000).released)
    assert released == sorted(released)
    assert sorted(released + late) == list(range(n))
    assert len(released + late) == len(set(released + late))
