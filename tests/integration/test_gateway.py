"""Per-device credentials and topic permissions on the real broker."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pika
import pytest
from fleetsense.gateway.topology import FLEET_VHOST, MQTT_EXCHANGE

from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.rabbitmq import RabbitMQ

from .helpers import provision_vehicle, unique_vehicle


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

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
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
