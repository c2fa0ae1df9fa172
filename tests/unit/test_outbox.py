"""The durable outbox: ordering, acknowledgement, the size bound and its gaps, corruption, sequence safety."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fleetsense.edge.outbox import SEQ_BLOCK, Gap, Outbox


def payload_of(size: int) -> object:
    return lambda seq: seq.to_bytes(8, "big") + b"x" * (size - 8)


def test_append_allocates_consecutive_seqs_and_pending_keeps_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path, max_bytes=1_000_000)
    entries = [box.append("t", payload_of(100)) for _ in range(5)]  # type: ignore[arg-type]
    assert [e.seq for e in entries] == [0, 1, 2, 3, 4]
    assert [e.seq for e in box.pending()] == [0, 1, 2, 3]  # a group of 4 is durable; the 5th waits for its group
    box.flush()
    assert [e.seq for e in box.pending()] == [0, 1, 2, 3, 4]
    assert [e.seq for e in box.pending(after_id=entries[2].id)] == [3, 4]


def test_acknowledged_rows_are_gone_and_the_rest_survive_a_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path, max_bytes=1_000_000)
    entries = [box.append("t", payload_of(100)) for _ in range(4)]  # type: ignore[arg-type]
    box.flush()
    box.acknowledge(entries[0].id)
    box.acknowledge(entries[2].id)
    box.close()
    again = Outbox(tmp_path, max_bytes=1_000_000)
    assert [e.seq for e in again.pending()] == [1, 3]
    assert again.append("t", payload_of(100)).seq == 4  # type: ignore[arg-type]


def test_full_outbox_drops_the_oldest_and_reports_one_merged_gap(tmp_path: Path) -> None:
    """The bound counts the real footprint (segments as allocated, the small files) and drops whole segments,
    oldest first; the dropped seqs are one gap per outage, and pending is exactly the seqs after it. A drop that
    continues a gap already reported offers the longer range again under the same first seq (the cloud keys gaps
    by first seq, so its row grows to the whole outage, as the job's own count of missing seqs has it)."""
    max_bytes = 64 * 1024
    box = Outbox(tmp_path, max_bytes=max_bytes)
    for _ in range(300):
        box.append("t", payload_of(1000))  # type: ignore[arg-type]
        assert box.stats().footprint_bytes <= max_bytes
    box.flush()
    first = box.pending()[0].seq
    assert [e.seq for e in box.pending(limit=1000)] == list(range(first, 300)) and first > 0
    stats = box.stats()
    assert stats.dropped_total == first and stats.depth == 300 - first and stats.bytes == 1000 * (300 - first)
    assert disk_usage(tmp_path) <= stats.footprint_bytes <= max_bytes  # the count is an upper bound
    gaps = box.unreported_gaps()
    assert gaps == [Gap(0, first - 1)]
    box.mark_reported(gaps)
    assert box.unreported_gaps() == []
    while box.stats().dropped_total == first:
        box.append("t", payload_of(1000))  # type: ignore[arg-type]
    assert box.unreported_gaps() == [Gap(0, box.stats().dropped_total - 1)]
    box.acknowledge(box.pending()[0].id)  # a delivered batch between two drops: the next drop is a new gap
    dropped = box.stats().dropped_total
    while box.stats().dropped_total == dropped:
        box.append("t", payload_of(1000))  # type: ignore[arg-type]
    box.flush()
    first_kept = box.pending()[0].seq
    assert box.unreported_gaps() == [Gap(0, dropped - 1), Gap(dropped + 1, first_kept - 1)]


def disk_usage(directory: Path) -> int:
    """What the outbox's files really take: allocated blocks, every file under the directory."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in directory.rglob("*") if p.is_file())


def test_a_batch_larger_than_the_bound_is_still_kept(tmp_path: Path) -> None:
    box = Outbox(tmp_path, max_bytes=4096)
    box.append("t", payload_of(10_000))  # type: ignore[arg-type]
    box.append("t", payload_of(10_000))  # type: ignore[arg-type]
    box.flush()
    assert box.stats().depth >= 1 and box.pending()[-1].seq == 1


def test_a_corrupt_database_is_quarantined_not_deleted_and_seqs_move_on(tmp_path: Path) -> None:
    box = Outbox(tmp_path, max_bytes=1_000_000)
    for _ in range(3):
        box.append("t", payload_of(100))  # type: ignore[arg-type]
    box.close()
    (tmp_path / "outbox.sqlite").write_bytes(b"this is not a database" * 100)
    again = Outbox(tmp_path, max_bytes=1_000_000)
    assert len(again.quarantined) == 1
    kept = Path(again.quarantined[0])
    assert kept.exists() and kept.read_bytes().startswith(b"this is not")
    assert (tmp_path / f"{kept.name}.reason").exists()
    # The new database does not know seq 0..2 were used: it continues past the reserved block.
    assert again.append("t", payload_of(100)).seq == SEQ_BLOCK  # type: ignore[arg-type]
    assert again.stats().quarantined == again.quarantined


def test_a_row_that_stops_decoding_is_set_aside(tmp_path: Path) -> None:
    box = Outbox(tmp_path, max_bytes=1_000_000)
    entry = box.append("t", payload_of(100))  # type: ignore[arg-type]
    box.flush()
    box.set_aside(entry, "bad crc")
    assert box.pending() == [] and box.stats().set_aside == 1
    assert (tmp_path / "set-aside" / "0.batch").read_bytes() == entry.payload
    assert (tmp_path / "set-aside" / "0.reason").read_text() == "t\nbad crc\n"
    box.close()
    assert Outbox(tmp_path, max_bytes=1_000_000).stats().set_aside == 1


def test_concurrent_appends_and_acknowledgements_never_share_a_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path, max_bytes=10_000_000)
    seqs: list[int] = []

    def producer() -> None:
        for _ in range(100):
            seqs.append(box.append("t", payload_of(50)).seq)  # type: ignore[arg-type]

    def consumer() -> None:
        for _ in range(200):
            box.flush()
            for entry in box.pending(limit=10):
                box.acknowledge(entry.id)

    threads = [threading.Thread(target=producer) for _ in range(2)] + [threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(200))


def test_an_unwritable_state_dir_gives_a_clear_error(tmp_path: Path) -> None:
    from fleetsense.edge.outbox import OutboxError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises((OutboxError, OSError)):
        Outbox(blocker / "outbox", max_bytes=4096)


def test_the_sequence_epoch_lives_with_the_sequence_and_a_lost_sequence_gets_a_new_one(tmp_path: Path) -> None:
    """Issue 12: a reflashed or replaced device restarts at seq 0; its batches carry a new epoch (wire v3) so the
    cloud stores and analyses them instead of dropping them as duplicates of the old device's."""
    box = Outbox(tmp_path / "a", max_bytes=1_000_000)
    epoch = box.epoch
    assert 0 < epoch < 2**32
    box.append("t", payload_of(100))  # type: ignore[arg-type]
    box.close()
    (tmp_path / "a" / "outbox.sqlite").write_bytes(b"corrupt" * 100)  # quarantined: the numbers go on, and so
    again = Outbox(tmp_path / "a", max_bytes=1_000_000)  # does the epoch
    assert again.epoch == epoch and again.append("t", payload_of(100)).seq == SEQ_BLOCK  # type: ignore[arg-type]
    replaced = Outbox(tmp_path / "b", max_bytes=1_000_000)  # a new device: seq 0 in a new epoch
    assert replaced.epoch != epoch and replaced.append("t", payload_of(100)).seq == 0  # type: ignore[arg-type]


def test_a_sequence_kept_by_an_agent_from_before_epochs_gets_one_and_keeps_its_numbers(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "sequence.reserved").write_text(f"{SEQ_BLOCK}\n")  # the old format: the limit alone
    box = Outbox(tmp_path, max_bytes=1_000_000)
    assert box.epoch > 0 and box.append("t", payload_of(100)).seq == SEQ_BLOCK  # type: ignore[arg-type]
    assert (tmp_path / "sequence.reserved").read_text().split()[1] == str(box.epoch)
    box.close()
    assert Outbox(tmp_path, max_bytes=1_000_000).epoch == box.epoch


def test_boot_id_and_monotonic_time_are_kept_and_the_last_batch_is_known_after_its_ack_and_a_restart(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path, max_bytes=1_000_000)
    assert box.last_appended() is None
    synced = box.append("t", payload_of(100), boot_id="boot-a")  # type: ignore[arg-type]
    unsynced = box.append("t", payload_of(100), boot_id="boot-a", mono_ns=123_456_789)  # type: ignore[arg-type]
    assert box.last_appended() == unsynced
    box.flush()
    assert box.pending() == [synced, unsynced] and synced.mono_ns is None
    for entry in box.pending():
        box.acknowledge(entry.id)
    box.close()
    again = Outbox(tmp_path, max_bytes=1_000_000)
    assert again.pending() == [] and again.last_appended() == unsynced
