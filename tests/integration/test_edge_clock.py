"""Issue 13's "done means" for time: an agent whose wall clock starts at 1970 and unsynchronised, then is stepped
to the true time and synchronised, gets every batch stored in Cassandra with its true time and none rejected.

The agent runs in-process (the real Agent, Outbox and Link against the test stack) on a test clock whose monotonic
time is the machine's, so the simulated chips sample in real time, and whose wall clock is wrong until the test
steps it."""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from fleetsense.cloud.query import blocks, rejected
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.cloud.store import day_buckets
from fleetsense.edge.agent import run_agent
from fleetsense.edge.outbox import Entry, Outbox
from fleetsense.edge.runtime import open_agent, open_sensors_for

from fleetsense import wire
from fleetsense.device_config import ClockConfig, render
from fleetsense.stack.layout import StackConfig
from fleetsense.status import parse_status

from .helpers import eventually, provision_vehicle, tap, unique_vehicle
from .test_edge_agent import start_agent

UNSYNCED_S = 8.0
SYNCED_S = 5.0
TOLERANCE_MS = 50


class SteppableClock:
    """Monotonic time as if the machine had booted 5 s ago; the wall clock at 1970 and unsynchronised until
    `step_right()`, which sets it to the true time and makes it report synchronised."""

    def __init__(self) -> None:
        self._mono_origin_ns = time.monotonic_ns() - 5_000_000_000
        self.error_ns = -time.time_ns() + 60_000_000_000  # a Pi without an RTC: a minute past the epoch
        self._synced = False

    def monotonic_ns(self) -> int:
        return time.monotonic_ns() - self._mono_origin_ns

    def true_utc_ns(self, mono_ns: int) -> int:
        """Where a monotonic instant really lies (the machine's own clock, which is right)."""
        return time.time_ns() - (self.monotonic_ns() - mono_ns)

    def wall_ns(self) -> int:
        return time.time_ns() + self.error_ns

    def synced(self) -> bool:
        return self._synced

    def step_right(self) -> None:
        self.error_ns = 0
        self._synced = True


class RecordingOutbox(Outbox):
    """The real outbox, remembering for each batch when it was really taken."""

    def __init__(self, directory: Path, *, max_bytes: int, clock: SteppableClock) -> None:
        super().__init__(directory, max_bytes=max_bytes)
        self.clock = clock
        self.true_start_ms: dict[int, float] = {}

    def append(self, topic: str, make_payload: Any, *, boot_id: str = "", mono_ns: int | None = None) -> Entry:
        entry = super().append(topic, make_payload, boot_id=boot_id, mono_ns=mono_ns)
        start_us = wire.decode_header(entry.payload).start_time_us
        # Unsynchronised: its true time is its monotonic time's; synchronised: the wall clock is right.
        true_ns = self.clock.true_utc_ns(mono_ns) if mono_ns is not None else start_us * 1000 - self.clock.error_ns
        self.true_start_ms[entry.seq] = true_ns / 1e6
        return entry


def test_an_agent_started_at_1970_gets_every_batch_stored_at_its_true_time(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("clock")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    clock = SteppableClock()
    outbox = RecordingOutbox(config.state_dir / "outbox", max_bytes=config.outbox.max_bytes, clock=clock)
    sensors = open_sensors_for(config, clock.monotonic_ns, simulate=True)
    agent, link, runs = open_agent(config, sensors, outbox, clock, boot_id=f"test-boot-{uuid.uuid4()}")
    stop = threading.Event()
    sampler = threading.Thread(target=run_agent, args=(agent,), kwargs={"stop": stop}, daemon=True)
    link.start()
    sampler.start()
    try:
        time.sleep(UNSYNCED_S)
        held = agent.status("test", []).held_unsynced
        taken_unsynced = set(outbox.true_start_ms)
        clock.step_right()
        time.sleep(SYNCED_S)
    finally:
        stop.set()
        sampler.join(10)
        link.stop(drain_timeout_s=10)
        outbox.close()
        sensors.close()
        runs.clean_stop()

    # While the clock was wrong the batches stayed on the device (nothing at 1970 reached the cloud).
    assert len(taken_unsynced) >= 10 and held is not None and held >= len(taken_unsynced) - 4
    expected = outbox.true_start_ms
    stored = eventually(
        lambda: blocks(cql, KEYSPACE, vid, with_message=True), lambda rows: len(rows) >= len(expected), timeout_s=90
    )
    assert sorted(row.seq for row in stored) == sorted(expected)
    off_ms = {row.seq: row.start_time.timestamp() * 1000 - expected[row.seq] for row in stored}
    assert max(abs(off) for off in off_ms.values()) < TOLERANCE_MS, sorted(off_ms.items())
    flags = {row.seq: wire.decode_header(row.message).flags for row in stored}
    assert not any(f & wire.Flags.CLOCK_UNSYNCED for f in flags.values())  # re-timed on the synchronised clock
    first_of_kind = [min(row.seq for row in stored if row.kind == kind) for kind in (wire.Kind.IMU, wire.Kind.BARO)]
    assert {seq for seq, f in flags.items() if f & wire.Flags.RESTARTED} == set(first_of_kind)
    assert not any(f & wire.Flags.CLOCK_STEPPED for f in flags.values())  # the step came before sync: re-timed
    now_us = time.time_ns() // 1000
    assert rejected(cql, KEYSPACE, vid, day_buckets(now_us - 86_400_000_000, now_us)) == []


def test_a_crash_and_a_restart_are_visible_in_the_status_and_the_flags(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    """Issue 13 item 4 through `fleetsense edge run`: the run after a SIGKILL says it is the first restart, an unclean
    one, and how long the vehicle was without samples; the first batch of each kind of each run is RESTARTED."""
    vid = unique_vehicle("restart")
    # This machine's kernel says its clock is unsynchronised: trust it, as a GPS-timed vehicle would.
    config = dataclasses.replace(
        provision_vehicle(operator_client, stack, vid, tmp_path), clock=ClockConfig(assume_synced=True)
    )
    config_path = tmp_path / f"{vid}.toml"
    config_path.write_text(render(config))
    down_s = 2.0
    with tap(stack, operator_client, vid) as t:
        agent = start_agent(config_path)
        time.sleep(6)
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        killed_at = time.monotonic()
        time.sleep(down_s)
        again = start_agent(config_path, "--duration", "4")
        output = again.communicate(timeout=60)[0].decode()
        assert again.returncode == 0, output
        down_ms = (time.monotonic() - killed_at) * 1000
        statuses = [parse_status(body) for body in t.statuses()]
        batches = eventually(t.telemetry, lambda b: len(b) >= 12, timeout_s=30)

    first_run = [s for s in statuses if s.restarts == 0]
    second_run = [s for s in statuses if s.restarts == 1]
    assert first_run and second_run, statuses
    assert all(s.unclean_restarts == 0 for s in first_run) and all(s.unclean_restarts == 1 for s in second_run)
    # The status on connecting comes before the first batch; the goodbye at the clean stop knows the time lost.
    assert second_run[-1].reason == "stopping", second_run
    lost = second_run[-1].last_restart_lost_ms
    # Down for at least the 2 s we waited, plus the window in memory at the kill and the new process's start.
    assert lost is not None and down_s * 1000 - 20 <= lost <= down_ms + 1100, (lost, down_ms)
    assert all(s.held_unsynced == 0 for s in statuses if s.online)
    restarted = sorted((b.seq, b.kind) for b in batches if b.flags & wire.Flags.RESTARTED)
    assert len(restarted) == 4 and {kind for _, kind in restarted} == {wire.Kind.IMU, wire.Kind.BARO}, restarted
    assert json.loads((config.state_dir / "run.json").read_text()) == {
        "starts": 2,
        "unclean_starts": 1,
        "running": False,
    }
