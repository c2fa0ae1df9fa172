"""The whole path: the real edge agent on simulated chips -> MQTT -> RabbitMQ -> the PyFlink job -> Cassandra."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from fleetsense.cloud.query import sample_keys
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.edge.runtime import send_outbox
from fleetsense.gateway.topology import FLEET_VHOST, TELEMETRY_QUEUE
from paho.mqtt.enums import CallbackAPIVersion

from fleetsense import wire
from fleetsense.load.virtual_drive import record_drive
from fleetsense.stack.layout import LOOPBACK, StackConfig

from .helpers import eventually, expected_keys, outbox_batches, provision_vehicle, unique_vehicle

STORE_BOUND_S = 60.0


def drive_and_send(config: Any, seconds: float) -> list[wire.Batch]:
    record_drive(config, seconds=seconds)
    batches = outbox_batches(config)
    assert send_outbox(config, timeout_s=60) == 0
    return batches


def test_every_published_sample_is_stored_exactly_once(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("e2e")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    batches = drive_and_send(config, 30)
    imu, env = expected_keys(batches, wire.Kind.IMU), expected_keys(batches, wire.Kind.BARO)
    assert len(imu) >= 2900 and len(env) >= 290

    # The last batch may be a barometer one: wait for both kinds before comparing.
    stored = eventually(
        lambda: (sample_keys(cql, KEYSPACE, vid), sample_keys(cql, KEYSPACE, vid, wire.Kind.BARO)),
        lambda k: len(k[0]) >= len(imu) and len(k[1]) >= len(env),
        timeout_s=STORE_BOUND_S,
    )
    assert stored == (imu, env)

    # Deliveries are acknowledged once the checkpoint covering them completes: the queue empties.
    queue = eventually(
        lambda: operator_client.queue(FLEET_VHOST, TELEMETRY_QUEUE),
        lambda q: q is not None and q.get("messages") == 0,
        timeout_s=30,
    )
    assert queue["messages"] == 0, queue


def test_bad_input_is_rejected_with_a_reason_and_good_data_still_flows(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("bad")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=vid)
    client.username_pw_set(vid, config.broker.password)
    client.connect(LOOPBACK, stack.ports.mqtt)
    client.loop_start()
    client.publish(f"fleet/{vid}/telemetry", b"FS\x02 this is not a batch", qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()

    batches = drive_and_send(config, 2)
    imu = expected_keys(batches, wire.Kind.IMU)
    keys = eventually(lambda: sample_keys(cql, KEYSPACE, vid), lambda k: len(k) >= len(imu), timeout_s=STORE_BOUND_S)
    assert keys == imu

    rejected = [row for row in _rejected_today(cql, vid) if row.routing_key == f"fleet.{vid}.telemetry"]
    assert len(rejected) == 1
    assert "undecodable" in rejected[0].reason


def test_a_backlog_queued_while_the_job_is_down_is_stored_exactly_once(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    from fleetsense.stack import jobs

    assert jobs.cancel_ingest(stack) is not None
    assert jobs.cluster(stack).running(jobs.INGEST_JOB_NAME) is None
    vid = unique_vehicle("backlog")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    batches = drive_and_send(config, 20)
    # Nothing consumes now: the durable queue holds the backlog, acknowledged to the vehicle.
    queued = eventually(
        lambda: operator_client.queue(FLEET_VHOST, TELEMETRY_QUEUE),
        lambda q: q is not None and q.get("messages", 0) >= len(batches),
        timeout_s=15,
    )
    assert queued["messages"] >= len(batches)
    assert sample_keys(cql, KEYSPACE, vid) == set()

    jobs.submit_ingest(stack)
    imu = expected_keys(batches, wire.Kind.IMU)
    keys = eventually(lambda: sample_keys(cql, KEYSPACE, vid), lambda k: len(k) >= len(imu), timeout_s=STORE_BOUND_S)
    assert keys == imu


def test_a_full_telemetry_queue_pushes_back_and_loses_nothing(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    import subprocess
    import time

    from fleetsense.stack import jobs
    from fleetsense.stack.rabbitmq import RABBITMQ_BIN, RabbitMQ

    broker = RabbitMQ(stack)

    def policy_in_force() -> bool:
        listing = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", broker.node, "list_queues", "-p", FLEET_VHOST, "name", "policy"],
            env=broker.env(), capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        return any(line.split() == [TELEMETRY_QUEUE, "test-full-telemetry"] for line in listing.splitlines())

    jobs.cancel_ingest(stack)
    # A bound of one message, above the topology's own policy for the length of this test.
    operator_client.put_policy(
        FLEET_VHOST,
        "test-full-telemetry",
        pattern=f"^{TELEMETRY_QUEUE.replace('.', chr(92) + '.')}$",
        apply_to="queues",
        definition={"max-length": 1, "overflow": "reject-publish"},
        priority=100,
    )
    vid = unique_vehicle("full")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    try:
        assert eventually(policy_in_force, bool, timeout_s=30), "the test policy never applied"
        time.sleep(2)
        record_drive(config, seconds=20)
        batches = outbox_batches(config)
        left = send_outbox(config, timeout_s=15)
        # The broker refused what it could not hold; the vehicle kept it.
        assert left > 0
    finally:
        operator_client.delete_policy(FLEET_VHOST, "test-full-telemetry")
        jobs.submit_ingest(stack)
    assert send_outbox(config, timeout_s=60) == 0
    imu = expected_keys(batches, wire.Kind.IMU)
    keys = eventually(lambda: sample_keys(cql, KEYSPACE, vid), lambda k: len(k) >= len(imu), timeout_s=STORE_BOUND_S)
    assert keys == imu


def test_each_class_of_bad_input_is_rejected_with_its_reason_and_the_job_keeps_running(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("badclass")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    now_us = time.time_ns() // 1000

    def batch(**changes: Any) -> bytes:
        fields: dict[str, Any] = {
            "vehicle_id": vid,
            "seq": 10_000,
            "start_time_us": now_us - 5_000_000,
            "sample_period_us": 10_000,
            "kind": wire.Kind.ACCEL,
            "scales": (0.001, 0.001, 0.001),
            "offsets": (0.0, 0.0, 0.0),
            "samples": [(0, 0, 9807)] * 10,
        }
        fields.update(changes)
        return wire.encode(wire.Batch(**fields))

    bad = {
        b"FS\x02 truncated": "undecodable",
        batch(vehicle_id="someone-else"): "payload names vehicle 'someone-else'",
        batch(scales=(float("nan"), 0.001, 0.001)): "non-finite",
        batch(samples=[(0, 0, 30_000)] * 10, scales=(0.01, 0.01, 0.01)): "physically impossible az_m_s2",
        batch(start_time_us=now_us + 3_600_000_000): "in the future",
        batch(start_time_us=now_us - 40 * 86_400_000_000): "more than 30 days old",
    }
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=vid)
    client.username_pw_set(vid, config.broker.password)
    client.connect(LOOPBACK, stack.ports.mqtt)
    client.loop_start()
    for payload in bad:
        client.publish(f"fleet/{vid}/telemetry", payload, qos=1).wait_for_publish(10)
    client.publish(f"fleet/{vid}/status", b"{not json", qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()

    batches = drive_and_send(config, 2)  # good data around the bad
    imu = expected_keys(batches, wire.Kind.IMU)
    keys = eventually(lambda: sample_keys(cql, KEYSPACE, vid), lambda k: len(k) >= len(imu), timeout_s=STORE_BOUND_S)
    assert keys == imu

    def reasons() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for row in _rejected_today(cql, vid):
            if row.routing_key in (f"fleet.{vid}.telemetry", f"fleet.{vid}.status"):
                found.setdefault(row.routing_key.rsplit(".", 1)[1], []).append(row.reason)
        return found

    found = eventually(reasons, lambda f: len(f.get("telemetry", [])) >= len(bad) and "status" in f, timeout_s=30)
    assert len(found["telemetry"]) == len(bad)
    for expected in bad.values():
        assert any(expected in reason for reason in found["telemetry"]), (expected, found)
    assert "not JSON" in found["status"][0]
    from fleetsense.stack import jobs

    assert jobs.cluster(stack).running(jobs.INGEST_JOB_NAME) is not None


def _rejected_today(cql: Any, vehicle_id: str) -> list[Any]:
    """The vehicle's rejection rows of yesterday and today (UTC): a test may run across midnight."""
    import time

    from fleetsense.cloud.query import rejected
    from fleetsense.cloud.store import day_buckets

    now_us = time.time_ns() // 1000
    return rejected(cql, KEYSPACE, vehicle_id, day_buckets(now_us - 86_400_000_000, now_us))
