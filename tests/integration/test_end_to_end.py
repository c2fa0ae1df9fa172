"""The whole path: a simulated vehicle -> MQTT -> RabbitMQ -> the PyFlink job -> Cassandra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from fleetsense.cloud.query import sample_keys
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.edge.agent import RunLimits, run
from fleetsense.edge.sampling import simulated_sampler
from fleetsense.gateway.topology import FLEET_VHOST, TELEMETRY_QUEUE

from fleetsense.stack.layout import LOOPBACK, StackConfig

from .helpers import eventually, provision_vehicle, unique_vehicle

STORE_BOUND_S = 60.0


def test_n_published_samples_are_exactly_n_distinct_rows(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("e2e")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    windows = 30
    report = run(config, simulated_sampler(vid), limits=RunLimits(max_windows=windows, realtime=False))
    n = report.samples
    assert n == windows * 100 and report.unacknowledged == 0

    keys = eventually(lambda: sample_keys(cql, KEYSPACE, vid), lambda k: len(k) >= n, timeout_s=STORE_BOUND_S)
    assert len(keys) == n
    assert keys == {(seq, i) for seq in range(windows) for i in range(100)}

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
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=vid)
    client.username_pw_set(vid, config.broker.password)
    client.connect(LOOPBACK, stack.ports.mqtt)
    client.loop_start()
    client.publish(f"fleet/{vid}/telemetry", b"FS\x01 this is not a batch", qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()

    run(config, simulated_sampler(vid), limits=RunLimits(max_windows=2, realtime=False))
    keys = eventually(lambda: sample_keys(cql, KEYSPACE, vid), lambda k: len(k) >= 200, timeout_s=STORE_BOUND_S)
    assert len(keys) == 200

    rejected = [
        row
        for row in cql.execute(f"SELECT routing_key, reason, size_bytes FROM {KEYSPACE}.rejected_messages")
        if row.routing_key == f"fleet.{vid}.telemetry"
    ]
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
    run(config, simulated_sampler(vid), limits=RunLimits(max_windows=20, realtime=False))
    # Nothing consumes now: the durable queue holds the backlog, acknowledged to the vehicle.
    queued = eventually(
        lambda: operator_client.queue(FLEET_VHOST, TELEMETRY_QUEUE),
        lambda q: q is not None and q.get("messages", 0) >= 20,
        timeout_s=15,
    )
    assert queued["messages"] >= 20
    assert sample_keys(cql, KEYSPACE, vid) == set()

    jobs.submit_ingest(stack)
    keys = eventually(lambda: sample_keys(cql, KEYSPACE, vid), lambda k: len(k) >= 2000, timeout_s=STORE_BOUND_S)
    assert keys == {(seq, i) for seq in range(20) for i in range(100)}
