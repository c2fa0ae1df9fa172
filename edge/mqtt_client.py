"""The paho client the link makes for each connection, and the guard every paho callback runs under.

One fresh client per connection (edge/link.py says why); its settings are the device's identity, its last
will and its TLS, from the [broker] section."""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetsense.device_config import EdgeConfig
from fleetsense.ids import status_topic
from fleetsense.status import VehicleStatus

log = logging.getLogger(__name__)


def new_client(config: EdgeConfig, *, connect_timeout_s: float) -> mqtt.Client:
    broker = config.broker
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        # The vehicle id as client id: a new connection makes the broker drop a half-open old one at once.
        # (Identity and topic rights come from the username; the gateway refuses a client id other than the
        # username, so a device cannot take over another vehicle's session: docs/gateway.md.)
        client_id=config.vehicle_id,
        clean_session=True,
        protocol=mqtt.MQTTv311,
        # paho must not reconnect on its own (it would resend from its memory, and hide the loss from the
        # pacing in the link): a lost connection ends its network thread, and the link decides what comes next.
        reconnect_on_failure=False,
    )
    if broker.password:
        client.username_pw_set(broker.username, broker.password)
    # else: certificate login; a username without a password would make the broker refuse the login.
    if broker.tls:
        client.tls_set(
            ca_certs=broker.ca_file or None,
            certfile=broker.client_cert_file or None,
            keyfile=broker.client_key_file or None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    will = VehicleStatus(vehicle_id=config.vehicle_id, online=False, reason="connection lost")
    client.will_set(status_topic(config.vehicle_id), will.to_json(), qos=1)
    client.max_inflight_messages_set(config.outbox.max_inflight + 2)
    client.connect_timeout = connect_timeout_s
    return client


Callback = TypeVar("Callback", bound=Callable[..., None])


def never_raises(consequence: str) -> Callable[[Callback], Callback]:
    """A paho callback that logs instead of raising: an exception would end paho's network thread, and with it
    every PUBACK and the keepalive of this connection (issue 13: a failed delete in acknowledge() did that).
    `consequence` says what the failure costs, for the log."""

    def decorate(callback: Callback) -> Callback:
        @functools.wraps(callback)
        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except Exception:
                log.exception("%s failed (%s); the link carries on", callback.__name__, consequence)

        return guarded  # type: ignore[return-value]

    return decorate
