"""MQTT over TLS: devices verify the broker's certificate; the secure profile has no plain MQTT at all."""

from __future__ import annotations

import ssl
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from fleetsense.edge.runtime import send_outbox
from fleetsense.gateway import provision

from fleetsense.device_config import EdgeConfig, load
from fleetsense.load.virtual_drive import record_drive
from fleetsense.stack import manager
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.process import port_accepts
from fleetsense.stack.rabbitmq import RabbitMQ
from fleetsense.stack.tls import ensure_local_ca, issue_client_cert

from .helpers import tap, unique_vehicle


def test_an_agent_publishes_over_tls_verifying_the_broker(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("tls")
    config = load(manager.provision_vehicle(stack, operator_client, vid, out_dir=tmp_path, tls=True))
    assert config.broker.tls and config.broker.port == stack.ports.mqtts
    with tap(stack, operator_client, vid) as t:
        record_drive(config, seconds=2)
        assert send_outbox(config, timeout_s=30) == 0
        assert len(t.telemetry()) >= 3


def test_a_device_that_does_not_trust_the_brokers_ca_cannot_connect(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("tls")
    config = load(manager.provision_vehicle(stack, operator_client, vid, out_dir=tmp_path, tls=True))
    stranger_ca = ensure_local_ca(tmp_path / "other-ca").ca_cert  # a different CA, same host names
    client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2, client_id=vid)
    client.username_pw_set(vid, config.broker.password)
    client.tls_set(ca_certs=str(stranger_ca), cert_reqs=ssl.CERT_REQUIRED)
    with pytest.raises(ssl.SSLError):
        client.connect("localhost", stack.ports.mqtts)


def test_the_secure_profile_closes_plain_mqtt(stack: StackConfig, tmp_path: Path) -> None:
    # Beside the session's stack (its ports moved by 50, its own node name), so parallel checkouts never meet.
    base = StackConfig.for_tests(tmp_path / "secure")
    secure = replace(base, ports=base.ports.offset(50), name=f"{base.name}-secure", profile="secure")
    broker = RabbitMQ(secure)
    try:
        broker.start()
        assert port_accepts(LOOPBACK, secure.ports.mqtts)
        assert not port_accepts(LOOPBACK, secure.ports.mqtt)
    finally:
        broker.stop()


def _cert_client(stack: StackConfig, config: EdgeConfig, cert: Path, key: Path) -> paho.Client:
    client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2, client_id=config.vehicle_id)
    client.tls_set(ca_certs=config.broker.ca_file, certfile=str(cert), keyfile=str(key), cert_reqs=ssl.CERT_REQUIRED)
    return client


def _connect_outcome(client: paho.Client, port: int) -> str:
    """'accepted', 'refused: <reason>' or 'tls: <error>' for one CONNECT (no username: certificate login)."""
    result: dict[str, str] = {}
    done = threading.Event()

    def on_connect(c: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        result["outcome"] = f"refused: {reason}" if reason.is_failure else "accepted"
        done.set()

    def on_disconnect(c: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        result.setdefault("outcome", f"closed: {reason}")
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect("localhost", port, keepalive=10)
    except (ssl.SSLError, OSError) as exc:
        return f"tls: {exc}"
    client.loop_start()
    try:
        done.wait(10)
        return result.get("outcome", "no answer")
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_device_logs_in_with_its_client_certificate_and_publishes_only_as_itself(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("cert")
    config = load(manager.provision_vehicle(stack, operator_client, vid, out_dir=tmp_path, client_cert=True))
    assert config.broker.uses_client_cert and not config.broker.password and config.broker.tls
    assert Path(config.broker.client_key_file).stat().st_mode & 0o777 == 0o600
    with tap(stack, operator_client, vid) as t:
        record_drive(config, seconds=2)
        assert send_outbox(config, timeout_s=30) == 0
        assert len(t.telemetry()) >= 3
    # The certificate carries no rights beyond its own vehicle's topics.
    other = unique_vehicle("cert-other")
    manager.provision_vehicle(stack, operator_client, other, out_dir=tmp_path)
    cert, key = Path(config.broker.client_cert_file), Path(config.broker.client_key_file)
    assert mqtt_outcome_of_publish(stack, config, cert, key, f"fleet/{other}/telemetry") == "closed"
    # A certificate-only user has no password: an empty one is refused on the plain listener.
    assert _plain_login(stack, vid, "") != "accepted"


def mqtt_outcome_of_publish(stack: StackConfig, config: EdgeConfig, cert: Path, key: Path, topic: str) -> str:
    client = _cert_client(stack, config, cert, key)
    closed = threading.Event()
    client.on_disconnect = lambda *args: closed.set()
    client.connect("localhost", stack.ports.mqtts, keepalive=10)
    client.loop_start()
    try:
        info = client.publish(topic, b"not mine", qos=1)
        for _ in range(50):
            if info.is_published():
                return "acked"
            if closed.wait(0.1):
                return "closed"
        return "no puback"
    finally:
        client.disconnect()
        client.loop_stop()


def _plain_login(stack: StackConfig, username: str, password: str) -> str:
    client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2, client_id=username)
    client.username_pw_set(username, password)
    return _connect_outcome(client, stack.ports.mqtt)


def test_a_revoked_or_foreign_certificate_cannot_log_in(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("cert")
    config = load(manager.provision_vehicle(stack, operator_client, vid, out_dir=tmp_path, client_cert=True))
    cert, key = Path(config.broker.client_cert_file), Path(config.broker.client_key_file)
    assert _connect_outcome(_cert_client(stack, config, cert, key), stack.ports.mqtts) == "accepted"

    # The same common name, signed by a CA the broker does not trust: the TLS handshake fails.
    foreign = tmp_path / "foreign"
    issue_client_cert(foreign, vid, foreign / "c.pem", foreign / "k.pem")
    foreign_outcome = _connect_outcome(
        _cert_client(stack, config, foreign / "c.pem", foreign / "k.pem"), stack.ports.mqtts
    )
    assert foreign_outcome != "accepted"

    provision.revoke(operator_client, vid)
    assert _connect_outcome(_cert_client(stack, config, cert, key), stack.ports.mqtts) != "accepted"
