"""Storage faults are data-loss events, never exceptions: an injected ENOSPC / EROFS / EIO at every storage call,
and a real tmpfs filled up, remounted read-only and freed."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetsense.edge.outbox import Gap, Outbox

from tests.tmpfs import mounted_tmpfs
from tests.unit.outbox_model import CloudView, FaultyDisk, abandon, disk_usage, make_box, payload_for

ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EIO)


def scenario(box: Outbox, view: CloudView, disk: FaultyDisk, clock: list[int]) -> None:
    """Every public operation, twice: appends (groups and a timed flush), reads, acks, a set-aside, a report."""
    for round_ in range(2):
        for i in range(6):
            box.append("t", payload_for(round_ * 10 + i, 300))  # type: ignore[arg-type]
        clock[0] += 3_000_000_000
        entries = box.pending()
        view.take(entries)
        view.ack(box, entries[:3], storage_failing=disk.fail_from is not None)
        if entries[3:]:
            box.set_aside(entries[3], "bad crc")  # out of the stream for good: accounted like a delivery
            view.delivered.add(entries[3].seq)
            if disk.fail_from is not None:
                view.uncertain.add(entries[3].seq)
        view.report(box)
        box.stats()
        box.last_appended()


@pytest.mark.parametrize("code", ERRNOS, ids=[errno.errorcode[c] for c in ERRNOS])
def test_a_fault_at_any_storage_call_never_escapes_and_loses_nothing_unaccounted(tmp_path: Path, code: int) -> None:
    clean = FaultyDisk()
    clock = [0]
    scenario(
        make_box(tmp_path / "count", clean, max_bytes=64 * 1024, memory_batches=4, clock=clock),
        CloudView(),
        clean,
        clock,
    )
    total_calls = len(clean.calls)
    assert total_calls > 20
    for index in range(total_calls):
        for count in (1, None):  # one failed call, then every call from there on
            disk, view, clock = FaultyDisk(), CloudView(), [0]
            directory = tmp_path / f"{index}-{count}"
            box = make_box(directory, disk, max_bytes=64 * 1024, memory_batches=4, clock=clock)
            disk.fail(code, after=index - len(disk.calls), count=count)
            scenario(box, view, disk, clock)  # must not raise
            if count is None:
                assert box.stats().storage_error, f"call {index} ({disk.calls[index]}) failed unnoticed"
            disk.heal()
            clock[0] += 3_000_000_000
            view.drain(box)
            abandon(box)  # a kill, then a restart: nothing handed out is handed out differently
            again = make_box(directory, FaultyDisk(), max_bytes=64 * 1024, memory_batches=4, clock=clock)
            view.drain(again)
            view.check_complete(again)
            again.close()


def test_the_memory_ring_keeps_the_newest_and_reports_the_exact_lost_range(tmp_path: Path) -> None:
    disk, view, clock = FaultyDisk(), CloudView(), [0]
    box = make_box(tmp_path, disk, max_bytes=1 << 20, memory_batches=10, clock=clock)
    for i in range(8):
        box.append("t", payload_for(i, 500))  # type: ignore[arg-type]
    box.flush()
    disk.fail(errno.ENOSPC, writes_only=True)
    for i in range(25):  # seqs 8..32: the ring holds 10, so 8..22 are lost
        box.append("t", payload_for(i, 500))  # type: ignore[arg-type]
        clock[0] += 500_000_000
    stats = box.stats()
    assert stats.memory_batches == 10 and stats.storage_error and "ENOSPC" in stats.storage_error
    assert box.unreported_gaps() == []  # not offered until it is on disk: its numbers could be given again
    assert [e.seq for e in box.pending()] == list(range(8))  # only durable batches reach the link
    disk.heal()
    clock[0] += 1_000_000_000
    assert box.flush()
    assert box.unreported_gaps() == [Gap(8, 22)]
    assert [e.seq for e in box.pending(limit=100)] == list(range(8)) + list(range(23, 33))
    assert box.stats().storage_error is None and box.stats().dropped_total == 15
    view.drain(box)
    view.check_complete(box)


def test_a_kill_while_storage_fails_loses_only_batches_the_cloud_never_saw(tmp_path: Path) -> None:
    disk, view, clock = FaultyDisk(), CloudView(), [0]
    box = make_box(tmp_path, disk, max_bytes=1 << 20, memory_batches=5, clock=clock)
    for i in range(4):
        box.append("t", payload_for(i, 500))  # type: ignore[arg-type]
    view.take(box.pending())
    disk.fail(errno.EIO)
    for i in range(12):
        box.append("t", payload_for(100 + i, 500))  # type: ignore[arg-type]
    view.take(box.pending())
    view.report(box)
    abandon(box)
    again = make_box(tmp_path, FaultyDisk(), max_bytes=1 << 20, memory_batches=5, clock=clock)
    assert again.stats().next_seq == 4  # 4..15 never reached the disk nor the cloud: their numbers go again
    assert again.last_appended() is not None and again.last_appended().seq == 3  # type: ignore[union-attr]
    again.append("t", payload_for(999, 500))  # type: ignore[arg-type]
    view.drain(again)
    view.check_complete(again)


def test_acknowledge_and_reads_survive_faults_and_acks_are_kept_when_storage_returns(tmp_path: Path) -> None:
    disk, clock = FaultyDisk(), [0]
    box = make_box(tmp_path, disk, max_bytes=1 << 20, memory_batches=50, clock=clock)
    for i in range(8):
        box.append("t", payload_for(i, 500))  # type: ignore[arg-type]
    entries = box.pending()
    disk.fail(errno.EROFS)
    assert box.pending() == []  # cannot read: nothing, no exception
    for entry in entries[:5]:
        box.acknowledge(entry.id)
    box.mark_reported([Gap(1, 2)])
    disk.heal()
    assert [e.seq for e in box.pending()] == [5, 6, 7]
    box.acknowledge(entries[5].id)
    box.close()
    assert [e.seq for e in Outbox(tmp_path, max_bytes=1 << 20).pending()] == [6, 7]


def test_free_space_is_checked_at_open_with_a_clear_message(tmp_path: Path) -> None:
    class Full(FaultyDisk):
        def free_bytes(self, directory: Path) -> int:
            return 1024

    box = Outbox(tmp_path, max_bytes=1 << 20, disk=Full())
    error = box.stats().storage_error
    assert error and "only 1024 bytes free" in error and "memory_batches" in error
    box.append("t", payload_for(0, 100))  # type: ignore[arg-type]
    assert box.stats().memory_batches == 1


def test_the_footprint_is_a_running_count_that_matches_the_disk(tmp_path: Path) -> None:
    box = Outbox(tmp_path, max_bytes=256 * 1024)
    for i in range(2000):
        box.append("t", payload_for(i, 700))  # type: ignore[arg-type]
        if i % 3 == 0:
            for entry in box.pending(limit=2):
                box.acknowledge(entry.id)
    box.flush()
    assert disk_usage(tmp_path) <= box.stats().footprint_bytes <= 256 * 1024


def test_a_damaged_segment_is_quarantined_and_numbering_moves_past_the_reserved_block(tmp_path: Path) -> None:
    box = Outbox(tmp_path, max_bytes=64 * 1024)
    for i in range(60):
        box.append("t", payload_for(i, 1000))  # type: ignore[arg-type]
    box.close()
    segments = sorted((tmp_path / "log").glob("*.seg"))
    assert len(segments) >= 2
    data = bytearray(segments[0].read_bytes())
    data[100] ^= 0xFF
    segments[0].write_bytes(bytes(data))
    again = Outbox(tmp_path, max_bytes=64 * 1024)
    assert len(again.quarantined) == 1 and Path(again.quarantined[0]).exists()
    assert Path(again.quarantined[0] + ".reason").read_text().startswith(f"segment {segments[0].name}: bad record")
    assert again.stats().quarantined == again.quarantined
    assert again.append("t", payload_for(0, 100)).seq == 10_000  # type: ignore[arg-type]


def test_a_torn_tail_after_a_power_cut_is_cut_off_and_its_seqs_go_again(tmp_path: Path) -> None:
    box = Outbox(tmp_path, max_bytes=1 << 20)
    for i in range(8):
        box.append("t", payload_for(i, 300))  # type: ignore[arg-type]
    box.close()
    (segment,) = (tmp_path / "log").glob("*.seg")
    data = bytearray(segment.read_bytes())
    end = data.index(bytes(64))  # where the zeros after the last record start
    data[end - 10 : end] = bytes(10)  # the last record only half reached the flash
    segment.write_bytes(bytes(data))
    again = Outbox(tmp_path, max_bytes=1 << 20)
    assert [e.seq for e in again.pending()] == list(range(7)) and again.quarantined == []
    assert again.append("t", payload_for(99, 300)).seq == 7  # type: ignore[arg-type]


# -- upgrade from the SQLite outbox ---------------------------------------------------------------------------

OLD_SCHEMA = """
CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL UNIQUE, topic TEXT NOT NULL,
                     payload BLOB NOT NULL, created_ns INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE bad_rows (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
                       reason TEXT NOT NULL);
CREATE TABLE gaps (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, reported INTEGER NOT NULL DEFAULT 0);
"""


def old_outbox(directory: Path) -> None:
    """What the previous agent left: WAL mode, rows 40..49 waiting (0..39: 0..29 dropped, 30..39 sent), a gap
    reported and one not, a set-aside row, the reservation file."""
    source = directory.parent / f"{directory.name}.old-agent"
    source.mkdir(parents=True)
    directory.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(source / "outbox.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(OLD_SCHEMA)
    for seq in range(40, 50):
        db.execute("INSERT INTO outbox (seq, topic, payload, created_ns) VALUES (?, 't', ?, 0)", (seq, b"old%d" % seq))
    db.execute("INSERT INTO meta VALUES ('next_seq', 51), ('dropped_total', 30)")
    db.execute("INSERT INTO gaps VALUES (0, 19, 1), (20, 29, 0)")
    db.execute("INSERT INTO bad_rows VALUES (51, 50, 't', x'00', 'bad crc')")
    for name in ("outbox.sqlite", "outbox.sqlite-wal"):  # as a kill -9 leaves it: the WAL not checkpointed
        shutil.copy(source / name, directory / name)
    db.close()
    (directory / "sequence.reserved").write_text("10000 77\n")


def test_an_old_sqlite_outbox_is_drained_after_the_upgrade(tmp_path: Path) -> None:
    old_outbox(tmp_path)
    box = Outbox(tmp_path, max_bytes=1 << 20)
    assert box.epoch == 77 and box.stats().dropped_total == 30 and box.stats().set_aside == 1
    pending = box.pending()
    assert [(e.seq, e.payload) for e in pending] == [(s, b"old%d" % s) for s in range(40, 50)]
    assert box.unreported_gaps() == [Gap(20, 29)]
    assert box.append("t", payload_for(0, 100)).seq == 51  # type: ignore[arg-type]
    assert not (tmp_path / "outbox.sqlite").exists()
    for entry in pending[:4]:
        box.acknowledge(entry.id)
    box.close()
    again = Outbox(tmp_path, max_bytes=1 << 20)  # the move happens once; the acks hold
    assert [e.seq for e in again.pending()] == [44, 45, 46, 47, 48, 49, 51]
    assert again.append("t", payload_for(0, 100)).seq == 52  # type: ignore[arg-type]


def test_an_old_outbox_on_a_full_disk_is_kept_and_moved_at_the_next_start(tmp_path: Path) -> None:
    old_outbox(tmp_path)
    disk = FaultyDisk()
    disk.fail(errno.ENOSPC, after=0)
    box = Outbox(tmp_path, max_bytes=1 << 20, disk=disk)
    assert box.stats().storage_error and (tmp_path / "outbox.sqlite").exists()
    assert box.append("t", payload_for(0, 100)).seq == 10_000  # type: ignore[arg-type]  # its numbers are unknown
    abandon(box)
    again = Outbox(tmp_path, max_bytes=1 << 20)
    assert [e.seq for e in again.pending()][:3] == [40, 41, 42]


# -- a real small filesystem ----------------------------------------------------------------------------------


def fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "fs", size="1m") as mount:
        yield mount


def test_a_real_full_then_read_only_disk_is_survived_and_every_seq_accounted(small_fs: Path) -> None:
    view, clock = CloudView(), [0]
    box = make_box(small_fs / "outbox", FaultyDisk(), max_bytes=512 * 1024, memory_batches=20, clock=clock)
    filler = small_fs / "filler"
    fill(filler)  # someone else fills the disk
    for i in range(200):  # ~ the head segment's room, then the ring, then the ring overflows
        box.append("t", payload_for(i, 900))  # type: ignore[arg-type]
        clock[0] += 500_000_000
    assert box.stats().storage_error and "ENOSPC" in box.stats().storage_error  # type: ignore[operator]
    assert box.stats().memory_batches == 20
    view.take(box.pending(limit=1000))
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    for i in range(30):
        box.append("t", payload_for(1000 + i, 900))  # type: ignore[arg-type]
        clock[0] += 500_000_000
    assert "EROFS" in (box.stats().storage_error or "")
    subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    clock[0] += 2_000_000_000
    view.drain(box)
    assert box.stats().storage_error is None and box.stats().dropped_total > 0
    assert disk_usage(small_fs / "outbox") <= 512 * 1024
    view.check_complete(box)
    box.close()


def test_an_upgrade_interrupted_after_the_rows_were_moved_offers_them_once(tmp_path: Path) -> None:
    old_outbox(tmp_path)

    class NoUnlink(FaultyDisk):
        def check(self, op: str) -> None:
            super().check(op)
            if op == "unlink":
                raise OSError(errno.EIO, "injected EIO at unlink")

    box = Outbox(tmp_path, max_bytes=1 << 20, disk=NoUnlink())
    assert box.stats().storage_error and (tmp_path / "outbox.sqlite").exists()
    for entry in box.pending()[:3]:
        box.acknowledge(entry.id)  # 40..42 delivered before the restart
    abandon(box)
    again = Outbox(tmp_path, max_bytes=1 << 20)
    assert [e.seq for e in again.pending()] == list(range(43, 50))
    assert not (tmp_path / "outbox.sqlite").exists() and again.stats().storage_error is None
