"""Issue 13's "done means" for storage: the real agent on a small tmpfs that the test fills and keeps full long
enough for the memory ring to overflow, then frees. The agent never exits; the cloud's gap table holds exactly
the lost range(s); stored seqs and gaps cover every seq once; the outbox drains; nothing arrives twice."""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.edge.outbox import Outbox

from fleetsense import wire
from fleetsense.device_config import OutboxConfig, StatusConfig, StorageConfig, render
from fleetsense.stack.layout import StackConfig
from fleetsense.status import parse_status
from tests.tmpfs import mounted_tmpfs

from .helpers import eventually, provision_vehicle, tap, unique_vehicle
from .test_adversity import gap_rows
from .test_edge_agent import start_agent

FULL_FOR_S = 40.0  # ~10 s into the preallocated segment, then 8 batches of memory (4 s): the ring overflows


def stored_seqs(cql: Any, vid: str) -> set[int]:
    """The seqs of every batch the cloud stored for the vehicle (IMU and barometer)."""
    from fleetsense.cloud.query import blocks

    return {row.seq for row in blocks(cql, KEYSPACE, vid)}


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "state", size="2m") as mount:
        yield mount


class Filler:
    """Someone else filling the disk, and taking any block that is freed while it runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stop = threading.Event()
        self.full = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while not self.stop.is_set():
                try:
                    os.write(fd, bytes(4096))
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    self.full.set()
                    time.sleep(0.005)
        finally:
            os.close(fd)

    def __enter__(self) -> Filler:
        self.thread.start()
        assert self.full.wait(30), "the tmpfs never filled"
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.path.unlink()


def test_a_full_disk_under_a_running_agent_loses_exactly_the_reported_range_and_nothing_else(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path, small_fs: Path
) -> None:
    vid = unique_vehicle("diskfull")
    provisioned = provision_vehicle(operator_client, stack, vid, tmp_path)
    config = dataclasses.replace(
        provisioned,
        storage=StorageConfig(state_dir=str(small_fs)),
        outbox=OutboxConfig(max_bytes=64 * 1024, memory_batches=8),  # 8 KiB segments: full within ~10 s
        status=StatusConfig(heartbeat_s=5.0),
    )
    config_path = tmp_path / f"{vid}-small-disk.toml"
    config_path.write_text(render(config))
    with tap(stack, operator_client, vid) as t:
        agent = start_agent(config_path)
        try:
            eventually(lambda: stored_seqs(cql, vid), lambda s: len(s) >= 10, timeout_s=90)
            with Filler(small_fs / "filler"):
                deadline = time.monotonic() + FULL_FOR_S
                while time.monotonic() < deadline:
                    assert agent.poll() is None, agent.communicate()[0].decode()
                    time.sleep(0.5)
            time.sleep(15)  # storage works again: the ring is written and sent
            assert agent.poll() is None, agent.communicate()[0].decode()
            agent.send_signal(signal.SIGTERM)
            output = agent.communicate(timeout=60)[0].decode()
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait(10)
        assert agent.returncode == 0, output
        assert "storage fault while storing batches: ENOSPC" in output, f"the disk never filled:\n{output}"

        box = Outbox(small_fs / "outbox", max_bytes=config.outbox.max_bytes)
        try:
            last_seq = box.stats().next_seq - 1
            assert box.pending() == [] and box.unreported_gaps() == [], "the outbox did not drain"
            assert box.stats().dropped_total > 0, "the memory ring never overflowed"
        finally:
            box.close()

        statuses = [parse_status(body) for body in t.statuses()]
        longest: dict[int, int] = {}  # a range offered again, longer, under the same first seq replaces it
        for first, last in (r for s in statuses for r in s.dropped_ranges):
            longest[first] = max(longest.get(first, last), last)
        reported = sorted(longest.items())
        assert reported, "no status reported the lost range"
        gaps = eventually(lambda: gap_rows(cql, vid), lambda g: len(g) >= len(reported), timeout_s=60)
        assert gaps == reported, f"the cloud recorded {gaps}, the agent reported {reported}"
        stored = eventually(
            lambda: stored_seqs(cql, vid),
            lambda s: len(s) + sum(b - a + 1 for a, b in gaps) >= last_seq + 1,
            timeout_s=60,
        )
        in_gaps = [seq for first, last in gaps for seq in range(first, last + 1)]
        assert len(in_gaps) == len(set(in_gaps)) and not set(in_gaps) & stored, "a seq both stored and lost"
        assert stored | set(in_gaps) == set(range(last_seq + 1)), "seqs neither stored nor in a recorded gap"

        bodies: dict[int, set[bytes]] = {}
        for key, body in t.received:
            if key.endswith(".telemetry"):
                bodies.setdefault(wire.decode_header(body).seq, set()).add(body)
        assert all(len(b) == 1 for b in bodies.values()), "a seq was sent with two different payloads"
        assert set(bodies) == stored
        sent_per_seq = [sum(1 for k, b in t.received if k.endswith(".telemetry") and b in s) for s in bodies.values()]
        assert max(sent_per_seq) <= 2, "a batch was resent over and over"
