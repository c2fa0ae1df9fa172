"""The broker topology as data, applied idempotently by `fleetsense gateway apply` (and `stack up`).

Every setting lives here, versioned with the code: the vhost, the exchanges, the quorum queues and their
bindings, and the policies that bound them. Nothing accepted may vanish silently:
- telemetry queue full -> reject-publish: the broker withholds the PUBACK, the vehicle keeps the batch in
  its outbox and retries (backpressure, not loss);
- a message no binding routes -> the alternate exchange of amq.topic -> `fleet.unroutable`;
- a message redelivered `delivery-limit` times (a poison message) -> `fleet.dead-letter`; no delivery limit
  exists without that dead-letter target;
- every queue is bounded in bytes and in messages (each message costs broker memory whatever its size).

The live feed (docs/service.md, "Live events"): the job publishes each stored event to the topic exchange
`fleet.events` (routing key `<kind>.<vehicle_id>`); each API process reads it through a server-named, exclusive,
auto-delete queue of its own, so the feed holds nothing for an API that is not running.

Status has its own dead-letter queue: a full status queue drops its oldest, and a quorum queue dead-letters
what it drops, so a backlog of old statuses would otherwise fill the telemetry's poison-message queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fleetsense.gateway.management import ManagementClient

FLEET_VHOST = "fleet"
MQTT_EXCHANGE = "amq.topic"  # where the MQTT plugin publishes; MQTT `/` becomes `.` in routing keys
TELEMETRY_QUEUE = "fleet.telemetry"
STATUS_QUEUE = "fleet.status"
UNROUTABLE_EXCHANGE = UNROUTABLE_QUEUE = "fleet.unroutable"
DEAD_LETTER_EXCHANGE = DEAD_LETTER_QUEUE = "fleet.dead-letter"
STATUS_DEAD_LETTER_EXCHANGE = STATUS_DEAD_LETTER_QUEUE = "fleet.status.dead-letter"
REPLAY_PREFIX = "fleet.replay.r"  # + a result version: its exchange and queue (replay_queue)
REPLAY_QUEUES = re.escape(REPLAY_PREFIX) + "[0-9]+"
EVENTS_EXCHANGE = "fleet.events"  # the job's setting events_exchange and the API's ServeSettings name it too
FLINK_USER = "fleetsense-flink"
SERVICE_USER = "fleetsense-service"  # the API's: reads the live feed, nothing else
SERVER_NAMED_QUEUES = r"amq\.gen-.*"  # what the broker names a queue declared without a name
POLICY_PREFIX = "fleetsense-"

MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True, kw_only=True)
class QueueSpec:
    name: str
    exchange: str
    binding_key: str
    # Bounds and failure handling, applied as a policy so they can change without re-declaring the queue.
    limits: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Topology:
    # A batch is ~1 KB (1 s of 100 Hz samples): 2 GiB is about 2 million batches, hours of a large fleet.
    telemetry_max_bytes: int = 2 * GIB
    telemetry_max_length: int = 4_000_000
    # A status is a few hundred bytes: 100,000 of them is the newest of every vehicle many times over.
    status_max_length: int = 100_000
    status_max_bytes: int = 128 * MIB
    parking_max_bytes: int = GIB  # each of unroutable and dead-letter
    parking_max_length: int = 1_000_000
    status_parking_max_bytes: int = 64 * MIB
    status_parking_max_length: int = 100_000
    delivery_limit: int = 20

    def exchanges(self) -> list[tuple[str, str]]:
        parking = [
            (name, "fanout") for name in (UNROUTABLE_EXCHANGE, DEAD_LETTER_EXCHANGE, STATUS_DEAD_LETTER_EXCHANGE)
        ]
        return [*parking, (EVENTS_EXCHANGE, "topic")]

    def queues(self) -> list[QueueSpec]:
        return [
            QueueSpec(
                name=TELEMETRY_QUEUE,
                exchange=MQTT_EXCHANGE,
                binding_key="fleet.*.telemetry",
                limits=self.telemetry_limits(),
            ),
            # Only the newest status of a vehicle matters: a full status queue drops its oldest, so status
            # can never hold back a vehicle's connection (and with it, its telemetry).
            QueueSpec(
                name=STATUS_QUEUE,
                exchange=MQTT_EXCHANGE,
                binding_key="fleet.*.status",
                limits={
                    **bounds(self.status_max_bytes, self.status_max_length, overflow="drop-head"),
                    "delivery-limit": self.delivery_limit,
                    "dead-letter-exchange": STATUS_DEAD_LETTER_EXCHANGE,
                },
            ),
            QueueSpec(
                name=UNROUTABLE_QUEUE,
                exchange=UNROUTABLE_EXCHANGE,
                binding_key="",
                limits=bounds(self.parking_max_bytes, self.parking_max_length, overflow="reject-publish"),
            ),
            QueueSpec(
                name=DEAD_LETTER_QUEUE,
                exchange=DEAD_LETTER_EXCHANGE,
                binding_key="",
                limits=bounds(self.parking_max_bytes, self.parking_max_length, overflow="reject-publish"),
            ),
            # Old statuses are worth less than new ones here too: the newest dead ones are kept.
            QueueSpec(
                name=STATUS_DEAD_LETTER_QUEUE,
                exchange=STATUS_DEAD_LETTER_EXCHANGE,
                binding_key="",
                limits=bounds(self.status_parking_max_bytes, self.status_parking_max_length, overflow="drop-head"),
            ),
        ]

    def telemetry_limits(self) -> dict[str, Any]:
        """A telemetry queue's bounds (full: refuse, so devices keep the batch) and its poison-message handling."""
        return {
            **bounds(self.telemetry_max_bytes, self.telemetry_max_length, overflow="reject-publish"),
            "delivery-limit": self.delivery_limit,
            "dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        }

    def consumed_by_jobs(self) -> list[str]:
        """Regular expressions of the queues the jobs read: the fleet's, and every result version's replay."""
        return [re.escape(TELEMETRY_QUEUE), re.escape(STATUS_QUEUE), REPLAY_QUEUES]

    def replay_queue(self, version: int) -> QueueSpec:
        """A reprocessing job's input (docs/reprocessing.md): the retained log, fed in order by the replay, through
        an exchange of its own so each batch keeps the routing key naming its vehicle. The feeder keeps it short
        (it waits while the queue is long); the bounds are a backstop that refuses, never drops."""
        name = replay_queue(version)
        return QueueSpec(
            name=name,
            exchange=name,
            binding_key="#",
            limits=self.telemetry_limits(),
        )


def replay_queue(version: int) -> str:
    if version < 2:
        raise ValueError(f"result version {version}: replays make versions 2 and up (1 is the first live one)")
    return f"{REPLAY_PREFIX}{version}"


def bounds(max_bytes: int, max_length: int, *, overflow: str) -> dict[str, Any]:
    """Both bounds of a queue, and what happens at either."""
    return {"max-length-bytes": max_bytes, "max-length": max_length, "overflow": overflow}


def apply(client: ManagementClient, *, operator: str, topology: Topology | None = None) -> None:
    topology = topology or Topology()
    client.put_vhost(FLEET_VHOST)
    client.put_permissions(FLEET_VHOST, operator, configure=".*", write=".*", read=".*")
    for name, kind in topology.exchanges():
        client.put_exchange(FLEET_VHOST, name, kind)
    for spec in topology.queues():
        put_queue(client, spec)
    client.put_policy(
        FLEET_VHOST,
        f"{POLICY_PREFIX}amq.topic",
        pattern=f"^{re.escape(MQTT_EXCHANGE)}$",
        apply_to="exchanges",
        definition={"alternate-exchange": UNROUTABLE_EXCHANGE},
    )


def put_queue(client: ManagementClient, spec: QueueSpec) -> None:
    # Quorum: replicated and durable on a cluster; on one node it still survives broker restarts.
    client.put_queue(FLEET_VHOST, spec.name, {"x-queue-type": "quorum"})
    client.bind(FLEET_VHOST, spec.exchange, spec.name, spec.binding_key)
    client.put_policy(
        FLEET_VHOST,
        f"{POLICY_PREFIX}{spec.name}",
        pattern=f"^{re.escape(spec.name)}$",
        apply_to="queues",
        definition=spec.limits,
    )


def ensure_replay_queue(client: ManagementClient, version: int, topology: Topology | None = None) -> str:
    spec = (topology or Topology()).replay_queue(version)
    client.put_exchange(FLEET_VHOST, spec.exchange, "topic")
    put_queue(client, spec)
    return spec.name


def remove_replay_queue(client: ManagementClient, version: int) -> None:
    """Once the version is live or dropped: its queue, exchange and policy."""
    name = replay_queue(version)
    client.delete_policy(FLEET_VHOST, f"{POLICY_PREFIX}{name}")
    client.delete_queue(FLEET_VHOST, name)
    client.delete_exchange(FLEET_VHOST, name)


def ensure_flink_user(client: ManagementClient, password: str, topology: Topology | None = None) -> None:
    """The job's own user: it may consume from the fleet queues and publish to the live feed's exchange, nothing
    else (it declares nothing: `apply` does)."""
    topology = topology or Topology()
    client.put_user(FLINK_USER, password)
    queues = "|".join(topology.consumed_by_jobs())
    client.put_permissions(
        FLEET_VHOST, FLINK_USER, configure="^$", write=f"^{re.escape(EVENTS_EXCHANGE)}$", read=f"^({queues})$"
    )


def ensure_service_user(client: ManagementClient, password: str) -> None:
    """The API's user: it may declare a server-named queue of its own (exclusive, auto-delete: declaring needs
    configure on it), bind it to the live feed's exchange (write on the queue, read on the exchange) and consume
    from it (read on the queue). It can neither publish nor read the fleet's queues."""
    client.put_user(SERVICE_USER, password)
    client.put_permissions(
        FLEET_VHOST,
        SERVICE_USER,
        configure=f"^{SERVER_NAMED_QUEUES}$",
        write=f"^{SERVER_NAMED_QUEUES}$",
        read=f"^({SERVER_NAMED_QUEUES}|{re.escape(EVENTS_EXCHANGE)})$",
    )
