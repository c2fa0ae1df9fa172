"""The cluster's own promises: 3 broker nodes in one cluster with replicated queues and MQTT on each, a ring of 3
Cassandra nodes with RF 3, and faults that do what they say (a killed node leaves and rejoins, a partitioned host
is unreachable until healed)."""

from __future__ import annotations

import sys
from pathlib import Path

import paho.mqtt.client as mqtt
import pika
import pytest
from fleetsense.gateway.topology import TELEMETRY_QUEUE
from paho.mqtt.enums import CallbackAPIVersion

from fleetsense.cluster import brokers, cassandra_ring, fault, manager, netns
from fleetsense.cluster.endpoints import endpoints, provision_vehicle
from fleetsense.cluster.plan import ClusterPlan, Role
from fleetsense.device_config import load
from fleetsense.errors import StackError
from fleetsense.stack import process
from tests.integration.helpers import eventually, unique_vehicle


def node_names(plan: ClusterPlan) -> list[str]:
    return sorted(brokers.node_name(host) for host in plan.hosts(Role.BROKER))


def mqtt_connect_code(address: str, port: int, vehicle_id: str, password: str) -> int:
    """The CONNACK's reason code of a device login at one broker node (0: accepted)."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=vehicle_id)
    client.username_pw_set(vehicle_id, password)
    codes: list[int] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: codes.append(reason.value)
    client.connect(address, port, keepalive=10)
    client.loop_start()
    try:
        eventually(lambda: codes, bool, timeout_s=20, interval_s=0.2)
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def device(plan: ClusterPlan, tmp_path: Path) -> tuple[str, str]:
    vehicle_id = unique_vehicle("cl")
    config = load(provision_vehicle(plan, vehicle_id, out_dir=tmp_path))
    return vehicle_id, config.broker.password


def test_three_broker_nodes_form_one_cluster_with_replicated_queues(cluster: ClusterPlan) -> None:
    for host in cluster.hosts(Role.BROKER):
        assert brokers.running_nodes(cluster, host) == node_names(cluster), f"{host.name}'s view"
    assert brokers.queue_members(cluster, TELEMETRY_QUEUE) == node_names(cluster)
    assert brokers.queue_leader(cluster, TELEMETRY_QUEUE).role is Role.BROKER


def test_the_ring_has_three_normal_nodes_and_the_keyspace_three_replicas(cluster: ClusterPlan) -> None:
    assert cassandra_ring.ring_status(cluster) == {host.name: "UN" for host in cluster.hosts(Role.CASSANDRA)}
    assert cassandra_ring.keyspace_replication(cluster) == {
        "class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
        "dc1": "3",
    }


def test_every_broker_node_accepts_a_device_over_mqtt(cluster: ClusterPlan, tmp_path: Path) -> None:
    vehicle_id, password = device(cluster, tmp_path)
    for address, port in endpoints(cluster).mqtt:
        assert mqtt_connect_code(address, port, vehicle_id, password) == 0, address
    # ...and refuses a wrong password on every node alike (the users are cluster-wide).
    address, port = endpoints(cluster).mqtt[1]
    assert mqtt_connect_code(address, port, vehicle_id, "wrong") != 0


def test_status_shows_every_host_running(cluster: ClusterPlan) -> None:
    rows = {row.host: row for row in manager.status(cluster)}
    for host in cluster.hosts(Role.BROKER) + cluster.hosts(Role.CASSANDRA):
        row = rows[host.name]
        assert (row.link, row.service and row.service.state) == ("up", "running"), row
    assert "UN dc1/rack1" in (rows["cas1"].service.detail if rows["cas1"].service else "")


def test_a_full_repair_of_the_keyspace_runs_from_a_node(cluster: ClusterPlan) -> None:
    output = cassandra_ring.repair(cluster, cluster.by_name("cas1"))
    assert "Repair completed successfully" in output
    assert " DEBUG " not in output  # the tool's own logging stays out of its answer


def test_a_killed_broker_node_leaves_the_cluster_and_rejoins_after_start(cluster: ClusterPlan, tmp_path: Path) -> None:
    vehicle_id, password = device(cluster, tmp_path)
    victim, survivor = cluster.by_name("rmq3"), cluster.by_name("rmq1")
    assert fault.kill(cluster, victim.name, "rabbitmq")
    left = eventually(lambda: brokers.running_nodes(cluster, survivor), lambda n: len(n) == 2, timeout_s=60)
    assert brokers.node_name(victim) not in left
    # Two of three nodes are a majority: MQTT logins (client ids on Raft) and AMQP still work on the survivors.
    assert mqtt_connect_code(survivor.address, 1883, vehicle_id, password) == 0
    creds = brokers.operator(cluster)
    amqp = pika.BlockingConnection(
        pika.ConnectionParameters(
            host=cluster.by_name("rmq2").address,
            virtual_host="fleet",
            credentials=pika.PlainCredentials(creds.username, creds.password),
        )
    )
    assert amqp.channel().queue_declare(TELEMETRY_QUEUE, passive=True).method.queue == TELEMETRY_QUEUE
    amqp.close()
    fault.start_host(cluster, victim.name)
    eventually(lambda: brokers.running_nodes(cluster, survivor), lambda n: n == node_names(cluster), timeout_s=120)
    assert mqtt_connect_code(victim.address, 1883, vehicle_id, password) == 0


def test_a_partitioned_host_is_unreachable_until_healed(cluster: ClusterPlan) -> None:
    host = cluster.by_name("cas3")
    fault.partition(cluster, host.name, seconds=None)
    try:
        assert not netns.link_up(host)
        assert not process.port_accepts(host.address, cassandra_ring.CQL_PORT, timeout_s=2)
        # ...and it sees no one either: from inside, the first broker does not answer.
        probe = f"import socket; socket.create_connection(('{cluster.by_name('rmq1').address}', 5672), timeout=2)"
        with pytest.raises(StackError):
            netns.run(host, [sys.executable, "-c", probe], what="a connection to rmq1")
    finally:
        fault.heal(cluster, host.name)
    assert netns.link_up(host)
    eventually(lambda: cassandra_ring.ring_status(cluster), lambda s: set(s.values()) == {"UN"}, timeout_s=90)


def test_a_stopped_cassandra_host_is_down_then_normal_again_after_start(cluster: ClusterPlan) -> None:
    host = cluster.by_name("cas2")
    assert fault.stop_host(cluster, host.name)
    eventually(lambda: netns.pids(host), lambda pids: pids == [], timeout_s=10)
    assert cassandra_ring.ring_status(cluster)[host.name] == "DN"
    fault.start_host(cluster, host.name)
    eventually(lambda: cassandra_ring.ring_status(cluster), lambda s: set(s.values()) == {"UN"}, timeout_s=120)
