"""Helpers shared by the integration tests: throwaway vehicles, taps on the broker, waiting on conditions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pika
from fleetsense.edge.outbox import Outbox
from fleetsense.gateway.topology import FLEET_VHOST, MQTT_EXCHANGE

from fleetsense import wire
from fleetsense.device_config import EdgeConfig, load
from fleetsense.stack import manager
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.rabbitmq import RabbitMQ

T = TypeVar("T")


def unique_vehicle(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def provision_vehicle(client: Any, stack: StackConfig, vehicle_id: str, tmp_path: Path) -> EdgeConfig:
    return load(manager.provision_vehicle(stack, client, vehicle_id, out_dir=tmp_path))


def eventually(probe: Callable[[], T], done: Callable[[T], bool], *, timeout_s: float, interval_s: float = 1.0) -> T:
    """Poll `probe` until `done(result)`; return the last result either way, so the assertion shows it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(interval_s)


def outbox_batches(config: EdgeConfig) -> list[wire.Batch]:
    """What the vehicle's outbox holds right now, decoded."""
    box = Outbox(config.state_dir / "outbox", max_bytes=config.outbox.max_bytes)
    try:
        return [wire.decode(entry.payload) for entry in box.pending(limit=100_000)]
    finally:
        box.close()


def expected_keys(batches: list[wire.Batch], kind: wire.Kind) -> set[tuple[int, int]]:
    return {(b.seq, i) for b in batches if b.kind == kind for i in range(len(b.samples))}


class Tap:
    """A durable queue bound to one vehicle's topics, read with the operator's credentials: what the broker
    routed, in the order it routed it."""

    def __init__(self, stack: StackConfig, client: Any, vehicle_id: str) -> None:
        self.stack = stack
        self.name = f"test.tap.{vehicle_id}"
        client.put_queue(FLEET_VHOST, self.name, {})
        client.bind(FLEET_VHOST, MQTT_EXCHANGE, self.name, f"fleet.{vehicle_id}.*")
        self.received: list[tuple[str, bytes]] = []

    def drain(self) -> list[tuple[str, bytes]]:
        operator = RabbitMQ(self.stack).operator
        params = pika.ConnectionParameters(
            host=LOOPBACK,
            port=self.stack.ports.amqp,
            virtual_host=FLEET_VHOST,
            credentials=pika.PlainCredentials(operator.username, operator.password),
        )
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            while True:
                method, _, body = channel.basic_get(self.name, auto_ack=True)
                if method is None:
                    break
                self.received.append((method.routing_key, body))
        return self.received

    def telemetry(self) -> list[wire.Batch]:
        return [wire.decode(body) for key, body in self.drain() if key.endswith(".telemetry")]

    def statuses(self) -> list[bytes]:
        return [body for key, body in self.drain() if key.endswith(".status")]


@contextmanager
def tap(stack: StackConfig, client: Any, vehicle_id: str) -> Iterator[Tap]:
    t = Tap(stack, client, vehicle_id)
    try:
        yield t
    finally:
        client.request("DELETE", f"queues/{FLEET_VHOST}/{t.name}", ok_missing=True)
