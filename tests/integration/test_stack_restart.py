"""`stack down` leaves no process behind, and `stack up` afterwards finds every byte it had.

Runs last among the integration tests (file order): it restarts the whole stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetsense.cloud.cassandra_session import connect
from fleetsense.cloud.query import sample_keys
from fleetsense.cloud.schema import KEYSPACE, schema_version
from fleetsense.edge.runtime import send_outbox

from fleetsense.load.virtual_drive import record_drive
from fleetsense.stack import jobs, manager
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.process import pid_alive

from .helpers import eventually, provision_vehicle, unique_vehicle


def test_down_then_up_keeps_the_data_and_the_devices(
    stack: StackConfig, operator_client: Any, ingest_job: str, tmp_path: Path
) -> None:
    vid = unique_vehicle("restart")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    first = record_drive(config, seconds=3)
    assert send_outbox(config, timeout_s=60) == 0
    with connect(stack.cql_contact) as session:
        before = eventually(
            lambda: sample_keys(session, KEYSPACE, vid), lambda k: len(k) >= first.imu_samples, timeout_s=60
        )
    assert len(before) == first.imu_samples

    pids = [pid for row in manager.status(stack) for pid in row.pids]
    manager.down(stack, say=lambda _: None)
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert all(row.state == "stopped" for row in manager.status(stack))

    manager.up(stack, say=lambda _: None)
    with connect(stack.cql_contact) as session:
        assert sample_keys(session, KEYSPACE, vid) == before
        assert schema_version(session) >= 1
    # The vehicle's broker user survived too: it can publish again, continuing its sequence.
    jobs.submit_ingest(stack)
    again = record_drive(config, seconds=1)
    assert again.first_seq == first.next_seq
    assert send_outbox(config, timeout_s=60) == 0


def test_broker_down_for_a_minute_loses_nothing_and_keeps_order(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from fleetsense import wire
    from fleetsense.stack.rabbitmq import RabbitMQ

    from .helpers import tap

    vid = unique_vehicle("outage")
    provision_vehicle(operator_client, stack, vid, tmp_path)
    config_path = tmp_path / f"{vid}.toml"
    with tap(stack, operator_client, vid) as t:
        started = time.monotonic()
        agent = subprocess.Popen(
            [sys.executable, "-m", "fleetsense.cli", "edge", "run", "--config", str(config_path), "--simulate"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        time.sleep(5)
        broker = RabbitMQ(stack)
        broker.stop()
        time.sleep(60)
        broker.start()
        # The agent reconnects after its jittered backoff (up to 60 s after a long outage), then replays: wait
        # until the broker has routed every seq from 0 up to the live edge (2 batches a second since the start).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = {wire.decode_header(body).seq for key, body in t.drain() if key.endswith(".telemetry")}
            live_edge = 2 * (time.monotonic() - started) - 10
            if seen and seen == set(range(max(seen) + 1)) and max(seen) >= live_edge:
                break
            time.sleep(1)
        agent.send_signal(signal.SIGTERM)
        output = agent.communicate(timeout=60)[0].decode()
        assert agent.returncode == 0, output

        seqs = [wire.decode_header(body).seq for key, body in t.drain() if key.endswith(".telemetry")]
        first_seen = list(dict.fromkeys(seqs))
        # Every batch, in order, no gap: 0, 1, 2, ... (a resend after a lost PUBACK may repeat a number).
        assert first_seen == list(range(len(first_seen))), first_seen
        # 5 s before the stop, the stop itself, 60 s down, the restart: at least 70 s at 2 batches/s.
        assert len(first_seen) >= 2 * 70, f"expected ~2 batches/s over more than 70 s, got {len(first_seen)}"
