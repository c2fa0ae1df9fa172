"""Reading the outbox of agents before the segment log (`outbox.sqlite`), so a device that upgrades with batches
waiting sends them: the rows, their gaps, counters and set-aside rows are moved into the new files once, at start."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from fleetsense.edge.outbox_files import Gap
from fleetsense.edge.segment_log import Record

LEGACY_NAME = "outbox.sqlite"
SIDE_FILES = ("", "-wal", "-shm", "-journal")


@dataclass
class LegacyOutbox:
    rows: list[Record] = field(default_factory=list)  # not yet acknowledged, in seq order
    next_seq: int = 0
    dropped_total: int = 0
    unreported_gaps: list[Gap] = field(default_factory=list)
    highest_gap_seq: int | None = None
    bad_rows: list[tuple[int, str, bytes, str]] = field(default_factory=list)  # seq, topic, payload, reason


def read_legacy(path: Path) -> LegacyOutbox:
    """Everything an old outbox holds. Raises sqlite3.DatabaseError for a corrupt file (to be quarantined) and
    sqlite3.OperationalError / OSError when it cannot be read now (read-only or full disk: try at the next start)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {verdict}")
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        legacy = LegacyOutbox()
        if "outbox" in tables:
            legacy.rows = [
                Record(int(seq), str(topic), bytes(payload))
                for seq, topic, payload in db.execute("SELECT seq, topic, payload FROM outbox ORDER BY seq")
            ]
        if "meta" in tables:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            legacy.next_seq = int(meta.get("next_seq", 0))
            legacy.dropped_total = int(meta.get("dropped_total", 0))
        if "gaps" in tables:
            for first, last, reported in db.execute("SELECT first_seq, last_seq, reported FROM gaps ORDER BY 1"):
                legacy.highest_gap_seq = max(legacy.highest_gap_seq or int(last), int(last))
                if not reported:
                    legacy.unreported_gaps.append(Gap(int(first), int(last)))
        if "bad_rows" in tables:
            legacy.bad_rows = [
                (int(seq), str(topic), bytes(payload), str(reason))
                for seq, topic, payload, reason in db.execute("SELECT seq, topic, payload, reason FROM bad_rows")
            ]
        if legacy.rows:
            legacy.next_seq = max(legacy.next_seq, legacy.rows[-1].seq + 1)
        return legacy
    finally:
        db.close()


def legacy_paths(path: Path) -> list[Path]:
    return [Path(f"{path}{suffix}") for suffix in SIDE_FILES if Path(f"{path}{suffix}").exists()]


def legacy_bytes(path: Path) -> int:
    return sum(os.stat(p).st_size for p in legacy_paths(path))
