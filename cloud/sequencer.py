"""Per-vehicle sequence bookkeeping: deduplication by sequence number and release in sequence order.

A vehicle numbers every batch it sends (IMU and barometer share one sequence). The broker and the source may
deliver a batch twice (MQTT QoS 1 resends, redelivery after a failure) and two source readers may deliver a
vehicle's batches out of order. The analytics need each batch exactly once and in order, so each vehicle's
batches pass through one `Sequencer`, kept in Flink keyed state:

- a seq already released, or waiting, is a duplicate: dropped before anything is counted;
- the next expected seq is released at once, followed by any waiting run it completes;
- a seq beyond the next expected one waits (its bytes are kept by the caller) until the gap fills, or until
  `gap_wait_ms` passes, or until `max_waiting` batches wait: then the gap is skipped and recorded;
- a batch flagged GAP_BEFORE by the device (it dropped data itself) is not waited for;
- a seq that arrives after its gap was skipped is *late*: the caller still stores it and records it, and
  it is never counted twice (a later copy of it is a duplicate).

Pure logic: no Flink, no clock (the caller passes `now_ms`), small and picklable.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import Enum

SKIPPED_RANGES_KEPT = 64  # the most recent skipped gaps remembered, to tell a late batch from a duplicate


class Verdict(Enum):
    RELEASE = "release"  # process now: the offered seq (and maybe waiting ones) are next in order
    WAIT = "wait"  # keep the batch; it is released later by `offer` or `expire`
    DUPLICATE = "duplicate"  # seen before: drop
    LATE = "late"  # its gap was skipped before it came: store it, record it, do not analyse it in order


@dataclass(frozen=True)
class Released:
    seq: int
    gap_before: bool  # batches before it were skipped (or the device flagged a gap)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    released: tuple[Released, ...] = ()  # in order; for RELEASE it starts with the offered seq
    skipped: tuple[tuple[int, int], ...] = ()  # gaps given up on now, as inclusive (first, last) ranges


@dataclass
class Sequencer:
    gap_wait_ms: int = 10_000
    max_waiting: int = 600  # ten minutes of 1 s batches
    next_seq: int | None = None  # every seq below it was released or skipped
    waiting: list[int] = field(default_factory=list)  # sorted
    waiting_gap_flag: dict[int, bool] = field(default_factory=dict)
    wait_since_ms: int | None = None  # when the oldest unfilled gap started waiting
    skipped: list[tuple[int, int]] = field(default_factory=list)  # recent skipped ranges, oldest first

    def offer(self, seq: int, *, gap_before: bool, now_ms: int) -> Decision:
        if self._seen(seq):
            return Decision(Verdict.DUPLICATE)
        if self.next_seq is not None and seq < self.next_seq:
            self._forget_skipped(seq)
            return Decision(Verdict.LATE)
        if self.next_seq is None and (seq == 0 or gap_before):
            self.next_seq = seq  # a brand-new vehicle, or one that says nothing came before
        bisect.insort(self.waiting, seq)
        self.waiting_gap_flag[seq] = gap_before
        released, skipped = self._release_run(now_ms)
        if released:
            return Decision(Verdict.RELEASE, tuple(released), tuple(skipped))
        if self.wait_since_ms is None:
            self.wait_since_ms = now_ms
        if len(self.waiting) > self.max_waiting:
            return self._give_up_gap(now_ms)
        return Decision(Verdict.WAIT)

    def deadline_ms(self) -> int | None:
        """When `expire` should next be called (None: nothing is waiting)."""
        return None if self.wait_since_ms is None else self.wait_since_ms + self.gap_wait_ms

    def expire(self, now_ms: int) -> Decision:
        """Skip the gap in front of the waiting batches if it has waited long enough."""
        deadline = self.deadline_ms()
        if deadline is None or now_ms < deadline or not self.waiting:
            return Decision(Verdict.WAIT)
        return self._give_up_gap(now_ms)

    # -- internals ----------------------------------------------------------------------------------------

    def _seen(self, seq: int) -> bool:
        if seq in self.waiting_gap_flag:
            return True
        if self.next_seq is None or seq >= self.next_seq:
            return False
        return not any(first <= seq <= last for first, last in self.skipped)

    def _give_up_gap(self, now_ms: int) -> Decision:
        """Stop waiting for what is missing in front of the oldest waiting batch."""
        if self.next_seq is None:
            # First contact and nothing lower came within the wait: every vehicle counts from 0, so all
            # below is a skipped gap (a batch from it arriving later is late, not a duplicate).
            self.next_seq = 0
        self.waiting_gap_flag[self.waiting[0]] = True
        released, skipped = self._release_run(now_ms)
        return Decision(Verdict.RELEASE, tuple(released), tuple(skipped))

    def _release_run(self, now_ms: int) -> tuple[list[Released], list[tuple[int, int]]]:
        """Release waiting batches from the front while they are next in order or follow a declared gap."""
        released: list[Released] = []
        skipped: list[tuple[int, int]] = []
        while self.waiting and self.next_seq is not None:
            seq = self.waiting[0]
            gap_flag = self.waiting_gap_flag[seq]
            if seq != self.next_seq and not gap_flag:
                break
            if seq > self.next_seq:
                gap = (self.next_seq, seq - 1)
                skipped.append(gap)
                self.skipped.append(gap)
                del self.skipped[:-SKIPPED_RANGES_KEPT]
            self.waiting.pop(0)
            del self.waiting_gap_flag[seq]
            released.append(Released(seq, gap_flag or seq > self.next_seq))
            self.next_seq = seq + 1
        if released:
            # Whatever still waits now waits for a new gap.
            self.wait_since_ms = now_ms if self.waiting else None
        return released, skipped

    def _forget_skipped(self, seq: int) -> None:
        """A late batch fills part of a skipped range: a second copy of it is then a duplicate."""
        for index, (first, last) in enumerate(self.skipped):
            if first <= seq <= last:
                parts = [(first, seq - 1)] if first < seq else []
                parts += [(seq + 1, last)] if seq < last else []
                self.skipped[index : index + 1] = parts
                return
