"""The outbox's small files beside the segment log: the acknowledgement state, the recorded gaps and the rows set
aside. Each is written so that a full disk does not stop it where that matters (docs/edge-agent.md, "Durability").
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from fleetsense.edge.storage_io import Disk

SLOT_BYTES = 4096
ACK_HEAD = struct.Struct("<IQQQH")  # crc32 of the rest, generation, acked_below, dropped_total, extras count
MAX_EXTRAS = (SLOT_BYTES - ACK_HEAD.size) // 8


@dataclass(frozen=True)
class AckState:
    """Every record of the log with a seq below `acked_below` is acknowledged, and so are `extras` (acknowledged
    out of order). `dropped_total` counts the batches ever dropped (the status message's counter)."""

    acked_below: int = 0
    dropped_total: int = 0
    extras: tuple[int, ...] = ()


class AckFile:
    """Two fixed 4 KiB slots overwritten in turn, never fsynced: an overwrite needs no new blocks (a full disk
    cannot stop it), costs the flash one block per kernel writeback, and a torn or lost write only means
    batches sent again (the cloud deduplicates) or a counter a little behind after a power cut."""

    def __init__(self, path: Path, disk: Disk) -> None:
        self.path = path
        self.disk = disk
        self._fd: int | None = None
        self._generation = 0

    def load(self) -> AckState:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return AckState()
        best: tuple[int, AckState] | None = None
        for slot in range(2):
            state = _decode_slot(data[slot * SLOT_BYTES : (slot + 1) * SLOT_BYTES])
            if state is not None and (best is None or state[0] > best[0]):
                best = state
        if best is None:
            return AckState()
        self._generation = best[0]
        return best[1]

    def save(self, state: AckState, *, durable: bool = False) -> None:
        if self._fd is None:
            self._fd = self.disk.open(self.path, os.O_RDWR | os.O_CREAT)
        self._generation += 1
        extras = state.extras[:MAX_EXTRAS]  # beyond: sent again after a restart, harmless
        rest = struct.pack("<QQQH", self._generation, state.acked_below, state.dropped_total, len(extras))
        rest += struct.pack(f"<{len(extras)}Q", *extras)
        slot = (struct.pack("<I", zlib.crc32(rest)) + rest).ljust(SLOT_BYTES, b"\0")
        self.disk.pwrite(self._fd, slot, (self._generation % 2) * SLOT_BYTES)
        if durable:
            self.disk.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            self.disk.close(self._fd)
            self._fd = None


def _decode_slot(slot: bytes) -> tuple[int, AckState] | None:
    if len(slot) < ACK_HEAD.size:
        return None
    crc, generation, acked_below, dropped_total, count = ACK_HEAD.unpack_from(slot)
    end = ACK_HEAD.size + 8 * count
    if count > MAX_EXTRAS or generation == 0 or zlib.crc32(slot[4:end]) != crc:
        return None
    extras = struct.unpack_from(f"<{count}Q", slot, ACK_HEAD.size)
    return generation, AckState(acked_below, dropped_total, tuple(extras))


GAP_NAME = re.compile(r"^(\d+)-(\d+)(\.reported)?$")


@dataclass(frozen=True)
class Gap:
    first_seq: int
    last_seq: int

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


class GapFiles:
    """One empty file per gap, `<first>-<last>` until a status message carrying it is acknowledged, then
    `<first>-<last>.reported`. The name is the record: creating or renaming an empty file needs an inode but no
    data block, so a gap can be made durable on a full disk, before the batches it names are deleted."""

    def __init__(self, directory: Path, disk: Disk) -> None:
        self.directory = directory
        self.disk = disk

    def load(self) -> tuple[list[Gap], list[Gap]]:
        """The unreported gaps, and every gap on disk (reported or not)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        unreported: dict[int, int] = {}  # first seq -> last seq (the longest, after an interrupted extension)
        every = []
        for path in self.directory.iterdir():
            match = GAP_NAME.match(path.name)
            if match is None:
                continue
            first, last = int(match[1]), int(match[2])
            every.append(Gap(first, last))
            if not match[3]:
                unreported[first] = max(unreported.get(first, last), last)
        reported = {g.first_seq: g.last_seq for g in every if (g.first_seq, g.last_seq) not in unreported.items()}
        still = [Gap(f, last) for f, last in sorted(unreported.items()) if reported.get(f, -1) < last]
        return still, every

    def _path(self, gap: Gap, *, reported: bool = False) -> Path:
        return self.directory / f"{gap.first_seq}-{gap.last_seq}{'.reported' if reported else ''}"

    def record(self, gap: Gap) -> None:
        """The unreported gap starting at gap.first_seq now ends at gap.last_seq: one rename of the file it
        extends (atomic: the old range or the new one), or a new file. Idempotent, so a failed call can be
        repeated; files left by an interrupted call share the first seq and `load` takes the longest."""
        same_start = [
            path
            for path in self.directory.iterdir()
            if (match := GAP_NAME.match(path.name)) and not match[3] and int(match[1]) == gap.first_seq
        ]
        target = self._path(gap)
        if target not in same_start:
            if same_start:
                self.disk.replace(same_start[0], target)
            else:
                self.disk.close(self.disk.open(target, os.O_WRONLY | os.O_CREAT))
        for path in same_start[1:]:
            if path != target:
                self.disk.unlink(path)
        self.disk.fsync_dir(self.directory)

    def mark_reported(self, gap: Gap, *, keep: bool = True) -> None:
        """Reported: only the newest reported gap is kept (it may hold the highest seq ever used)."""
        if keep:
            self.disk.replace(self._path(gap), self._path(gap, reported=True))
        else:
            self.disk.unlink(self._path(gap))
        kept = self._path(gap, reported=True)
        for path in self.directory.iterdir():
            match = GAP_NAME.match(path.name)
            if match is None or path == kept:
                continue
            if (match[3] and int(match[2]) < gap.last_seq) or int(match[1]) == gap.first_seq:
                self.disk.unlink(path)  # older reported gaps, and a shorter file of this one
        self.disk.fsync_dir(self.directory)


class SetAside:
    """Rows that stopped decoding, kept whole beside a note of why (never deleted silently)."""

    def __init__(self, directory: Path, disk: Disk) -> None:
        self.directory = directory
        self.disk = disk

    def count(self) -> int:
        try:
            return sum(1 for p in self.directory.iterdir() if p.suffix == ".batch")
        except FileNotFoundError:
            return 0

    def keep(self, seq: int, topic: str, payload: bytes, reason: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.disk.write_file_durably(self.directory / f"{seq}.reason", f"{topic}\n{reason}\n")
        fd = self.disk.open(self.directory / f"{seq}.batch.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            self.disk.pwrite(fd, payload, 0)
            self.disk.fdatasync(fd)
        finally:
            self.disk.close(fd)
        self.disk.replace(self.directory / f"{seq}.batch.tmp", self.directory / f"{seq}.batch")
        self.disk.fsync_dir(self.directory)
