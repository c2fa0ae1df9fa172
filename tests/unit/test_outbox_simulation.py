"""The outbox under generated adversity: thousands of seeded interleavings of appends, link rounds (acks in and out
of order), status reports (acknowledged or lost), storage faults (ENOSPC / EROFS / EIO, on every call or writes
only, for a few calls or until healed), clean restarts and kills (reopened without close).

Checked after every step: the footprint on disk stays within max_bytes plus one batch, and no seq is handed out
with two different payloads or after it was reported lost; at the end (storage healed, everything sent): every
seq ever allocated was delivered or is in exactly one reported gap. A failure names its seed; replay one with
    FLEETSENSE_SIM_SEED=<seed> python -m pytest tests/unit/test_outbox_simulation.py
and run more with FLEETSENSE_SIM_CASES=<n>.
"""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest
from fleetsense.edge.outbox import Outbox

from tests.unit.outbox_model import CloudView, FaultyDisk, abandon, disk_usage, payload_for

CASES = int(os.environ.get("FLEETSENSE_SIM_CASES", "2000"))
SEED_ENV = os.environ.get("FLEETSENSE_SIM_SEED")
SEEDS = [int(SEED_ENV)] if SEED_ENV else list(range(CASES))
MAX_PAYLOAD = 1600
ONE_BATCH = MAX_PAYLOAD + 64  # a record's header, topic and boot id included


class NoSyncDisk(FaultyDisk):
    """The simulation checks logic, not the flash: skip the (slow) syncs, keep every other call and its faults."""

    def fdatasync(self, fd: int) -> None:
        self.check("fdatasync")

    def fsync_dir(self, directory: Path) -> None:
        self.check("fsync_dir")


class Case:
    def __init__(self, seed: int, directory: Path) -> None:
        self.rng = random.Random(seed)
        self.directory = directory
        self.disk = NoSyncDisk()
        self.view = CloudView()
        self.clock = [0]
        self.tag = 0
        self.max_bytes = self.rng.choice([48 * 1024, 96 * 1024, 256 * 1024])
        self.memory_batches = self.rng.randint(1, 30)
        self.commit_batches = self.rng.randint(1, 6)
        self.box = self.open()

    def open(self) -> Outbox:
        return Outbox(
            self.directory,
            max_bytes=self.max_bytes,
            memory_batches=self.memory_batches,
            commit_batches=self.commit_batches,
            monotonic_ns=lambda: self.clock[0],
            disk=self.disk,
        )

    @property
    def failing(self) -> bool:
        return self.disk.fail_from is not None

    def step(self) -> None:
        rng, box = self.rng, self.box
        roll = rng.random()
        if roll < 0.45:
            self.tag += 1
            box.append("t", payload_for(self.tag, rng.randint(100, MAX_PAYLOAD)), boot_id="b")  # type: ignore[arg-type]
            self.clock[0] += rng.choice([10_000_000, 500_000_000])
        elif roll < 0.62:
            entries = box.pending(limit=rng.randint(1, 40))
            self.view.take(entries)
            if entries and rng.random() < 0.3:
                rng.shuffle(entries)  # PUBACKs of a reconnect, or a set-aside, out of order
            self.view.ack(box, entries[: rng.randint(0, len(entries))], storage_failing=self.failing)
        elif roll < 0.67:
            self.view.report(box, acknowledged=rng.random() < 0.8)
        elif roll < 0.71:
            code = rng.choice([errno.ENOSPC, errno.EROFS, errno.EIO])
            count = rng.choice([1, 3, 20, None])
            self.disk.fail(code, after=rng.randint(0, 5), count=count, writes_only=rng.random() < 0.5)
        elif roll < 0.77:
            self.disk.heal()
        elif roll < 0.80:
            box.close()
            self.box = self.open()
        elif roll < 0.84:
            abandon(box)
            self.box = self.open()
        elif roll < 0.94:
            self.clock[0] += rng.choice([1_000_000_000, 3_000_000_000])
        elif roll < 0.96:
            entries = box.pending(limit=1)
            if entries:
                self.view.take(entries)
                box.set_aside(entries[0], "simulated bad crc")
                self.view.ack(box, [], storage_failing=self.failing)
                self.view.delivered.add(entries[0].seq)
                if self.failing:
                    self.view.uncertain.add(entries[0].seq)
        else:
            box.flush()
        self.check_bound()

    def check_bound(self) -> None:
        on_disk = disk_usage(self.directory)
        assert on_disk <= self.max_bytes + ONE_BATCH, f"{on_disk} bytes on disk, bound {self.max_bytes}"
        assert self.box.stats().memory_batches <= self.memory_batches

    def finish(self) -> None:
        self.disk.heal()
        self.clock[0] += 5_000_000_000
        self.view.drain(self.box)
        abandon(self.box)  # a restart offers again what could not be set aside while storage failed
        again = self.open()
        self.view.drain(again)
        self.view.check_complete(again)
        abandon(again)
        last = self.open()  # and then nothing comes back
        assert last.pending() == [] and last.unreported_gaps() == []
        assert last.stats().next_seq >= again.stats().next_seq
        last.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_outbox_simulation(seed: int, tmp_path: Path) -> None:
    case = Case(seed, tmp_path / "outbox")
    for _ in range(case.rng.randint(20, 160)):
        case.step()
    case.finish()
