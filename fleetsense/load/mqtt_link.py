"""One MQTT connection of the load generator, as an asyncio protocol: CONNECT when the TCP connection opens, then
whatever the owner writes; CONNACK resolves `connack`, each PUBACK and the loss of the connection are reported
through callbacks. Reconnecting, in-flight windows and resends are the owner's (runner.py).

Hand-written rather than aiomqtt because it is measured to be needed (bench/mqtt_client.py, 2,000 vehicles): at
the load's real pattern it takes 0.15 of a core where aiomqtt takes 0.36, 35 MiB where aiomqtt takes 192 MiB, and
publishes 13,000 messages/s where aiomqtt manages 2,900 (less than the 4,000/s of 2,000 vehicles with barometer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetsense.load.mqtt_packets import CONNACK, PINGRESP, PUBACK, U16, PacketReader, connect_packet


@dataclass(frozen=True)
class Login:
    client_id: str
    username: str
    password: str


class MqttLink(asyncio.Protocol):
    def __init__(
        self,
        login: Login,
        *,
        keepalive_s: int,
        on_puback: Callable[[int], None],
        on_lost: Callable[[MqttLink], None],
        on_error: Callable[[str], None],
    ) -> None:
        self.login, self.keepalive_s = login, keepalive_s
        self.on_puback, self.on_lost, self.on_error = on_puback, on_lost, on_error
        self.reader = PacketReader()
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.connack.add_done_callback(_retrieve)  # a CONNACK nobody waits for any more must not warn
        self.last_write = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        login = self.login
        self.write(connect_packet(login.client_id, login.username, login.password, keepalive_s=self.keepalive_s))

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)
            self.last_write = time.monotonic()

    def data_received(self, data: bytes) -> None:
        try:
            packets = self.reader.feed(data)
        except ValueError as exc:
            self.on_error(f"malformed packet from the broker: {exc}")
            self.abort()
            return
        for kind, body in packets:
            if kind == PUBACK and len(body) == 2:
                self.on_puback(U16.unpack(body)[0])
            elif kind == CONNACK and len(body) == 2 and not self.connack.done():
                self.connack.set_result(body[1])
            elif kind != PINGRESP:
                self.on_error(f"unexpected MQTT packet type {kind} from the broker")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connack.done():
            self.connack.set_exception(ConnectionError(f"closed before CONNACK ({exc or 'by the broker'})"))
        self.transport = None
        self.on_lost(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _retrieve(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()
