"""A model of what the cloud can see of an outbox, for the fault and simulation tests: every entry handed to the
link and every gap offered in a status, checked against the promises of edge/outbox.py."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from fleetsense.edge.outbox import Entry, Gap, Outbox
from fleetsense.edge.storage_io import Disk

WRITES = frozenset({"open", "pwrite", "fdatasync", "fsync", "fsync_dir", "unlink", "replace", "statvfs"})


class FaultyDisk(Disk):
    """Fails storage calls on demand: from call number `fail_from` on (counted from the start), `fail_count`
    calls in a row (or for ever), with `errno_code`; `calls` lists every call made."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_from: int | None = None
        self.fail_count: int | None = None
        self.errno_code = errno.ENOSPC
        self.only: frozenset[str] | None = None

    def fail(self, code: int, *, after: int = 0, count: int | None = None, writes_only: bool = False) -> None:
        self.errno_code, self.fail_from, self.fail_count = code, len(self.calls) + after, count
        self.only = WRITES if writes_only else None

    def heal(self) -> None:
        self.fail_from = None

    def check(self, op: str) -> None:
        index = len(self.calls)
        self.calls.append(op)
        if self.fail_from is None or index < self.fail_from:
            return
        if self.fail_count is not None and index >= self.fail_from + self.fail_count:
            return
        if self.only is not None and op not in self.only:
            return
        raise OSError(self.errno_code, f"injected {errno.errorcode[self.errno_code]} at {op}")


def abandon(box: Outbox) -> None:
    """A SIGKILL: nothing more is written, the kernel closes the files (what was written stays written)."""
    box._log.close()
    box._acks.close()


def disk_usage(directory: Path) -> int:
    """The outbox's files as the filesystem allocates them (set-aside and quarantined files are kept apart)."""
    total = 0
    for path in directory.rglob("*"):
        if path.is_file() and "set-aside" not in path.parts and "corrupt" not in path.name:
            total += -(-path.stat().st_size // 4096) * 4096
    return total


@dataclass
class CloudView:
    """What left the outbox: entries handed out (by seq: their payload), acknowledged seqs, reported gaps."""

    seen: dict[int, bytes] = field(default_factory=dict)
    delivered: set[int] = field(default_factory=set)
    # Acknowledged while storage failed: the ack may not have reached the disk, so after a restart the batch may
    # be handed out again (the cloud deduplicates) or dropped by the bound and reported in a gap as well.
    uncertain: set[int] = field(default_factory=set)
    gaps: list[Gap] = field(default_factory=list)  # offered in a status (reported or not yet)

    def gap_seqs(self) -> list[int]:
        return [seq for gap in self.gaps for seq in range(gap.first_seq, gap.last_seq + 1)]

    def take(self, entries: list[Entry]) -> None:
        in_gaps = set(self.gap_seqs())
        for entry in entries:
            assert entry.id == entry.seq + 1
            assert entry.seq not in in_gaps, f"seq {entry.seq} handed out after it was reported lost"
            if entry.seq in self.delivered:
                assert entry.seq in self.uncertain, f"seq {entry.seq} handed out again after a durable ack"
            earlier = self.seen.setdefault(entry.seq, entry.payload)
            assert earlier == entry.payload, f"seq {entry.seq} reused for different data"

    def ack(self, box: Outbox, entries: list[Entry], *, storage_failing: bool = False) -> None:
        for entry in entries:
            box.acknowledge(entry.id)
            self.delivered.add(entry.seq)
            if storage_failing:
                self.uncertain.add(entry.seq)

    def report(self, box: Outbox, *, acknowledged: bool = True) -> None:
        gaps = box.unreported_gaps()
        for gap in gaps:
            covered = set(range(gap.first_seq, gap.last_seq + 1))
            assert not (covered & self.delivered) - self.uncertain, f"gap {gap} covers delivered seqs"
            if gap not in self.gaps:
                # A gap offered in a status that was not acknowledged may grow before it is offered again: the
                # cloud keys gaps by their first seq, so the longer one replaces it.
                self.gaps = [g for g in self.gaps if g.first_seq != gap.first_seq]
                assert not covered & set(self.gap_seqs()), f"gap {gap} overlaps one reported before"
                self.gaps.append(gap)
        if acknowledged:
            box.mark_reported(gaps)

    def drain(self, box: Outbox) -> None:
        """Storage works and the link is connected: everything goes, every gap is reported."""
        assert box.flush(), box.stats()
        while entries := box.pending(limit=1000):
            self.take(entries)
            self.ack(box, entries)
        self.report(box)
        assert box.unreported_gaps() == []

    def check_complete(self, box: Outbox) -> None:
        """After a drain: every seq ever allocated was delivered once or is in exactly one reported gap."""
        stats = box.stats()
        gap_seqs = self.gap_seqs()
        assert len(gap_seqs) == len(set(gap_seqs)), "a seq is in two gaps"
        assert not (set(gap_seqs) & self.delivered) - self.uncertain
        accounted = self.delivered | set(gap_seqs)
        missing = sorted(set(range(stats.next_seq)) - accounted)
        assert not missing, f"seqs neither delivered nor in a gap: {missing[:10]}"
        assert stats.depth == 0 and stats.memory_batches == 0


def payload_for(tag: int, size: int) -> object:
    return lambda seq: f"{seq}:{tag}:".encode().ljust(size, b"x")


def payload_size(rng_value: float) -> int:
    return 200 + int(rng_value * 1400)


def make_box(directory: Path, disk: Disk, *, max_bytes: int, memory_batches: int, clock: list[int]) -> Outbox:
    os.makedirs(directory, exist_ok=True)
    return Outbox(
        directory,
        max_bytes=max_bytes,
        memory_batches=memory_batches,
        monotonic_ns=lambda: clock[0],
        disk=disk,
    )
