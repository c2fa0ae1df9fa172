"""The fleet load generator (`python -m fleetsense.load`) against the real broker: its vehicles get a device's own
permissions from bulk provisioning, log in as themselves and publish every batch, in order, under their own ids."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import ExitStack
from itertools import pairwise
from pathlib import Path
from typing import Any

from fleetsense import wire
from fleetsense.load.provisioning import fleet_ids, provision_fleet, save_credentials
from fleetsense.stack import manager
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.secrets import new_password

from .helpers import tap, unique_vehicle


def test_the_load_generator_publishes_every_batch_of_every_vehicle_in_order(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    passwords = {vid: new_password() for vid in fleet_ids(4, unique_vehicle("load"))}
    provision_fleet(lambda: manager.management_client(stack), passwords, workers=2)
    credentials = tmp_path / "credentials.json"
    save_credentials(credentials, passwords)
    with ExitStack() as taps:
        tapped = {vid: taps.enter_context(tap(stack, operator_client, vid)) for vid in passwords}
        done = subprocess.run(
            [sys.executable, "-m", "fleetsense.load", "run", "--port", str(stack.ports.mqtt), "--credentials",
             str(credentials), "--seconds", "4", "--warmup", "1", "--connect-rate", "20", "--baro",
             "--pool-seeds", "2", "--pool-seconds", "8", "--stats-interval", "2"],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        events = [json.loads(line) for line in done.stdout.splitlines()]
        summary = events[-1]
        assert summary["event"] == "summary" and summary["ok"], summary
        totals = summary["totals"]
        assert summary["connect"]["connected"] == 4 and not totals["refused"]
        assert totals["published"] == totals["acked"] > 0 and summary["unacked_at_end"] == 0
        assert summary["window"]["batches_acked"] > 0 and "stats" in {e["event"] for e in events}
        received = 0
        for vid, vehicle_tap in tapped.items():
            batches = vehicle_tap.telemetry()
            received += len(batches)
            assert {b.vehicle_id for b in batches} == {vid}
            assert sorted(b.seq for b in batches) == list(range(len(batches)))  # none lost, none twice
            by_seq = sorted(batches, key=lambda b: b.seq)
            assert [b.kind for b in by_seq] == [wire.Kind.IMU, wire.Kind.BARO] * (len(batches) // 2)
            imu = [b for b in by_seq if b.kind == wire.Kind.IMU]
            assert all(len(b.samples) == 100 for b in imu)
            starts = [b.start_time_us for b in imu]
            assert all(later - earlier == 1_000_000 for earlier, later in pairwise(starts))
        assert received == totals["acked"]
