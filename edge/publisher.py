"""MQTT publishing with paho-mqtt: QoS 1 to the vehicle's own topic, logged in as the vehicle's broker user.

paho's network thread owns reconnects (exponential backoff set here); this module only translates its
results into our errors.
"""

from __future__ import annotations

import logging
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetsense.device_config import BrokerConfig
from fleetsense.errors import FleetsenseError

log = logging.getLogger(__name__)


class PublishError(FleetsenseError):
    """The broker refused the connection or did not acknowledge a message in time."""


class MqttPublisher:
    def __init__(self, broker: BrokerConfig, *, client_id: str) -> None:
        self.broker = broker
        self._connected = threading.Event()
        self._refusal: str | None = None
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        self._client.username_pw_set(broker.username, broker.password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.max_inflight_messages_set(32)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._pending: list[mqtt.MQTTMessageInfo] = []

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            self._refusal = str(reason)
            log.error("broker refused the connection: %s", reason)
        else:
            self._refusal = None
            self._connected.set()
            log.info("connected to %s:%d", self.broker.host, self.broker.port)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self._connected.clear()
        log.warning("disconnected from the broker (%s); paho reconnects with backoff", reason)

    def connect(self, timeout_s: float = 15.0) -> None:
        try:
            self._client.connect(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        except OSError as exc:
            raise PublishError(
                f"cannot reach the MQTT broker at {self.broker.host}:{self.broker.port}: {exc}",
                hint="check [broker] host/port in the config and that the broker runs (`fleetsense stack status`)",
            ) from exc
        self._client.loop_start()
        deadline = time.monotonic() + timeout_s
        while not self._connected.wait(0.1):
            if self._refusal is not None:
                self.close()
                raise PublishError(
                    f"the broker refused vehicle {self.broker.username!r}: {self._refusal}",
                    hint="check the username/password in the config, or re-provision the vehicle",
                )
            if time.monotonic() > deadline:
                self.close()
                raise PublishError(f"no CONNACK from {self.broker.host}:{self.broker.port} in {timeout_s:.0f} s")

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        info = self._client.publish(topic, payload, qos=1)
        self._pending.append(info)
        self._pending = [p for p in self._pending if not p.is_published()]
        return info

    def unacknowledged(self) -> int:
        self._pending = [p for p in self._pending if not p.is_published()]
        return len(self._pending)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every message published so far has its PUBACK; False if time ran out."""
        deadline = time.monotonic() + timeout_s
        while self.unacknowledged():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
