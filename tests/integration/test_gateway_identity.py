"""Identity and bounds at the real broker: client ids bound to users, MQTT-only devices, the kinds that exist,
no retained store, per-device limits, bounded queues, and the Prometheus endpoint."""

from __future__ import annotations

import dataclasses
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pika
import pytest
import requests
from fleetsense.gateway import provision as prov
from fleetsense.gateway.topology import FLEET_VHOST, STATUS_QUEUE, Topology

from fleetsense.device_config import EdgeConfig, load
from fleetsense.stack import manager
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.rabbitmq import RabbitMQ

from .helpers import eventually, provision_vehicle, tap, unique_vehicle
from .test_gateway import mqtt_publish


class Session:
    """One MQTT connection held open, recording what happened to it."""

    def __init__(self, client: paho.Client) -> None:
        self.client = client
        self.connack = threading.Event()
        self.outcome = ""
        self.disconnects: list[str] = []
        self.messages: list[paho.MQTTMessage] = []
        client.on_connect = self._on_connect
        client.on_disconnect = lambda c, u, f, reason, p: self.disconnects.append(str(reason))
        client.on_message = lambda c, u, message: self.messages.append(message)

    def _on_connect(self, c: paho.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
        self.outcome = f"refused: {reason}" if reason.is_failure else "accepted"
        self.connack.set()

    def start(self, host: str, port: int) -> Session:
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        assert self.connack.wait(10), "no CONNACK"
        if self.outcome != "accepted":
            self.close()  # paho would keep retrying a refused login
        return self

    def publish_acked(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish at QoS 1; True once the broker has acknowledged it (paho's own wait returns None whether or
        not the PUBACK came, so it proves nothing by itself)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        deadline = time.monotonic() + 5
        while not info.is_published() and time.monotonic() < deadline and self.client.is_connected():
            time.sleep(0.05)
        return info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def password_session(stack: StackConfig, username: str, password: str, client_id: str) -> Session:
    client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set(username, password)
    return Session(client)


def cert_session(stack: StackConfig, config: EdgeConfig, client_id: str) -> Session:
    client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.tls_set(
        ca_certs=config.broker.ca_file,
        certfile=config.broker.client_cert_file,
        keyfile=config.broker.client_key_file,
        cert_reqs=ssl.CERT_REQUIRED,
    )
    return Session(client)


@pytest.fixture()
def sessions() -> Iterator[list[Session]]:
    opened: list[Session] = []
    yield opened
    for session in opened:
        session.close()


def authoriser_refusals(stack: StackConfig) -> str:
    return RabbitMQ(stack).authoriser_log().read_text()


def test_a_takeover_is_refused_and_logged_and_the_rightful_vehicle_stays_connected_until_its_will_fires(
    stack: StackConfig, operator_client: Any, tmp_path: Path, sessions: list[Session]
) -> None:
    victim, attacker = unique_vehicle("victim"), unique_vehicle("attacker")
    victim_config = provision_vehicle(operator_client, stack, victim, tmp_path)
    attacker_config = provision_vehicle(operator_client, stack, attacker, tmp_path)
    with tap(stack, operator_client, victim) as t:
        rightful = password_session(stack, victim, victim_config.broker.password, victim)
        rightful.client.will_set(f"fleet/{victim}/status", b"will: connection lost", qos=1)
        sessions.append(rightful.start(LOOPBACK, stack.ports.mqtt))
        assert rightful.outcome == "accepted"

        takeover = password_session(stack, attacker, attacker_config.broker.password, victim)
        sessions.append(takeover.start(LOOPBACK, stack.ports.mqtt))
        assert takeover.outcome == "refused: Not authorized"
        time.sleep(2)  # the broker would close the older session at once; give it time to do the wrong thing
        assert rightful.client.is_connected() and rightful.disconnects == []
        assert f"client id '{victim}' is not the user name '{attacker}'" in authoriser_refusals(stack)

        # Still the rightful session: it publishes, and its will fires when it really drops (no DISCONNECT).
        assert rightful.publish_acked(f"fleet/{victim}/status", b"alive")
        rightful.client.loop_stop()
        rightful.client.socket().close()  # type: ignore[union-attr]
        statuses = eventually(t.statuses, lambda got: b"will: connection lost" in got, timeout_s=30)
    assert statuses == [b"alive", b"will: connection lost"]


def test_a_takeover_with_a_client_certificate_is_refused_too(
    stack: StackConfig, operator_client: Any, tmp_path: Path, sessions: list[Session]
) -> None:
    victim, attacker = unique_vehicle("cvictim"), unique_vehicle("cattacker")
    victim_config = load(manager.provision_vehicle(stack, operator_client, victim, out_dir=tmp_path, client_cert=True))
    attacker_config = load(
        manager.provision_vehicle(stack, operator_client, attacker, out_dir=tmp_path, client_cert=True)
    )
    rightful = cert_session(stack, victim_config, victim)
    sessions.append(rightful.start("localhost", stack.ports.mqtts))
    assert rightful.outcome == "accepted"
    takeover = cert_session(stack, attacker_config, victim)
    sessions.append(takeover.start("localhost", stack.ports.mqtts))
    assert takeover.outcome == "refused: Not authorized"
    time.sleep(2)
    assert rightful.client.is_connected() and rightful.disconnects == []
    assert f"client id '{victim}' is not the user name '{attacker}'" in authoriser_refusals(stack)


def test_device_credentials_do_not_open_amqp(stack: StackConfig, operator_client: Any, tmp_path: Path) -> None:
    vid = unique_vehicle("amqp")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    params = pika.ConnectionParameters(
        host=LOOPBACK,
        port=stack.ports.amqp,
        virtual_host=FLEET_VHOST,
        credentials=pika.PlainCredentials(vid, config.broker.password),
    )
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError, match="access to vhost 'fleet' refused"):
        pika.BlockingConnection(params)
    assert f"device '{vid}' tried a non-MQTT connection" in authoriser_refusals(stack)


def test_only_the_kinds_that_exist_are_published(stack: StackConfig, operator_client: Any, tmp_path: Path) -> None:
    vid = unique_vehicle("kinds")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    with tap(stack, operator_client, vid) as t:
        assert mqtt_publish(stack, vid, config.broker.password, f"fleet/{vid}/bogus", b"x") == "closed"
        assert mqtt_publish(stack, vid, config.broker.password, f"fleet/{vid}/status", b"ok") == "acked"
        assert t.drain() == [(f"fleet.{vid}.status", b"ok")]


def test_a_retained_publish_is_delivered_but_never_stored(
    stack: StackConfig, operator_client: Any, tmp_path: Path, sessions: list[Session]
) -> None:
    vid = unique_vehicle("retain")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    device = password_session(stack, vid, config.broker.password, vid)
    sessions.append(device.start(LOOPBACK, stack.ports.mqtt))
    assert device.publish_acked(f"fleet/{vid}/status", b"retain me", retain=True)
    # A new subscriber (the operator, whose MQTT client id is its user name) gets nothing retained ...
    operator = RabbitMQ(stack).operator
    subscriber = password_session(stack, operator.username, operator.password, operator.username)
    sessions.append(subscriber.start(LOOPBACK, stack.ports.mqtt))
    subscriber.client.subscribe(f"fleet/{vid}/status", qos=1)
    time.sleep(2)
    assert subscriber.messages == []
    # ... though its subscription works: a live message arrives.
    assert device.publish_acked(f"fleet/{vid}/status", b"live")
    got = eventually(lambda: [m.payload for m in subscriber.messages], lambda m: m != [], timeout_s=10, interval_s=0.2)
    assert got == [b"live"]


def test_a_connection_beyond_the_device_limit_is_refused_and_the_reconnect_overlap_fits(
    stack: StackConfig, operator_client: Any, tmp_path: Path, sessions: list[Session]
) -> None:
    vid = unique_vehicle("limit")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    assert operator_client.user_limits(vid) == {"max-connections": 2, "max-channels": 6}
    # The default: a reconnect while the old connection is still open is accepted (and replaces it).
    first = password_session(stack, vid, config.broker.password, vid)
    sessions.append(first.start(LOOPBACK, stack.ports.mqtt))
    assert first.publish_acked(f"fleet/{vid}/status", b"qos1")
    channels = eventually(
        lambda: [c.get("channels", 0) for c in operator_client.request("GET", "connections") if c.get("user") == vid],
        lambda found: found != [] and found[0] > 0,
        timeout_s=10,
    )
    assert channels[0] <= prov.DeviceLimits().channels_per_connection  # the limit's premise, measured
    second = password_session(stack, vid, config.broker.password, vid)
    sessions.append(second.start(LOOPBACK, stack.ports.mqtt))
    assert second.outcome == "accepted"
    first.close()

    # With a limit of one, a second connection is refused and the first is untouched.
    single = unique_vehicle("single")
    prov.provision(
        operator_client,
        single,
        endpoints=[manager.local_endpoint(stack, tls=False)],
        config_path=tmp_path / f"{single}.toml",
        state_dir=tmp_path / single,
        password=(password := uuid.uuid4().hex),
        limits=dataclasses.replace(prov.DeviceLimits(), max_connections=1),
    )
    held = password_session(stack, single, password, single)
    sessions.append(held.start(LOOPBACK, stack.ports.mqtt))
    assert held.outcome == "accepted"
    extra = password_session(stack, single, password, single)
    sessions.append(extra.start(LOOPBACK, stack.ports.mqtt))
    assert extra.outcome == "refused: Not authorized"
    assert held.client.is_connected() and held.disconnects == []


def test_every_queue_has_byte_and_count_bounds_and_status_a_delivery_limit_and_dead_lettering(
    stack: StackConfig, operator_client: Any
) -> None:
    for spec in Topology().queues():
        queue = operator_client.queue(FLEET_VHOST, spec.name)
        assert queue is not None, spec.name
        effective = queue.get("effective_policy_definition") or {}
        assert effective == spec.limits, spec.name
        assert effective["max-length-bytes"] > 0 and effective["max-length"] > 0
    status = next(spec for spec in Topology().queues() if spec.name == STATUS_QUEUE)
    assert {"delivery-limit", "dead-letter-exchange"} <= set(status.limits)


def test_a_poison_status_is_dead_lettered_after_the_delivery_limit(stack: StackConfig, operator_client: Any) -> None:
    """The status queue's own definition (quorum, drop-head, delivery limit, dead-letter exchange) on a scratch
    queue with a limit of 2, so the running job's consumer of fleet.status is not disturbed."""
    status = next(spec for spec in Topology(delivery_limit=2).queues() if spec.name == STATUS_QUEUE)
    name, parking = f"test.status.{uuid.uuid4().hex[:8]}", f"test.parking.{uuid.uuid4().hex[:8]}"
    operator_client.put_exchange(FLEET_VHOST, parking, "fanout")
    operator_client.put_queue(FLEET_VHOST, parking, {})
    operator_client.bind(FLEET_VHOST, parking, parking, "")
    operator_client.put_queue(FLEET_VHOST, name, {"x-queue-type": "quorum"})
    operator_client.put_policy(
        FLEET_VHOST,
        name,
        pattern=f"^{name}$",
        apply_to="queues",
        definition={**status.limits, "dead-letter-exchange": parking},
        priority=10,
    )
    operator = RabbitMQ(stack).operator
    credentials = pika.PlainCredentials(operator.username, operator.password)
    params = pika.ConnectionParameters(
        host=LOOPBACK, port=stack.ports.amqp, virtual_host=FLEET_VHOST, credentials=credentials
    )
    try:
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            channel.basic_publish("", name, b"poison")
            rejected = 0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                method, _, _ = channel.basic_get(name)
                if method is None:
                    if channel.basic_get(parking, auto_ack=True)[0] is not None:
                        break
                    time.sleep(0.2)
                    continue
                channel.basic_nack(method.delivery_tag, requeue=True)  # what a crashing consumer amounts to
                rejected += 1
            else:
                pytest.fail(f"the poison status was not dead-lettered after {rejected} redeliveries")
        assert rejected == 3  # the first delivery and two redeliveries
    finally:
        operator_client.delete_policy(FLEET_VHOST, name)
        for queue in (name, parking):
            operator_client.request("DELETE", f"queues/{FLEET_VHOST}/{queue}", ok_missing=True)
        operator_client.request("DELETE", f"exchanges/{FLEET_VHOST}/{parking}", ok_missing=True)


def test_rabbitmq_serves_prometheus_metrics_on_loopback(stack: StackConfig) -> None:
    reply = requests.get(f"http://{LOOPBACK}:{stack.ports.rabbitmq_prometheus}/metrics", timeout=10)
    assert reply.status_code == 200
    assert "rabbitmq_connections" in reply.text


def test_while_the_authoriser_is_down_new_devices_are_refused_and_stack_up_brings_it_back(
    stack: StackConfig, operator_client: Any, tmp_path: Path, sessions: list[Session]
) -> None:
    import os
    import signal

    from fleetsense.stack import process

    broker = RabbitMQ(stack)
    known, fresh = unique_vehicle("known"), unique_vehicle("fresh")
    known_config = provision_vehicle(operator_client, stack, known, tmp_path)
    fresh_config = provision_vehicle(operator_client, stack, fresh, tmp_path)
    held = password_session(stack, known, known_config.broker.password, known)
    sessions.append(held.start(LOOPBACK, stack.ports.mqtt))
    assert held.outcome == "accepted"
    assert held.publish_acked(f"fleet/{known}/status", b"before")  # the channel now holds this topic's answer
    [authoriser] = process.read_pids(broker.authoriser_pid_file)
    os.kill(authoriser, signal.SIGTERM)
    try:
        eventually(lambda: process.pid_alive(authoriser), lambda alive: not alive, timeout_s=10, interval_s=0.2)
        assert broker.status().health == "authoriser down: logins without a cached answer are refused"
        # Fail closed: a device the broker has no cached answer for is refused ...
        refused = password_session(stack, fresh, fresh_config.broker.password, fresh)
        sessions.append(refused.start(LOOPBACK, stack.ports.mqtt))
        assert refused.outcome.startswith("refused: ")  # at the login question already: no answer, no login
        # ... while an open connection carries on publishing to the topics it has published to (a topic new
        # to its channel would need an answer and close the connection: see docs/gateway.md).
        assert held.publish_acked(f"fleet/{known}/status", b"still here")
    finally:
        broker.start()  # what `stack up` does: the authoriser comes back on its port, the broker is left running
    assert broker.status().health == "ok"
    again = password_session(stack, fresh, fresh_config.broker.password, fresh)
    sessions.append(again.start(LOOPBACK, stack.ports.mqtt))
    assert again.outcome == "accepted"
