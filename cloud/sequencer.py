"""Per-vehicle sequence bookkeeping: deduplication by sequence number and release in sequence order.

A vehicle numbers every batch it sends (IMU and barometer share one sequence). The broker and the source may
deliver a batch twice (MQTT QoS 1 resends, redelivery after a failure) and two source readers may deliver a
vehicle's batches out of order. The analytics need each batch exactly once and in order, so each vehicle's
batches pass through one `Sequencer`, kept in Flink keyed state:

- a seq already released, or waiting, is a duplicate: dropped before anything is counted;
- a vehicle's sequence starts at its first seq if that is 0 (or flagged GAP_BEFORE), else at the lowest seq that
  arrives within the wait (a vehicle met mid-life, or a reordered start), with no gap recorded below it;
- the next expected seq is released at once, followed by any waiting run it completes;
- a seq beyond the next expected one waits (its bytes are kept by the caller). No batch waits longer than
  `gap_wait_ms` from its own arrival: when that passes, every gap in front of it is skipped and recorded. When
  more than `max_waiting` batches wait, the gap in front of the lowest is skipped at once;
- a batch flagged GAP_BEFORE by the device (it dropped data itself) is not waited for;
- a seq that arrives after its gap was skipped is *late*: the caller still stores it and records it, and
  it is never counted twice (a later copy of it is a duplicate).

Pure logic: no Flink, no clock (the caller passes `now_ms`), small and picklable. It pickles as SEQUENCER's
versioned tuple of its fields' values (cloud/analytics/state_versions.py); a state pickled by an older version is
migrated when it is loaded.
"""

from __future__ import annotations

import bisect
import operator
from collections import namedtuple
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from fleetsense.cloud.analytics.state_versions import Piece
from fleetsense.cloud.stream_settings import StreamSettings

_DEFAULTS = StreamSettings()  # the settings' declarations hold the defaults (docs/operations.md)

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
    gap_wait_ms: int = _DEFAULTS.gap_wait_ms
    max_waiting: int = _DEFAULTS.max_waiting
    next_seq: int | None = None  # every seq below it was released or skipped
    waiting: list[int] = field(default_factory=list)  # sorted
    waiting_gap_flag: dict[int, bool] = field(default_factory=dict)
    arrived_ms: dict[int, int] = field(default_factory=dict)  # waiting seq -> when it arrived
    skipped: list[tuple[int, int]] = field(default_factory=list)  # recent skipped ranges, oldest first

    def __getstate__(self) -> tuple[Any, ...]:
        return (SEQUENCER.version, *_SEQUENCER_VALUES(self))

    def __setstate__(self, packed: tuple[Any, ...] | dict[str, Any]) -> None:
        if isinstance(packed, dict):  # versions 1 and 2 pickled the instance's __dict__, with its version in it
            packed = (packed.get("version", 1), packed)
        self.__dict__.update(zip(_SEQUENCER_FIELDS, SEQUENCER.unpack(packed), strict=True))

    @classmethod
    def restored(cls, packed: tuple[Any, ...] | dict[str, Any]) -> Sequencer:
        sequencer = cls.__new__(cls)
        sequencer.__setstate__(packed)
        return sequencer

    def offer(self, seq: int, *, gap_before: bool, now_ms: int) -> Decision:
        if self._seen(seq):
            return Decision(Verdict.DUPLICATE)
        if self.next_seq is None and (seq == 0 or (gap_before and not self.waiting)):
            # Nothing can come before 0; nor before a declared gap, unless lower seqs already wait.
            self._start_at(seq)
        if self.next_seq is not None and seq < self.next_seq:
            self._forget_skipped(seq)
            return Decision(Verdict.LATE)
        bisect.insort(self.waiting, seq)
        self.waiting_gap_flag[seq] = gap_before
        self.arrived_ms[seq] = now_ms
        released, skipped = self._release_run()
        if released:
            return Decision(Verdict.RELEASE, tuple(released), tuple(skipped))
        if len(self.waiting) > self.max_waiting:
            return self._give_up_gap()
        return Decision(Verdict.WAIT)

    def is_waiting(self, seq: int) -> bool:
        return seq in self.waiting_gap_flag

    def deadline_ms(self) -> int | None:
        """When `expire` should next be called: the earliest arrival of a waiting batch plus the wait (None:
        nothing waits). Always later than the `now_ms` of the last offer or expire."""
        return min(self.arrived_ms.values()) + self.gap_wait_ms if self.arrived_ms else None

    def expire(self, now_ms: int) -> Decision:
        """Skip every gap in front of each batch that has waited `gap_wait_ms`; bounded work (each round
        releases at least one batch)."""
        released: list[Released] = []
        skipped: list[tuple[int, int]] = []
        while (deadline := self.deadline_ms()) is not None and deadline <= now_ms:
            decision = self._give_up_gap()
            released += decision.released
            skipped += decision.skipped
        if not released:
            return Decision(Verdict.WAIT)
        return Decision(Verdict.RELEASE, tuple(released), tuple(skipped))

    # -- internals ----------------------------------------------------------------------------------------

    def _seen(self, seq: int) -> bool:
        if seq in self.waiting_gap_flag:
            return True
        if self.next_seq is None or seq >= self.next_seq:
            return False
        return not any(first <= seq <= last for first, last in self.skipped)

    def _give_up_gap(self) -> Decision:
        """Stop waiting for what is missing in front of the lowest waiting batch."""
        if self.next_seq is None:
            # First contact past 0 (a vehicle the cloud meets mid-life, or a reordered start): the sequence starts
            # at the lowest seq that came within the wait. Nothing says lower ones exist, so no gap is recorded;
            # one arriving later is late (stored and recorded), not a duplicate.
            self._start_at(self.waiting[0])
            released, skipped = self._release_run()
            return Decision(Verdict.RELEASE, tuple(released), tuple(skipped))
        self.waiting_gap_flag[self.waiting[0]] = True
        released, skipped = self._release_run()
        return Decision(Verdict.RELEASE, tuple(released), tuple(skipped))

    def _start_at(self, seq: int) -> None:
        """The sequence starts at `seq`: nothing below it was seen, so a lower seq arriving later is late (stored
        and recorded), never a duplicate; nothing says one exists, so no gap is recorded."""
        self.next_seq = seq
        if seq > 0:
            self.skipped.append((0, seq - 1))

    def _release_run(self) -> tuple[list[Released], list[tuple[int, int]]]:
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
            del self.arrived_ms[seq]
            released.append(Released(seq, gap_flag or seq > self.next_seq))
            self.next_seq = seq + 1
        return released, skipped

    def _forget_skipped(self, seq: int) -> None:
        """A late batch fills part of a skipped range: a second copy of it is then a duplicate."""
        for index, (first, last) in enumerate(self.skipped):
            if first <= seq <= last:
                parts = [(first, seq - 1)] if first < seq else []
                parts += [(seq + 1, last)] if seq < last else []
                self.skipped[index : index + 1] = parts
                return


# The pickled layout: the dataclass's fields in declaration order (version 3).
_SEQUENCER_FIELDS = tuple(f.name for f in fields(Sequencer))
_SEQUENCER_VALUES = operator.attrgetter(*_SEQUENCER_FIELDS)
SequencerState = namedtuple("SequencerState", _SEQUENCER_FIELDS)  # type: ignore[misc]


def _sequencer_from_v1(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Version 1 kept one wait start for all waiting batches: each of them counts as arrived then."""
    (state,) = values
    state = dict(state, version=2)
    since = state.pop("wait_since_ms", None)
    state["arrived_ms"] = {seq: since if since is not None else 0 for seq in state.get("waiting", [])}
    return (state,)


def _sequencer_from_v2(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Version 2 pickled the instance's __dict__ (field names in every pickle); version 3 only the values."""
    (state,) = values
    return tuple(state[name] for name in _SEQUENCER_FIELDS)


SEQUENCER: Piece[Any] = Piece(
    "sequencer", SequencerState, version=3, migrations={1: _sequencer_from_v1, 2: _sequencer_from_v2}
)
