"""The broker's side of the live feed (gateway/topology.py): the exchange is declared with the topology, the job's
user may publish to it and nowhere else, the API's user may only make, bind and read a server-named queue of its own."""

from __future__ import annotations

import re
from typing import Any

from fleetsense.gateway import topology
from fleetsense.gateway.topology import (
    EVENTS_EXCHANGE,
    FLEET_VHOST,
    FLINK_USER,
    SERVICE_USER,
    STATUS_QUEUE,
    TELEMETRY_QUEUE,
    Topology,
)


class Recorder:
    def __init__(self) -> None:
        self.permissions: dict[str, dict[str, str]] = {}
        self.users: list[str] = []

    def put_user(self, username: str, password: str, tags: str = "") -> None:
        self.users.append(username)

    def put_permissions(self, vhost: str, username: str, **which: Any) -> None:
        assert vhost == FLEET_VHOST
        self.permissions[username] = which


def may(permissions: dict[str, str], what: str, resource: str) -> bool:
    return re.fullmatch(permissions[what], resource) is not None  # RabbitMQ anchors with the ^...$ we write


def test_the_events_exchange_is_a_durable_topic_exchange_of_the_topology() -> None:
    assert (EVENTS_EXCHANGE, "topic") in Topology().exchanges()


def test_the_jobs_user_may_publish_live_events_and_still_only_read_its_queues() -> None:
    client = Recorder()
    topology.ensure_flink_user(client, "pw")  # type: ignore[arg-type]
    flink = client.permissions[FLINK_USER]
    assert may(flink, "write", EVENTS_EXCHANGE)
    assert not may(flink, "write", "amq.topic") and not may(flink, "write", TELEMETRY_QUEUE)
    assert not may(flink, "configure", EVENTS_EXCHANGE)
    assert may(flink, "read", TELEMETRY_QUEUE) and may(flink, "read", STATUS_QUEUE)


def test_the_services_user_may_only_declare_bind_and_read_a_server_named_queue_on_the_events_exchange() -> None:
    client = Recorder()
    topology.ensure_service_user(client, "pw")  # type: ignore[arg-type]
    assert client.users == [SERVICE_USER]
    service = client.permissions[SERVICE_USER]
    own = "amq.gen-JzTY20BRgKO-HjmUJj0wLg"
    assert may(service, "configure", own) and may(service, "write", own) and may(service, "read", own)
    assert may(service, "read", EVENTS_EXCHANGE)  # binding to it
    assert not may(service, "write", EVENTS_EXCHANGE)  # it cannot forge events
    for queue in (TELEMETRY_QUEUE, STATUS_QUEUE, "amq.gen"):
        assert not may(service, "read", queue) and not may(service, "configure", queue)
