"""MQTT over TLS: devices verify the broker's certificate; the secure profile has no plain MQTT at all."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from fleetsense.edge.runtime import send_outbox
from fleetsense.sim.virtual_drive import record_drive

from fleetsense.device_config import load
from fleetsense.stack import manager
from fleetsense.stack.layout import LOOPBACK, Ports, StackConfig
from fleetsense.stack.process import port_accepts
from fleetsense.stack.rabbitmq import RabbitMQ
from fleetsense.stack.tls import ensure_local_ca

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
    secure = replace(
        StackConfig.for_tests(tmp_path / "secure"), ports=Ports.for_tests().offset(100), name="fleetsense-secure"
    )
    secure = replace(secure, profile="secure")
    broker = RabbitMQ(secure)
    try:
        broker.start()
        assert port_accepts(LOOPBACK, secure.ports.mqtts)
        assert not port_accepts(LOOPBACK, secure.ports.mqtt)
    finally:
        broker.stop()
