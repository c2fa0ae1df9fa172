"""The outbox's append-only segment log: batches appended to preallocated segment files, made durable with one
fdatasync per group, deleted a whole segment at a time (docs/edge-agent.md, "Durability").

A segment is a file `<first seq, 20 digits>.seg` of zeros written at creation (not fallocate'd: writing into an
unwritten extent converts it, a journal commit per fdatasync). Records follow each other from offset 0:
`u32 body length, u32 CRC-32 of the body, body`; a zero length ends the data. The body is
`u64 seq, i64 mono_ns, u8 has_mono, u16 topic length, u8 boot id length, topic, boot id, payload`.
Writing into a preallocated file needs no new blocks, so a full disk only stops the creation of a segment.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleetsense.edge.storage_io import Disk

RECORD_HEAD = struct.Struct("<II")  # body length, CRC-32 of the body
BODY_HEAD = struct.Struct("<QqBHB")  # seq, mono_ns, has_mono, topic length, boot id length
SUFFIX = ".seg"
ZERO_CHUNK = bytes(64 * 1024)
BLOCK_BYTES = 4096


@dataclass(frozen=True)
class Record:
    seq: int
    topic: str
    payload: bytes
    boot_id: str = ""
    mono_ns: int | None = None


def encode_record(record: Record) -> bytes:
    topic, boot = record.topic.encode(), record.boot_id.encode()
    body = (
        BODY_HEAD.pack(record.seq, record.mono_ns or 0, record.mono_ns is not None, len(topic), len(boot))
        + topic
        + boot
        + record.payload
    )
    return RECORD_HEAD.pack(len(body), zlib.crc32(body)) + body


def decode_body(body: bytes) -> Record:
    seq, mono_ns, has_mono, topic_len, boot_len = BODY_HEAD.unpack_from(body)
    at = BODY_HEAD.size
    topic = body[at : at + topic_len].decode()
    boot = body[at + topic_len : at + topic_len + boot_len].decode()
    return Record(seq, topic, body[at + topic_len + boot_len :], boot, mono_ns if has_mono else None)


@dataclass(frozen=True)
class Scan:
    records: list[tuple[int, int, Record]]  # (offset, length, record)
    end: int  # where the next record goes
    damaged: str  # "" when the data ended cleanly (zeros or the file's end), else what was wrong


def scan(data: bytes) -> Scan:
    """The records of a segment's bytes, up to the first that is not whole and in order."""
    records: list[tuple[int, int, Record]] = []
    at, last_seq = 0, -1
    while at + RECORD_HEAD.size <= len(data):
        length, crc = RECORD_HEAD.unpack_from(data, at)
        if length == 0 and crc == 0:
            return Scan(records, at, "")
        body = data[at + RECORD_HEAD.size : at + RECORD_HEAD.size + length]
        if length < BODY_HEAD.size or len(body) < length or zlib.crc32(body) != crc:
            return Scan(records, at, f"bad record at offset {at}")
        try:
            record = decode_body(body)
        except (UnicodeDecodeError, struct.error):
            return Scan(records, at, f"undecodable record at offset {at}")
        if record.seq <= last_seq:
            return Scan(records, at, f"seq {record.seq} after {last_seq} at offset {at}")
        records.append((at, RECORD_HEAD.size + length, record))
        last_seq = record.seq
        at += RECORD_HEAD.size + length
    return Scan(records, at, "")


@dataclass
class Segment:
    path: Path
    allocated_bytes: int
    end: int = 0
    seqs: list[int] = field(default_factory=list)  # every record's seq, in order (acknowledged ones too)
    unacked: int = 0
    fd: int | None = None

    @property
    def last_seq(self) -> int | None:
        return self.seqs[-1] if self.seqs else None


@dataclass(frozen=True)
class Placed:
    segment: Segment
    offset: int
    length: int
    record: Record


class SegmentLog:
    def __init__(self, directory: Path, disk: Disk, segment_bytes: int) -> None:
        self.directory = directory
        self.disk = disk
        self.segment_bytes = segment_bytes
        self.segments: list[Segment] = []  # oldest first; the last one is the head, written to
        self.allocated_bytes = 0  # the running footprint of the segment files
        self._orphans: dict[Path, int] = {}  # made but never used (the creation failed), not deleted yet

    # -- opening ---------------------------------------------------------------------------------------

    def load(self, quarantine: Callable[[Path, str], None]) -> list[Placed]:
        """Every whole record on disk, oldest first. A damaged segment that is not the newest is quarantined
        (its damage is not a torn write); the newest one's damaged tail is the write a crash interrupted."""
        self.directory.mkdir(parents=True, exist_ok=True)
        paths = sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))
        placed: list[Placed] = []
        for index, path in enumerate(paths):
            data = path.read_bytes()
            result = scan(data)
            newest = index == len(paths) - 1
            if result.damaged and not newest:
                quarantine(path, f"segment {path.name}: {result.damaged}")
                continue
            if not result.records:
                path.unlink()  # created, never written to: nothing to keep
                continue
            segment = Segment(path, max(len(data), result.end), result.end, [r.seq for _, _, r in result.records])
            segment.unacked = len(segment.seqs)
            self.segments.append(segment)
            self.allocated_bytes += segment.allocated_bytes
            placed += [Placed(segment, at, length, record) for at, length, record in result.records]
        return placed

    # -- writing ---------------------------------------------------------------------------------------

    def write_some(self, records: list[Record], make_room: Callable[[int], None]) -> list[Placed]:
        """Write the longest prefix of `records` that fits one segment (the head, or a new one when the head
        has no room for the first) and fdatasync it. Returns what is now durable; raises OSError otherwise."""
        encoded = [encode_record(r) for r in records]
        head = self.segments[-1] if self.segments else None
        if head is None or head.end + len(encoded[0]) + RECORD_HEAD.size > head.allocated_bytes:
            size = max(self.segment_bytes, _round_up(len(encoded[0]) + RECORD_HEAD.size))
            make_room(size)
            head = self._create(records[0].seq, size)
        count, room = 0, head.allocated_bytes - head.end - RECORD_HEAD.size  # keep a zero header after the data
        while count < len(encoded) and len(encoded[count]) <= room:
            room -= len(encoded[count])
            count += 1
        # An explicit end marker after the data: what a failed earlier write left beyond it is never read.
        data = b"".join(encoded[:count]) + bytes(RECORD_HEAD.size)
        fd = self._fd(head)
        self.disk.pwrite(fd, data, head.end)
        self.disk.fdatasync(fd)
        placed = []
        for record, blob in zip(records[:count], encoded[:count], strict=True):
            placed.append(Placed(head, head.end, len(blob), record))
            head.end += len(blob)
            head.seqs.append(record.seq)
            head.unacked += 1
        return placed

    def write_sealed(self, records: list[Record]) -> list[Placed]:
        """Write records older than everything in the log (an upgrade's rows) into segments of their own."""
        placed: list[Placed] = []
        at = 0
        while at < len(records):
            first = encode_record(records[at])
            size = max(self.segment_bytes, _round_up(len(first) + RECORD_HEAD.size))
            segment = self._create(records[at].seq, size, insert=True)
            end, blobs = 0, list[bytes]()
            while at < len(records):
                blob = encode_record(records[at])
                if blobs and end + len(blob) + RECORD_HEAD.size > size:
                    break
                blobs.append(blob)
                placed.append(Placed(segment, end, len(blob), records[at]))
                segment.seqs.append(records[at].seq)
                end += len(blob)
                at += 1
            fd = self._fd(segment)
            self.disk.pwrite(fd, b"".join(blobs) + bytes(RECORD_HEAD.size), 0)
            self.disk.fdatasync(fd)
            segment.end, segment.unacked = end, len(segment.seqs)
        return placed

    def _delete_orphans(self) -> None:
        for path, size in list(self._orphans.items()):
            try:
                self.disk.unlink(path)
            except OSError:
                continue
            del self._orphans[path]
            self.allocated_bytes -= size

    def _create(self, first_seq: int, size: int, *, insert: bool = False) -> Segment:
        self._delete_orphans()
        free = self.disk.free_bytes(self.directory)
        if free < size:  # do not write zeros until the disk refuses: say so at once
            raise OSError(errno.ENOSPC, f"{free} bytes free under {self.directory}, a new segment needs {size}")
        path = self.directory / f"{first_seq:020d}{SUFFIX}"
        if path in self._orphans:  # made again now: no longer an orphan
            self.allocated_bytes -= self._orphans.pop(path)
        fd = self.disk.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        try:
            for offset in range(0, size, len(ZERO_CHUNK)):
                self.disk.pwrite(fd, ZERO_CHUNK[: min(len(ZERO_CHUNK), size - offset)], offset)
            self.disk.fsync_dir(self.directory)
        except OSError:
            self.disk.close(fd)
            self._orphans[path] = size  # counted until it is deleted (here, at the next creation or start)
            self.allocated_bytes += size
            self._delete_orphans()
            raise
        segment = Segment(path, size, fd=fd)
        if insert:
            self.segments.insert(0, segment)
            self.segments.sort(key=lambda s: s.path.name)
        else:
            self.segments.append(segment)
        self.allocated_bytes += size
        return segment

    def _fd(self, segment: Segment) -> int:
        if segment.fd is None:
            segment.fd = self.disk.open(segment.path, os.O_RDWR)
        return segment.fd

    def last_seq(self) -> int | None:
        """The newest record's seq (the head may be a new, still empty segment)."""
        return next((s.last_seq for s in reversed(self.segments) if s.last_seq is not None), None)

    # -- the floor: the seq to continue from when no segment is left ------------------------------------

    def floor(self) -> int:
        """Kept in a file's name (`floor.<seq>`, empty), so that it can be written on a full disk."""
        try:
            names = [p.name for p in self.directory.iterdir() if p.name.startswith("floor.")]
        except FileNotFoundError:
            return 0
        return max((int(n[6:]) for n in names if n[6:].isdigit()), default=0)

    def set_floor(self, seq: int) -> None:
        old = [p for p in self.directory.iterdir() if p.name.startswith("floor.")]
        self.disk.close(self.disk.open(self.directory / f"floor.{seq}", os.O_WRONLY | os.O_CREAT))
        self.disk.fsync_dir(self.directory)
        for path in old:
            if path.name != f"floor.{seq}":
                self.disk.unlink(path)

    # -- reading and deleting ----------------------------------------------------------------------------

    def read(self, placed: Placed) -> Record:
        return placed.record if placed.record.payload else self._read(placed)

    def _read(self, placed: Placed) -> Record:
        data = self.disk.pread(self._fd(placed.segment), placed.length, placed.offset)
        result = scan(data)
        if not result.records:
            raise OSError(f"segment {placed.segment.path.name}: record at {placed.offset} no longer reads back")
        return result.records[0][2]

    def remove(self, segment: Segment) -> None:
        """Delete a whole segment (acknowledged, or dropped to keep the bound)."""
        self.disk.unlink(segment.path)
        self.segments.remove(segment)
        self.allocated_bytes -= segment.allocated_bytes
        if segment.fd is not None:
            self.disk.close(segment.fd)
            segment.fd = None

    def close(self) -> None:
        for segment in self.segments:
            if segment.fd is not None:
                self.disk.close(segment.fd)
                segment.fd = None


def _round_up(size: int) -> int:
    return -(-size // BLOCK_BYTES) * BLOCK_BYTES
