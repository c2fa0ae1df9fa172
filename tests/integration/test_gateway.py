"""Per-device credentials and topic permissions on the real broker."""

from __future__ import annotations

import dataclasses
import random
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pika
import pytest
from fleetsense.edge.outbox import Outbox
from fleetsense.edge.runtime import send_outbox
from fleetsense.gateway.topology import FLEET_VHOST, MQTT_EXCHANGE

from fleetsense import wire
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.rabbitmq import RabbitMQ

from .helpers import provision_vehicle, unique_vehicle
from .helpers import tap as vehicle_tap


def mqtt_publish(stack: StackConfig, username: str, password: str, topic: str, payload: bytes) -> str:
    """Connect, publish once with QoS 1 and report 'acked', 'refused: ...' or 'closed'."""
    outcome: dict[str, str] = {}
    connected = threading.Event()
    finished = threading.Event()

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            outcome["result"] = f"refused: {reason}"
            finished.set()
        connected.set()

    def on_disconnect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome.setdefault("result", "closed")
        finished.set()

    # The broker accepts an MQTT client id only when it is the user name (gateway/identity.py).
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=username)
    client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.connect(LOOPBACK, stack.ports.mqtt, keepalive=10)
    client.loop_start()
    try:
        assert connected.wait(10), "no CONNACK"
        if "result" in outcome:
            return outcome["result"]
        info = client.publish(topic, payload, qos=1)
        deadline = threading.Event()
        for _ in range(50):
            if info.is_published():
                return "acked"
            if finished.is_set():
                return outcome.get("result", "closed")
            deadline.wait(0.1)
        return outcome.get("result", "no puback")
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture()
def tap(stack: StackConfig, operator_client: Any) -> Any:
    """A private queue bound like the telemetry queue, so tests can see what the broker routed."""
    name = f"test.tap.{uuid.uuid4().hex[:8]}"
    operator_client.put_queue(FLEET_VHOST, name, {})
    operator_client.bind(FLEET_VHOST, MQTT_EXCHANGE, name, "fleet.*.telemetry")
    operator = RabbitMQ(stack).operator
    connection = pika.BlockingConnection(
        pika.ConnectionParameters(
            host=LOOPBACK,
            port=stack.ports.amqp,
            virtual_host=FLEET_VHOST,
            credentials=pika.PlainCredentials(operator.username, operator.password),
        )
    )
    channel = connection.channel()

    def drain() -> list[tuple[str, bytes]]:
        got = []
        while True:
            method, _, body = channel.basic_get(name, auto_ack=True)
            if method is None:
                return got
            got.append((method.routing_key, body))

    yield drain
    channel.queue_delete(name)
    connection.close()


def test_device_publishes_to_its_own_topic(stack: StackConfig, operator_client: Any, tap: Any, tmp_path: Path) -> None:
    vid = unique_vehicle("gw")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    assert (tmp_path / f"{vid}.toml").stat().st_mode & 0o777 == 0o600
    result = mqtt_publish(stack, vid, config.broker.password, f"fleet/{vid}/telemetry", b"hello")
    assert result == "acked"
    assert tap() == [(f"fleet.{vid}.telemetry", b"hello")]


def test_device_cannot_publish_as_another_vehicle(
    stack: StackConfig, operator_client: Any, tap: Any, tmp_path: Path
) -> None:
    mine, other = unique_vehicle("gw"), unique_vehicle("gw")
    config = provision_vehicle(operator_client, stack, mine, tmp_path)
    provision_vehicle(operator_client, stack, other, tmp_path)
    result = mqtt_publish(stack, mine, config.broker.password, f"fleet/{other}/telemetry", b"forged")
    assert result != "acked"
    assert tap() == []


def test_wrong_password_and_anonymous_are_refused(stack: StackConfig, operator_client: Any, tmp_path: Path) -> None:
    vid = unique_vehicle("gw")
    provision_vehicle(operator_client, stack, vid, tmp_path)
    assert mqtt_publish(stack, vid, "not-the-password", f"fleet/{vid}/telemetry", b"x").startswith("refused")
    assert mqtt_publish(stack, "", "", f"fleet/{vid}/telemetry", b"x").startswith("refused")


def test_guest_cannot_log_in(stack: StackConfig) -> None:
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(
            pika.ConnectionParameters(
                host=LOOPBACK, port=stack.ports.amqp, credentials=pika.PlainCredentials("guest", "guest")
            )
        )


def test_a_crafted_client_id_grants_nothing(stack: StackConfig, operator_client: Any, tap: Any, tmp_path: Path) -> None:
    import paho.mqtt.client as paho

    mine, other = unique_vehicle("gw"), unique_vehicle("gw")
    config = provision_vehicle(operator_client, stack, mine, tmp_path)
    provision_vehicle(operator_client, stack, other, tmp_path)
    for client_id in (".*", other, f"{other}.telemetry", "#"):
        results = []
        client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        client.username_pw_set(mine, config.broker.password)
        client.connect(LOOPBACK, stack.ports.mqtt)
        client.loop_start()
        info = client.publish(f"fleet/{other}/telemetry", b"forged", qos=1)
        info.wait_for_publish(3) if client.is_connected() else None
        results.append(info.is_published())
        client.disconnect()
        client.loop_stop()
        assert results == [False], client_id
    assert tap() == []


def test_revoked_and_rotated_away_secrets_are_refused(
    stack: StackConfig, operator_client: Any, tap: Any, tmp_path: Path
) -> None:
    from fleetsense.gateway import provision as prov

    from fleetsense.stack import manager

    rotated, revoked = unique_vehicle("gw"), unique_vehicle("gw")
    old = provision_vehicle(operator_client, stack, rotated, tmp_path)
    gone = provision_vehicle(operator_client, stack, revoked, tmp_path)
    assert {rotated, revoked} <= set(prov.vehicles(operator_client))

    new_path = manager.provision_vehicle(stack, operator_client, rotated, out_dir=tmp_path / "new", rotate=True)
    from fleetsense.device_config import load

    new = load(new_path)
    assert new.broker.password != old.broker.password
    assert mqtt_publish(stack, rotated, old.broker.password, f"fleet/{rotated}/telemetry", b"x").startswith("refused")
    assert mqtt_publish(stack, rotated, new.broker.password, f"fleet/{rotated}/telemetry", b"ok") == "acked"

    prov.revoke(operator_client, revoked)
    assert mqtt_publish(stack, revoked, gone.broker.password, f"fleet/{revoked}/telemetry", b"x").startswith("refused")
    assert revoked not in prov.vehicles(operator_client)
    assert tap() == [(f"fleet.{rotated}.telemetry", b"ok")]


def test_a_revoked_device_is_disconnected_at_once(stack: StackConfig, operator_client: Any, tmp_path: Path) -> None:
    import time

    import paho.mqtt.client as paho
    from fleetsense.gateway import provision as prov

    vid = unique_vehicle("gw")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2, client_id=vid)
    client.username_pw_set(vid, config.broker.password)
    client.connect(LOOPBACK, stack.ports.mqtt)
    client.loop_start()
    time.sleep(1)
    assert client.is_connected()
    prov.revoke(operator_client, vid)  # the broker drops a deleted user's connections; revoke sweeps up the rest
    deadline = time.monotonic() + 10
    while client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not client.is_connected()
    client.loop_stop()


def test_a_message_no_binding_routes_lands_in_the_unroutable_queue(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    from fleetsense.gateway.topology import TELEMETRY_QUEUE, UNROUTABLE_QUEUE, Topology

    vid = unique_vehicle("gw")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    telemetry = next(q for q in Topology().queues() if q.name == TELEMETRY_QUEUE)
    before = (operator_client.queue(FLEET_VHOST, UNROUTABLE_QUEUE) or {}).get("messages", 0)
    operator_client.unbind(FLEET_VHOST, MQTT_EXCHANGE, TELEMETRY_QUEUE, telemetry.binding_key)
    try:
        result = mqtt_publish(stack, vid, config.broker.password, f"fleet/{vid}/telemetry", b"while unbound")
    finally:
        operator_client.bind(FLEET_VHOST, MQTT_EXCHANGE, TELEMETRY_QUEUE, telemetry.binding_key)
    assert result == "acked"
    operator = RabbitMQ(stack).operator
    with pika.BlockingConnection(
        pika.ConnectionParameters(
            host=LOOPBACK,
            port=stack.ports.amqp,
            virtual_host=FLEET_VHOST,
            credentials=pika.PlainCredentials(operator.username, operator.password),
        )
    ) as connection:
        channel = connection.channel()
        bodies = []
        while True:
            method, _, body = channel.basic_get(UNROUTABLE_QUEUE, auto_ack=False)
            if method is None:
                break
            bodies.append((method.routing_key, body))
        # Leave the parked messages where they were: the unroutable queue is for operators to inspect.
        channel.basic_recover(requeue=True)
    assert (f"fleet.{vid}.telemetry", b"while unbound") in bodies
    assert len(bodies) >= before + 1


def test_a_message_over_the_size_limit_is_refused_and_nothing_else_is_affected(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    big_id, other_id = unique_vehicle("big"), unique_vehicle("ok")
    big = provision_vehicle(operator_client, stack, big_id, tmp_path)
    other = provision_vehicle(operator_client, stack, other_id, tmp_path)
    with (
        vehicle_tap(stack, operator_client, big_id) as big_tap,
        vehicle_tap(stack, operator_client, other_id) as other_tap,
    ):
        oversized = b"x" * (wire.MAX_MESSAGE_BYTES + 1)
        assert mqtt_publish(stack, big_id, big.broker.password, f"fleet/{big_id}/telemetry", oversized) != "acked"
        # Another device, and the same device on its next connection, are unaffected.
        assert mqtt_publish(stack, other_id, other.broker.password, f"fleet/{other_id}/telemetry", b"ok") == "acked"
        assert mqtt_publish(stack, big_id, big.broker.password, f"fleet/{big_id}/telemetry", b"small") == "acked"
        assert [body for _, body in big_tap.drain()] == [b"small"]
        assert [body for _, body in other_tap.drain()] == [b"ok"]


def test_the_agent_sets_aside_a_batch_the_broker_would_refuse_and_delivers_the_rest(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("setaside")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    config = dataclasses.replace(config, broker=dataclasses.replace(config.broker, max_message_bytes=1024))
    outbox = Outbox(config.state_dir / "outbox", max_bytes=config.outbox.max_bytes)
    noise = random.Random(7)

    def batch(samples: int) -> Callable[[int], bytes]:
        return lambda seq: wire.encode(
            wire.Batch(
                vehicle_id=vid,
                seq=seq,
                start_time_us=1_800_000_000_000_000 + seq * 1_000_000,
                sample_period_us=10_000,
                kind=wire.Kind.ACCEL,
                scales=(0.001, 0.001, 0.001),
                offsets=(0.0, 0.0, 0.0),
                samples=[tuple(noise.randint(-30000, 30000) for _ in range(3)) for _ in range(samples)],
            )
        )

    sizes = [len(outbox.append(f"fleet/{vid}/telemetry", batch(n)).payload) for n in (10, 400, 10)]
    outbox.close()
    assert sizes[1] > 1024 >= max(sizes[0], sizes[2])
    with vehicle_tap(stack, operator_client, vid) as t:
        assert send_outbox(config, timeout_s=30) == 0
        assert [b.seq for b in t.telemetry()] == [0, 2]
    outbox = Outbox(config.state_dir / "outbox", max_bytes=config.outbox.max_bytes)
    try:
        assert outbox.stats().set_aside == 1
    finally:
        outbox.close()
