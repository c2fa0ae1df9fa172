"""The durable outbox: every batch is committed here before it is published, and deleted only when the
broker's PUBACK for it arrives.

SQLite in WAL mode with synchronous=FULL: `append` returns after the commit is fsynced, so a killed process
or a power cut loses at most the batch being appended at that moment (its transaction never committed).
Sequence numbers are allocated in the same transaction as the row, from a block reserved in a separate
file: if the database itself is ever lost or quarantined, numbering resumes past the reserved block, so a
number is never reused (the cloud would take a reused number for a duplicate and drop real data).
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetsense import wire
from fleetsense.errors import FleetsenseError

log = logging.getLogger(__name__)

SEQ_BLOCK = 10_000  # numbers reserved per fsync of the reservation file
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bad_rows (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS last_batch (
    k INTEGER PRIMARY KEY CHECK (k = 0),
    id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    boot_id TEXT NOT NULL,
    mono_ns INTEGER
);
CREATE TABLE IF NOT EXISTS gaps (
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0
);
"""


class OutboxError(FleetsenseError):
    """The outbox cannot be opened or written (disk full, permissions, ...)."""


@dataclass(frozen=True)
class Entry:
    id: int
    seq: int
    topic: str
    payload: bytes
    boot_id: str = ""  # STUB (time branch) of Contract A; the outbox branch's implementation replaces it
    mono_ns: int | None = None


@dataclass(frozen=True)
class Gap:
    first_seq: int
    last_seq: int

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


@dataclass
class OutboxStats:
    depth: int = 0
    bytes: int = 0
    oldest_seq: int | None = None
    next_seq: int = 0
    dropped_total: int = 0
    set_aside: int = 0  # rows that stopped decoding, kept in bad_rows
    quarantined: list[str] = field(default_factory=list)
    storage_error: str | None = None  # STUB (time branch) of Contract A
    memory_batches: int = 0
    footprint_bytes: int = 0


class Outbox:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        memory_batches: int = 600,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._now_ns = now_ns
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "outbox.sqlite"
        self._reservation_path = directory / "sequence.reserved"
        self.quarantined: list[str] = []
        # One connection shared by the sampling and publishing threads; the lock keeps their transactions apart.
        self._lock = threading.Lock()
        self._db = self._open_checked()
        self.epoch = 0
        self.epoch = self._load_epoch()

    # -- opening, with quarantine of a corrupt database ------------------------------------------------

    def _open_checked(self) -> sqlite3.Connection:
        try:
            db = self._open()
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                db.close()
                raise sqlite3.DatabaseError(f"quick_check: {verdict}")
            return db
        except sqlite3.DatabaseError as exc:
            quarantine = self._quarantine(str(exc))
            log.error("outbox %s is corrupt (%s); moved to %s and starting a new one", self.path, exc, quarantine)
            return self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            if "boot_id" not in columns:  # STUB (time branch): Contract A's boot_id and mono_ns per row
                db.execute("ALTER TABLE outbox ADD COLUMN boot_id TEXT NOT NULL DEFAULT ''")
                db.execute("ALTER TABLE outbox ADD COLUMN mono_ns INTEGER")
        except sqlite3.OperationalError as exc:
            raise OutboxError(
                f"cannot open the outbox at {self.path}: {exc}",
                hint="check that the agent's state directory exists, is writable by its user and has free space",
            ) from exc
        return db

    def _quarantine(self, reason: str) -> Path:
        """Keep the corrupt file for inspection; never delete data silently."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self._now_ns() / 1e9))
        target = self.directory / f"outbox.corrupt-{stamp}.sqlite"
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                os.replace(source, Path(f"{target}{suffix}"))
        (self.directory / f"{target.name}.reason").write_text(reason + "\n")
        self.quarantined.append(str(target))
        return target

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

    def _reserved_limit(self) -> int:
        return self._read_reservation()[0]

    def _load_epoch(self) -> int:
        """This sequence's epoch; a sequence without one (new, or kept by an agent from before epochs) gets one
        drawn now and kept before any batch carries it."""
        limit, epoch = self._read_reservation()
        if epoch is None:
            epoch = secrets.randbelow(wire.EPOCH_LIMIT - 1) + 1
            self.epoch = epoch
            self._reserve(limit)
        return epoch

    def _reserve(self, limit: int) -> None:
        tmp = self._reservation_path.with_suffix(".tmp")
        with open(tmp, "w") as out:
            out.write(f"{limit} {self.epoch}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._reservation_path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _next_seq(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
        if row is not None:
            return int(row[0])
        # A new (or quarantined-and-replaced) database: continue past everything ever reserved.
        return self._reserved_limit()

    # -- writing ---------------------------------------------------------------------------------------

    def append(
        self, topic: str, make_payload: Callable[[int], bytes], *, boot_id: str = "", mono_ns: int | None = None
    ) -> Entry:
        """Allocate the next sequence number, build the payload for it, and store both durably."""
        with self._lock:
            return self._append(topic, make_payload, boot_id, mono_ns)

    def _append(self, topic: str, make_payload: Callable[[int], bytes], boot_id: str, mono_ns: int | None) -> Entry:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            seq = self._next_seq()
            if seq >= self._reserved_limit():
                self._reserve(seq + SEQ_BLOCK)
            payload = make_payload(seq)
            cursor = self._db.execute(
                "INSERT INTO outbox (seq, topic, payload, created_ns, boot_id, mono_ns) VALUES (?, ?, ?, ?, ?, ?)",
                (seq, topic, payload, self._now_ns(), boot_id, mono_ns),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO last_batch VALUES (0, ?, ?, ?, ?, ?, ?)",
                (cursor.lastrowid, seq, topic, payload, boot_id, mono_ns),
            )
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_seq', ?)", (seq + 1,))
            self._enforce_bound()
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        assert cursor.lastrowid is not None
        return Entry(cursor.lastrowid, seq, topic, payload, boot_id, mono_ns)

    def _enforce_bound(self) -> None:
        """Over the size bound: drop the oldest batches and remember their sequence range as a gap."""
        total = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()[0]
        if total <= self.max_bytes:
            return
        dropped: list[int] = []
        newest_id = self._db.execute("SELECT MAX(id) FROM outbox").fetchone()[0]
        for row_id, seq, size in self._db.execute("SELECT id, seq, LENGTH(payload) FROM outbox ORDER BY id"):
            # Never drop the newest row: a bound smaller than one batch must still let data through.
            if total <= self.max_bytes or row_id == newest_id:
                break
            dropped.append(seq)
            total -= size
        if not dropped:
            return
        self._db.execute(f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(dropped))})", dropped)
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('dropped_total', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
            (len(dropped),),
        )
        self._record_gap(min(dropped), max(dropped))
        log.warning("outbox full (%d bytes max): dropped seq %d..%d", self.max_bytes, min(dropped), max(dropped))

    def _record_gap(self, first: int, last: int) -> None:
        # Extend an unreported gap that ends just before this one, so one outage reports one range.
        row = self._db.execute(
            "SELECT first_seq FROM gaps WHERE last_seq = ? AND reported = 0", (first - 1,)
        ).fetchone()
        if row is not None:
            self._db.execute("UPDATE gaps SET last_seq = ? WHERE first_seq = ?", (last, row[0]))
        else:
            self._db.execute("INSERT INTO gaps (first_seq, last_seq) VALUES (?, ?)", (first, last))

    def acknowledge(self, entry_id: int) -> None:
        """The broker has the batch: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))

    def set_aside(self, entry: Entry, reason: str) -> None:
        """A stored row that no longer decodes (disk corruption): keep it out of the stream, but keep it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO bad_rows (id, seq, topic, payload, reason) VALUES (?, ?, ?, ?, ?)",
                (entry.id, entry.seq, entry.topic, entry.payload, reason),
            )
            self._db.execute("DELETE FROM outbox WHERE id = ?", (entry.id,))
            self._db.execute("COMMIT")

    # -- reading ---------------------------------------------------------------------------------------

    def pending(self, *, after_id: int = 0, limit: int = 100) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, seq, topic, payload, boot_id, mono_ns FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [_entry(r) for r in rows]

    def last_appended(self) -> Entry | None:
        """STUB (time branch) of Contract A: the newest batch ever appended, kept after it was acknowledged."""
        with self._lock:
            row = self._db.execute("SELECT id, seq, topic, payload, boot_id, mono_ns FROM last_batch").fetchone()
        return None if row is None else _entry(row)

    def unreported_gaps(self) -> list[Gap]:
        with self._lock:
            rows = self._db.execute("SELECT first_seq, last_seq FROM gaps WHERE reported = 0 ORDER BY first_seq")
            return [Gap(int(a), int(b)) for a, b in rows]

    def mark_reported(self, gaps: list[Gap]) -> None:
        with self._lock:
            for gap in gaps:
                self._db.execute("UPDATE gaps SET reported = 1 WHERE first_seq = ?", (gap.first_seq,))

    def stats(self) -> OutboxStats:
        with self._lock:
            depth, size, oldest = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), MIN(seq) FROM outbox"
            ).fetchone()
            dropped = self._db.execute("SELECT value FROM meta WHERE key = 'dropped_total'").fetchone()
            bad = self._db.execute("SELECT COUNT(*) FROM bad_rows").fetchone()[0]
            return OutboxStats(
                depth=int(depth),
                bytes=int(size),
                oldest_seq=None if oldest is None else int(oldest),
                next_seq=self._next_seq(),
                dropped_total=int(dropped[0]) if dropped else 0,
                set_aside=int(bad),
                quarantined=list(self.quarantined),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _entry(row: Any) -> Entry:
    return Entry(
        int(row[0]), int(row[1]), str(row[2]), bytes(row[3]), str(row[4]), None if row[5] is None else int(row[5])
    )
