"""The edge agent against the real broker: crash safety, the outbox bound, status and last will."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fleetsense.edge.outbox import Outbox
from fleetsense.edge.runtime import send_outbox

from fleetsense.device_config import EdgeConfig, OutboxConfig
from fleetsense.load.virtual_drive import record_drive
from fleetsense.stack.layout import StackConfig
from fleetsense.status import parse_status

from .helpers import eventually, outbox_batches, provision_vehicle, tap, unique_vehicle


def start_agent(config_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fleetsense.cli", "edge", "run", "--config", str(config_path), "--simulate", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def next_seq(config: EdgeConfig) -> int:
    box = Outbox(config.state_dir / "outbox", max_bytes=config.outbox.max_bytes)
    try:
        return box.stats().next_seq
    finally:
        box.close()


def test_kill_9_then_restart_delivers_every_accepted_batch_and_reuses_no_seq(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("kill")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    config_path = tmp_path / f"{vid}.toml"
    with tap(stack, operator_client, vid) as t:
        agent = start_agent(config_path)
        time.sleep(6)
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        seq_after_kill = next_seq(config)
        assert seq_after_kill > 0, "the agent stored nothing before it was killed"

        again = start_agent(config_path, "--duration", "4")
        output = again.communicate(timeout=60)[0].decode()
        assert again.returncode == 0, output
        final_seq = next_seq(config)

        batches = eventually(t.telemetry, lambda b: {x.seq for x in b} >= set(range(final_seq)), timeout_s=30)
        by_seq: dict[int, set[bytes]] = {}
        for key, body in t.received:
            if key.endswith(".telemetry"):
                from fleetsense import wire

                by_seq.setdefault(wire.decode_header(body).seq, set()).add(body)
        # Every batch the outbox accepted arrived (the killed run's unacknowledged ones after the restart) ...
        assert set(by_seq) == set(range(final_seq))
        # ... and a number was never given to two different batches.
        assert all(len(bodies) == 1 for bodies in by_seq.values())
        assert min(b.seq for b in batches if b.seq >= seq_after_kill) == seq_after_kill
        assert outbox_batches(config) == []

        # The broker published the killed agent's last will; the clean stop said goodbye itself.
        statuses = [parse_status(body) for body in t.statuses()]
        assert any(not s.online and s.reason == "connection lost" for s in statuses)
        assert statuses[-1].online is False and statuses[-1].reason == "stopping"


def test_a_full_outbox_drops_the_oldest_and_the_status_reports_exactly_the_gap(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("full")
    provisioned = provision_vehicle(operator_client, stack, vid, tmp_path)
    config = dataclasses.replace(provisioned, outbox=OutboxConfig(max_bytes=16_384))
    record_drive(config, seconds=40)  # offline: nothing is sent while driving
    kept = outbox_batches(config)
    kept_seqs = [b.seq for b in kept]
    assert kept_seqs == list(range(kept_seqs[0], kept_seqs[-1] + 1)) and kept_seqs[0] > 0

    with tap(stack, operator_client, vid) as t:
        assert send_outbox(config, timeout_s=60) == 0
        delivered = eventually(t.telemetry, lambda b: len(b) >= len(kept), timeout_s=20)
        assert sorted(b.seq for b in delivered) == kept_seqs
        statuses = [parse_status(body) for body in t.statuses()]
        reported = [s for s in statuses if s.dropped_ranges]
        assert reported, statuses
        assert reported[0].dropped_ranges == [(0, kept_seqs[0] - 1)]
        assert reported[0].dropped_total == kept_seqs[0]
