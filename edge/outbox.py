"""The durable outbox: every batch is made durable here before the link may publish it, and forgotten only when
the broker's PUBACK for it arrives. Storage faults are data-loss events, never exceptions.

`append` allocates the batch's sequence number and puts it in a bounded memory ring; the ring is written to the
segment log (edge/segment_log.py) in groups of `commit_batches` (or after `commit_interval_s`) with one
fdatasync, and only then does `pending` hand the batches to the link. While storage fails (disk full, read-only,
I/O errors) the ring keeps the newest `memory_batches`; older ones are dropped and their seqs recorded as a gap.

Sequence numbers: a number handed to the cloud (a durable batch, or a durable gap in a status message) is never
used again. Numbers come from blocks reserved in `sequence.reserved` (fsynced before any batch or gap above the
old limit is made durable); at start the outbox continues after the newest durable batch or gap, or past the
reserved block when part of the log was lost (quarantined). A batch still in memory when the process dies was
never shown to the cloud, so its number may be given again (docs/edge-agent.md, "Durability").
"""

from __future__ import annotations

import bisect
import errno
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from fleetsense.edge.outbox_files import AckFile, AckState, Gap, GapFiles, SetAside
from fleetsense.edge.outbox_legacy import LEGACY_NAME, legacy_bytes, legacy_paths, read_legacy
from fleetsense.edge.segment_log import Placed, Record, SegmentLog
from fleetsense.edge.storage_io import Disk, describe, is_storage_fault

from fleetsense import wire
from fleetsense.errors import FleetsenseError

__all__ = ["SEQ_BLOCK", "Entry", "Gap", "Outbox", "OutboxError", "OutboxStats"]

log = logging.getLogger(__name__)

SEQ_BLOCK = 10_000  # numbers reserved per fsync of the reservation file
COMMIT_BATCHES = 4  # batches per fdatasync (2 s of data at 100 Hz IMU + 10 Hz baro)
COMMIT_INTERVAL_S = 2.0  # the longest a batch waits in memory for its group
RETRY_AFTER_NS = 1_000_000_000  # after a storage fault, appends try the disk again at most once a second
SMALL_FILES_BYTES = 4 * 4096  # the ack file (2 blocks), the reservation and the floor: counted in the footprint


class OutboxError(FleetsenseError):
    """The outbox cannot be opened at all (its directory cannot be made or read)."""


@dataclass(frozen=True)
class Entry:
    id: int  # increasing in append order (seq + 1)
    seq: int
    topic: str
    payload: bytes
    boot_id: str = ""  # the kernel boot the batch was taken in; "" unknown
    mono_ns: int | None = None  # CLOCK_MONOTONIC of the first sample when the wall clock was not synchronised


@dataclass
class OutboxStats:
    depth: int = 0  # batches not yet acknowledged (on disk and in memory)
    bytes: int = 0  # their payload bytes
    oldest_seq: int | None = None
    next_seq: int = 0
    dropped_total: int = 0
    set_aside: int = 0  # rows that stopped decoding, kept in set-aside/
    quarantined: list[str] = field(default_factory=list)
    storage_error: str | None = None  # the last storage fault, until storage works again
    memory_batches: int = 0  # batches in memory, not yet durable
    footprint_bytes: int = 0  # the outbox's real size on disk


def segment_bytes_for(max_bytes: int) -> int:
    """About an eighth of the bound, 8 KiB..1 MiB: the bound drops a whole segment at a time."""
    return max(8192, min(1 << 20, (max_bytes // 8) // 4096 * 4096))


class Outbox:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        memory_batches: int = 600,
        now_ns: Callable[[], int] = time.time_ns,
        commit_batches: int = COMMIT_BATCHES,
        commit_interval_s: float = COMMIT_INTERVAL_S,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        disk: Disk | None = None,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.memory_batches = memory_batches
        self.commit_batches = commit_batches
        self.commit_interval_ns = int(commit_interval_s * 1e9)
        self._now_ns = now_ns
        self._monotonic_ns = monotonic_ns
        self.disk = disk or Disk()
        self.quarantined: list[str] = []
        self.storage_error: str | None = None
        # _lock guards the in-memory state and is held only briefly (never across disk I/O), so the sampling
        # loop never waits on the disk for it; _io_lock serialises disk I/O. Order: _io_lock, then _lock.
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._ring: deque[Entry] = deque()  # appended, not yet durable, in seq order
        self._writing: list[Entry] = []  # taken from the ring by the flush in progress
        self._unflushed_since_ns: int | None = None
        self._mem_gaps: list[Gap] = []  # dropped from the ring, not yet recorded on disk
        self._gaps: list[Gap] = []  # recorded on disk, not yet reported
        self._durable: list[int] = []  # seqs on disk, not acknowledged, ascending
        self._where: dict[int, Placed] = {}
        self._acked_above: set[int] = set()
        self._skipped: set[int] = set()  # could not be set aside this run: not offered again until restart
        self._sizes: dict[int, int] = {}  # payload bytes of each durable, unacknowledged batch
        self._durable_bytes = 0
        self._retry_at_ns = 0  # after a fault, appends do not retry the disk before this
        self._offered_upto = -1  # the highest seq pending() has handed out in this run
        self._ring_bytes = 0
        self._dropped_total = 0
        self._last: Entry | Placed | None = None
        self._seq_floor = 0
        self._newest_gap: Gap | None = None  # the recorded gap (reported or not) with the highest seqs
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._open()
        except OSError as exc:
            raise OutboxError(
                f"cannot open the outbox at {directory}: {describe(exc)}",
                hint="check that the agent's state directory exists, is readable and writable by its user",
            ) from exc

    # -- opening ---------------------------------------------------------------------------------------

    def _open(self) -> None:
        self._reservation_path = self.directory / "sequence.reserved"
        self._log = SegmentLog(self.directory / "log", self.disk, segment_bytes_for(self.max_bytes))
        self._acks = AckFile(self.directory / "log" / "acked", self.disk)
        self._gap_files = GapFiles(self.directory / "gaps", self.disk)
        self._set_aside = SetAside(self.directory / "set-aside", self.disk)
        self._reserved, epoch = self._read_reservation()
        self.epoch = epoch or secrets.randbelow(wire.EPOCH_LIMIT - 1) + 1
        # A log directory that is missing while numbers were reserved was lost (deleted, a restored backup):
        # its batches may have reached the cloud. One that exists holds everything that ever left the outbox.
        upgrading = (self.directory / LEGACY_NAME).exists()
        log_lost = not self._log.directory.is_dir() and self._reserved > 0 and not upgrading
        placed = self._log.load(self._quarantine)
        state = self._acks.load()
        self._dropped_total = state.dropped_total
        self._gaps, every_gap = self._gap_files.load()
        highest_gap = max((g.last_seq for g in every_gap), default=None)
        self._newest_gap = max(every_gap, key=lambda g: g.last_seq, default=None)
        self._seq_floor = self._log.floor()
        acked_extras = set(state.extras)
        self._acked_above = set(acked_extras)  # kept in the next saves, or they would be sent again
        for item in placed:
            seq = item.record.seq
            # A record in a recorded gap was written but not made durable before it was given up (a failed
            # fdatasync, then the ring overflowed): the gap is what the cloud was told, so it stays lost.
            lost = any(g.first_seq <= seq <= g.last_seq for g in every_gap)
            if seq < state.acked_below or seq in acked_extras or lost:
                item.segment.unacked -= 1
            else:
                self._index(item)
        self._last = placed[-1] if placed else None
        known = [p.record.seq + 1 for p in placed[-1:]] + ([highest_gap + 1] if highest_gap is not None else [])
        known += [self._seq_floor] if self._seq_floor else []
        self._legacy_footprint = 0
        self._upgrade_legacy(known, placed)
        try:
            self._legacy_footprint = legacy_bytes(self.directory / LEGACY_NAME)
        except OSError:
            self._legacy_footprint = 0
        jump = [self._reserved] if self.quarantined or log_lost else []
        self._next_seq = max(known + jump, default=0)
        self._set_aside_count = self._set_aside.count()
        if epoch is None:
            self._try_storage(lambda: self._reserve(max(self._reserved, self._next_seq)))
        self._try_storage(self._delete_acknowledged_segments)
        self._check_free_space()

    def _index(self, item: Placed) -> None:
        record = item.record
        stripped = replace(item, record=replace(record, payload=b""))  # payloads stay on disk
        self._where[record.seq] = stripped
        bisect.insort(self._durable, record.seq)
        self._sizes[record.seq] = len(record.payload)
        self._durable_bytes += len(record.payload)

    def _quarantine(self, path: Path, reason: str) -> None:
        """Keep a damaged file for inspection, never delete data silently; numbering moves past the reserved
        block, since the lost batches' numbers may have reached the cloud."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self._now_ns() / 1e9))
        target = self.directory / f"outbox.corrupt-{stamp}-{path.name}"
        for source in legacy_paths(path) if path.name == LEGACY_NAME else [path]:
            self.disk.replace(source, target.with_name(target.name + source.name[len(path.name) :]))
        (self.directory / f"{target.name}.reason").write_text(reason + "\n")
        log.error("outbox: %s; moved to %s and carrying on without it", reason, target)
        self.quarantined.append(str(target))

    def _upgrade_legacy(self, known: list[int], placed: list[Placed]) -> None:
        """An outbox.sqlite from before the segment log: move its batches, gaps and counters over, once."""
        path = self.directory / LEGACY_NAME
        if not path.exists():
            return
        try:
            legacy = read_legacy(path)
        except Exception as exc:
            if not is_storage_fault(exc):
                raise
            import sqlite3

            if isinstance(exc, sqlite3.OperationalError | OSError):
                # Unreadable now (read-only, full): keep it for the next start; its numbers may be in use.
                self._note_fault("reading the old outbox.sqlite", exc)
                known.append(self._reserved)
            else:
                self._quarantine(path, f"{LEGACY_NAME}: {exc}")
            return
        on_disk = {item.record.seq for item in placed}  # moved by an upgrade interrupted before it finished
        rows = [r for r in legacy.rows if r.seq not in on_disk]
        try:
            if rows:
                # The old rows' seqs are below anything this log acknowledged: say they are not acknowledged
                # (durably) before they are written, or a crash in between would make them look delivered.
                state = self._ack_state()
                below = min(state.acked_below, rows[0].seq)
                self._acks.save(AckState(below, state.dropped_total, state.extras), durable=True)
            for item in self._log.write_sealed(rows):
                self._index(item)
            for gap in legacy.unreported_gaps:
                self._gap_files.record(gap)
            self._log.set_floor(legacy.next_seq)
            for seq, topic, payload, reason in legacy.bad_rows:
                self._set_aside.keep(seq, topic, payload, reason)
            self._dropped_total += legacy.dropped_total
            self._acks.save(self._ack_state())
            for legacy_file in legacy_paths(path):
                self.disk.unlink(legacy_file)
        except OSError as exc:
            self._note_fault("moving the old outbox.sqlite to the segment log (kept; tried again at next start)", exc)
            known.append(self._reserved)
            return
        self._gaps = sorted(set(self._gaps) | set(legacy.unreported_gaps), key=lambda g: g.first_seq)
        known += [legacy.next_seq] + ([legacy.highest_gap_seq + 1] if legacy.highest_gap_seq is not None else [])
        self._seq_floor = max(self._seq_floor, legacy.next_seq)
        log.info("outbox: moved %d batches from the old %s to the segment log", len(rows), LEGACY_NAME)

    def _check_free_space(self) -> None:
        try:
            free = self.disk.free_bytes(self.directory)
        except OSError as exc:
            self._note_fault("checking free space", exc)
            return
        need = self._log.segment_bytes
        if free < need:
            self._note_fault(
                "checking free space",
                OSError(
                    errno.ENOSPC,
                    f"only {free} bytes free under {self.directory}, the outbox needs {need} for its next segment; "
                    "batches are kept in memory (at most [outbox] memory_batches) until space is freed",
                ),
            )
        elif free + self.footprint_bytes() < self.max_bytes:
            log.warning(
                "outbox: [outbox] max_bytes is %d but the filesystem under %s has room for only %d: a full disk "
                "will drop the oldest batches before the bound does",
                self.max_bytes,
                self.directory,
                free + self.footprint_bytes(),
            )

    # -- sequence numbers -------------------------------------------------------------------------------

    # The reservation file holds "<limit> <epoch>": the sequence's epoch lives with the numbers it qualifies, so
    # a device that keeps its sequence keeps its epoch, and one that lost it (a new install, a reflash, a
    # replacement) starts a new epoch at seq 0 (docs/wire-format.md, "Sequence epochs").

    def _read_reservation(self) -> tuple[int, int | None]:
        try:
            fields = self._reservation_path.read_text().split()
            limit = int(fields[0])
        except (FileNotFoundError, ValueError, IndexError):
            return 0, None
        epoch = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
        return limit, epoch if epoch and epoch < wire.EPOCH_LIMIT else None

    def _reserve(self, limit: int) -> None:
        self.disk.write_file_durably(self._reservation_path, f"{limit} {self.epoch}\n")
        self._reserved = limit

    # -- writing ---------------------------------------------------------------------------------------

    def append(
        self, topic: str, make_payload: Callable[[int], bytes], *, boot_id: str = "", mono_ns: int | None = None
    ) -> Entry:
        """Allocate the next sequence number, build the payload for it, keep it (durable within
        `commit_interval_s` while storage works). Never raises for a storage fault."""
        with self._lock:
            seq = self._next_seq
            entry = Entry(seq + 1, seq, topic, make_payload(seq), boot_id, mono_ns)
            self._next_seq = seq + 1
            self._ring.append(entry)
            self._ring_bytes += len(entry.payload)
            self._last = entry
            if self._unflushed_since_ns is None:
                self._unflushed_since_ns = self._monotonic_ns()
            self._trim_ring()
            due = len(self._ring) >= self.commit_batches or self._flush_overdue()
            due = due and self._monotonic_ns() >= self._retry_at_ns
        if due:
            self.flush()
        return entry

    def _flush_overdue(self) -> bool:
        since = self._unflushed_since_ns
        return since is not None and self._monotonic_ns() - since >= self.commit_interval_ns

    def _trim_ring(self) -> None:
        """Memory is bounded too: beyond memory_batches the oldest batch in memory is lost, its seq a gap."""
        while len(self._ring) + len(self._writing) > self.memory_batches and self._ring:
            lost = self._ring.popleft()
            self._ring_bytes -= len(lost.payload)
            self._dropped_total += 1
            last = self._mem_gaps[-1] if self._mem_gaps else None
            if last is not None and last.last_seq == lost.seq - 1:
                self._mem_gaps[-1] = Gap(last.first_seq, lost.seq)
            else:
                self._mem_gaps.append(Gap(lost.seq, lost.seq))

    def flush(self) -> bool:
        """Make what is in memory durable now; True when nothing is left in memory. Never raises for a fault."""
        with self._io_lock:
            with self._lock:
                self._writing = list(self._ring)
                self._ring.clear()
                mem_gaps = list(self._mem_gaps)
            try:
                self._persist(mem_gaps)
            except Exception as exc:
                if not is_storage_fault(exc):
                    raise
                self._note_fault("storing batches", exc)
                self._retry_at_ns = self._monotonic_ns() + RETRY_AFTER_NS
            with self._lock:
                self._ring.extendleft(reversed(self._writing))
                self._writing = []
                self._trim_ring()
                self._unflushed_since_ns = self._monotonic_ns() if self._ring else None
                return not self._ring and not self._mem_gaps

    def _persist(self, mem_gaps: list[Gap]) -> None:
        seqs = [e.seq for e in self._writing] + [g.first_seq for g in mem_gaps] + [g.last_seq for g in mem_gaps]
        highest = max(seqs, default=-1)
        if seqs and highest >= self._reserved - SEQ_BLOCK // 2:
            # Renewed halfway through a block, so a disk that fills up still leaves thousands of numbers.
            try:
                self._reserve(max(max(self._reserved, min(seqs)) + SEQ_BLOCK, highest + 1))
            except OSError:
                if highest >= self._reserved:
                    raise
        for gap in mem_gaps:
            self._record_gap(gap)
            with self._lock:
                # An append may have extended it meanwhile: what it added stays to be recorded.
                rest = [_trim(g, [gap]) for g in self._mem_gaps]
                self._mem_gaps = [g for g in rest if g is not None]
        retried = False
        while self._writing:
            records = [Record(e.seq, e.topic, e.payload, e.boot_id, e.mono_ns) for e in self._writing]
            try:
                placed = self._log.write_some(records, self._make_room)
            except OSError as exc:
                if exc.errno != errno.ENOSPC or retried or not self._oldest_never_offered():
                    raise
                retried = True  # a full disk: drop our oldest segment to make room, once per flush
                self._drop_oldest_segment("the disk is full")
                continue
            with self._lock:
                for item in placed:
                    self._index(item)
                    self._ring_bytes -= len(item.record.payload)
                del self._writing[: len(placed)]
        if self.storage_error is not None:
            log.warning("outbox: storage works again (after: %s)", self.storage_error)
            self.storage_error = None

    def _oldest_never_offered(self) -> bool:
        """Whether the oldest segment can go to make room on a full disk: none of its batches was handed to the
        link in this run (one in flight may be delivered; dropping it would report as lost a batch the cloud
        has). Otherwise the newest batches wait in memory."""
        if len(self._log.segments) < 2:
            return False
        with self._lock:
            return all(seq > self._offered_upto for seq in self._log.segments[0].seqs if seq in self._where)

    def _make_room(self, segment_bytes: int) -> None:
        """The bound: before a new segment is made, drop the oldest until the footprint stays within max_bytes."""
        while self._log.segments and self.footprint_bytes() + segment_bytes > self.max_bytes:
            self._drop_oldest_segment(f"the outbox is full ({self.max_bytes} bytes max)")

    def _drop_oldest_segment(self, why: str) -> None:
        segment = self._log.segments[0]
        with self._lock:
            unacked = [seq for seq in segment.seqs if seq in self._where]
        if segment.last_seq is not None and segment.last_seq == self._log.last_seq():
            # Its newest seq is the highest on disk: keep it known after the segment is gone.
            self._log.set_floor(segment.last_seq + 1)
        for run in _runs(unacked):
            self._record_gap(run)  # durable before the batches go
        self._log.remove(segment)
        gone = set(unacked)
        with self._lock:
            for seq in unacked:
                self._where.pop(seq)
                self._durable_bytes -= self._sizes.pop(seq)
            self._durable = [s for s in self._durable if s not in gone]
            self._dropped_total += len(unacked)
        if unacked:
            log.warning("outbox: %s: dropped seq %d..%d", why, unacked[0], unacked[-1])
        self._try_storage(lambda: self._acks.save(self._ack_state()))

    def _record_gap(self, gap: Gap) -> None:
        """Record a gap durably, merged with the newest one if it continues it (one outage, one range), even if
        that one was reported already: the longer range is offered again under the same first seq, and the cloud,
        which keys gaps by their first seq, ends with the range its own count of missing seqs gives."""
        with self._lock:
            last = self._newest_gap
        try:
            if last is not None and last.first_seq <= gap.first_seq <= last.last_seq + 1:
                gap = Gap(last.first_seq, max(last.last_seq, gap.last_seq))
            self._gap_files.record(gap)
            with self._lock:
                self._gaps = [g for g in self._gaps if g.first_seq != gap.first_seq] + [gap]
                self._gaps.sort(key=lambda g: g.first_seq)
                if self._newest_gap is None or gap.last_seq >= self._newest_gap.last_seq:
                    self._newest_gap = gap
        except OSError:
            self._reload_gaps()
            raise

    def _reload_gaps(self) -> None:
        """After a failed gap write, what the disk holds is the truth (a rename may have happened, its fsync
        not): the next status offers exactly what a restart would."""
        try:
            unreported, every = self._gap_files.load()
        except OSError:
            return
        with self._lock:
            self._gaps = unreported
            self._newest_gap = max(every + unreported, key=lambda g: g.last_seq, default=None)
            # A range the disk already holds (the rename happened) is not recorded a second time.
            trimmed = (_trim(g, every) for g in self._mem_gaps)
            self._mem_gaps = [g for g in trimmed if g is not None]

    # -- acknowledging ---------------------------------------------------------------------------------

    def acknowledge(self, entry_id: int) -> None:
        """The broker has the batch: forget it. Never raises for a storage fault (then it is sent again)."""
        with self._io_lock:
            with self._lock:
                placed = self._where.pop(entry_id - 1, None)
                if placed is None:
                    return
                seq = placed.record.seq
                del self._durable[bisect.bisect_left(self._durable, seq)]
                self._durable_bytes -= self._sizes.pop(seq)
                placed.segment.unacked -= 1
                self._acked_above.add(seq)
                state = self._ack_state()
            self._try_storage(lambda: self._acks.save(state))
            if placed.segment.unacked == 0:
                self._try_storage(self._delete_acknowledged_segments)

    def _ack_state(self) -> AckState:
        """(under _lock) Everything below the oldest unacknowledged seq is acknowledged; above it, a few."""
        newest = self._log.last_seq()
        below = self._durable[0] if self._durable else (newest + 1 if newest is not None else 0)
        self._acked_above = {s for s in self._acked_above if s >= below}
        return AckState(below, self._dropped_total, tuple(sorted(self._acked_above)))

    def _delete_acknowledged_segments(self) -> None:
        newest = self._log.last_seq()
        for segment in self._log.segments[:-1]:
            # The one holding the newest seq stays: it is how a restart knows where numbering goes on.
            if segment.unacked <= 0 and segment.last_seq != newest:
                self._log.remove(segment)

    def set_aside(self, entry: Entry, reason: str) -> None:
        """A stored batch that no longer decodes (disk corruption): keep it out of the stream, but keep it."""
        try:
            self._set_aside.keep(entry.seq, entry.topic, entry.payload, reason)
        except OSError as exc:
            self._note_fault("setting a bad batch aside (skipped until restart)", exc)
            with self._lock:
                self._skipped.add(entry.seq)
            return
        with self._lock:
            self._set_aside_count += 1
        self.acknowledge(entry.id)

    # -- reading ---------------------------------------------------------------------------------------

    def pending(self, *, after_id: int = 0, limit: int = 100) -> list[Entry]:
        """Durable batches with an id above after_id, oldest first; [] while storage cannot be read."""
        with self._lock:
            overdue = bool(self._ring) and self._flush_overdue()
        if overdue:
            self.flush()
        with self._io_lock:
            with self._lock:
                start = bisect.bisect_left(self._durable, after_id)  # id = seq + 1 > after_id
                chosen: list[Placed] = []
                for seq in self._durable[start:]:
                    if len(chosen) >= limit:
                        break
                    if seq not in self._skipped:
                        chosen.append(self._where[seq])
            try:
                records = [self._log.read(item) for item in chosen]
            except OSError as exc:
                self._note_fault("reading batches", exc)
                return []
        if records:
            with self._lock:
                self._offered_upto = max(self._offered_upto, records[-1].seq)
        return [Entry(r.seq + 1, r.seq, r.topic, r.payload, r.boot_id, r.mono_ns) for r in records]

    def unreported_gaps(self) -> list[Gap]:
        """Gaps recorded on disk and not yet in an acknowledged status message (a gap still only in memory is
        not offered: its numbers could be given again if the process died before it reached the disk)."""
        with self._lock:
            return list(self._gaps)

    def mark_reported(self, gaps: list[Gap]) -> None:
        for gap in gaps:
            with self._lock:
                if gap not in self._gaps:
                    continue
                self._gaps.remove(gap)
            with self._io_lock:
                if not self._try_storage(_bind(self._gap_files.mark_reported, gap)):
                    self._reload_gaps()

    def last_appended(self) -> Entry | None:
        """The newest batch ever appended, across restarts (acknowledged or not); None for a new outbox."""
        with self._lock:
            last = self._last
        if last is None or isinstance(last, Entry):
            return last
        try:
            with self._io_lock:
                record = self._log.read(last)
        except OSError:
            return None
        return Entry(record.seq + 1, record.seq, record.topic, record.payload, record.boot_id, record.mono_ns)

    def footprint_bytes(self) -> int:
        """The outbox's size on disk, kept as a running count (no scan): segments as allocated, the small files
        at a block each, an old outbox.sqlite not yet moved over."""
        return self._log.allocated_bytes + SMALL_FILES_BYTES + self._legacy_footprint

    def stats(self) -> OutboxStats:
        with self._lock:
            memory = len(self._ring) + len(self._writing)
            oldest = [self._durable[0]] if self._durable else []
            oldest += [e.seq for e in (self._writing[:1] or list(self._ring)[:1])]
            return OutboxStats(
                depth=len(self._durable) + memory,
                bytes=self._durable_bytes + self._ring_bytes,
                oldest_seq=min(oldest, default=None),
                next_seq=self._next_seq,
                dropped_total=self._dropped_total,
                set_aside=self._set_aside_count,
                quarantined=list(self.quarantined),
                storage_error=self.storage_error,
                memory_batches=memory,
                footprint_bytes=self.footprint_bytes(),
            )

    def close(self) -> None:
        """Write what is in memory if storage allows (else it is lost, like in a crash) and let go of the files."""
        self.flush()
        with self._io_lock:
            with self._lock:
                state = self._ack_state()
            self._try_storage(lambda: self._acks.save(state))
            self._log.close()
            self._acks.close()

    # -- faults ------------------------------------------------------------------------------------------

    def _try_storage(self, action: Callable[[], None]) -> bool:
        try:
            action()
            return True
        except Exception as exc:
            if not is_storage_fault(exc):
                raise
            self._note_fault("writing outbox state", exc)
            return False

    def _note_fault(self, doing: str, exc: BaseException) -> None:
        message = f"{doing}: {describe(exc)}"
        if message != self.storage_error:
            log.error("outbox: storage fault while %s; batches stay in memory until it works again", message)
        self.storage_error = message


def _bind(action: Callable[[Gap], None], gap: Gap) -> Callable[[], None]:
    return lambda: action(gap)


def _trim(gap: Gap, recorded: list[Gap]) -> Gap | None:
    """What of `gap` is not already in a recorded gap that covers its start."""
    moved = True
    while moved:
        moved = False
        for other in recorded:
            if other.first_seq <= gap.first_seq <= other.last_seq:
                if other.last_seq >= gap.last_seq:
                    return None
                gap, moved = Gap(other.last_seq + 1, gap.last_seq), True
    return gap


def _runs(seqs: list[int]) -> list[Gap]:
    """Ascending seqs as ranges of consecutive numbers."""
    runs: list[Gap] = []
    for seq in seqs:
        if runs and runs[-1].last_seq == seq - 1:
            runs[-1] = Gap(runs[-1].first_seq, seq)
        else:
            runs.append(Gap(seq, seq))
    return runs
