"""The pure parts of the cluster's services: each host's generated settings, the status table, the CLI's and the
fault injector's argument handling, and the roles registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetsense.cli import build_parser
from fleetsense.cluster import brokers, cassandra_ring, fault, roles
from fleetsense.cluster.cli import cluster_plan
from fleetsense.cluster.endpoints import endpoints
from fleetsense.cluster.manager import HostRow, format_status
from fleetsense.cluster.plan import ClusterPlan, Role
from fleetsense.cluster.service import ServiceStatus
from fleetsense.errors import ConfigError, StackError
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.rabbitmq import RabbitMQ


@pytest.fixture
def plan(tmp_path: Path) -> ClusterPlan:
    return ClusterPlan(data_dir=tmp_path / "cluster", prefix="ut")  # no real cluster has it


def test_every_broker_lists_the_three_nodes_by_host_name_and_pauses_a_minority(plan: ClusterPlan) -> None:
    settings = brokers.cluster_settings(plan)
    assert "cluster_formation.peer_discovery_backend = classic_config" in settings
    assert [line.split(" = ")[1] for line in settings if ".classic_config.nodes." in line] == [
        "fleetsense@rmq1",
        "fleetsense@rmq2",
        "fleetsense@rmq3",
    ]
    assert "cluster_partition_handling = pause_minority" in settings


def test_a_broker_host_listens_on_its_namespace_and_shares_the_cluster_s_secrets(plan: ClusterPlan) -> None:
    node = brokers.BrokerNode(plan, plan.by_name("rmq2"))
    assert node.rabbit.node == "fleetsense@rmq2"
    env = node.rabbit.env()
    # Its peers reach its epmd and distribution port on its address: no loopback-only settings.
    assert "ERL_EPMD_ADDRESS" not in env
    assert "inet_dist_use_interface" not in env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    assert node.rabbit.config.secrets_dir.resolve() == (plan.data_dir / "secrets").resolve()
    assert brokers.operator(plan) == node.rabbit.operator  # one operator for every node


def test_the_single_node_broker_keeps_its_loopback_only_distribution(tmp_path: Path) -> None:
    env = RabbitMQ(StackConfig(data_dir=tmp_path)).env()
    assert env["ERL_EPMD_ADDRESS"] == "127.0.0.1"
    assert env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"].startswith("-kernel inet_dist_use_interface {127,0,0,1} +sbwt")
    assert RabbitMQ(StackConfig(data_dir=tmp_path)).node == "fleetsense@localhost"


def test_a_ring_node_binds_its_address_with_two_seeds_a_rack_and_bootstraps_only_on_an_old_ring(
    plan: ClusterPlan,
) -> None:
    host = plan.by_name("cas3")
    settings = cassandra_ring.ring_yaml(plan, host, new_ring=True)
    assert settings["listen_address"] == settings["rpc_address"] == "10.77.0.23"
    seeds = settings["seed_provider"][0]["parameters"][0]["seeds"]  # type: ignore[index]
    assert seeds == "10.77.0.21:7000,10.77.0.22:7000"
    assert settings["endpoint_snitch"] == "GossipingPropertyFileSnitch"
    assert settings["auto_bootstrap"] is False
    assert settings["hinted_handoff_enabled"] is True
    assert cassandra_ring.ring_yaml(plan, host, new_ring=False)["auto_bootstrap"] is True
    assert cassandra_ring.rackdc_properties(host) == "dc=dc1\nrack=rack3\n"


def test_the_keyspace_replication_is_three_per_datacenter_or_the_ring_s_size(tmp_path: Path) -> None:
    full = ClusterPlan(data_dir=tmp_path)
    assert cassandra_ring.replication(full) == "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"
    small = ClusterPlan(data_dir=tmp_path, counts={Role.CASSANDRA: 1, Role.BROKER: 3})
    assert cassandra_ring.replication(small) == "{'class': 'NetworkTopologyStrategy', 'dc1': 1}"


def test_a_node_that_does_not_answer_is_down_and_one_still_joining_is_joining() -> None:
    assert cassandra_ring.node_state(None) == "DN"
    assert cassandra_ring.node_state({"bootstrapped": "COMPLETED"}) == "UN"
    assert cassandra_ring.node_state({"bootstrapped": "IN_PROGRESS"}) == "UJ"


def test_the_endpoints_list_every_broker_and_node_for_the_job_s_settings(plan: ClusterPlan) -> None:
    found = endpoints(plan)
    assert found.amqp_hosts == "10.77.0.11,10.77.0.12,10.77.0.13"
    assert found.cassandra_hosts == "10.77.0.21,10.77.0.22,10.77.0.23"
    assert found.mqtt[0] == ("10.77.0.11", 1883)
    assert found.flink_rest == ("http://10.77.0.41:8081", "http://10.77.0.42:8081")


def test_the_status_table_has_a_row_per_host_with_its_state_pids_and_detail() -> None:
    rows = [
        HostRow(
            host="rmq1",
            role="broker",
            address="10.77.0.11",
            link="up",
            service=ServiceStatus(host="rmq1", service="rabbitmq", state="running", pids=(7, 8), detail="sees 3"),
            rss_mb=170.4,
        ),
        HostRow(host="cas1", role="cassandra", address="10.77.0.21", link="absent", service=None, rss_mb=0.0),
        HostRow(host="fleet1", role="fleet", address="10.77.0.61", link="partitioned", service=None, rss_mb=0.0),
    ]
    lines = format_status(rows).splitlines()
    assert lines[0].split() == ["HOST", "ROLE", "ADDRESS", "LINK", "SERVICE", "STATE", "PIDS", "RSS", "MiB", "DETAIL"]
    assert lines[1].split() == ["rmq1", "broker", "10.77.0.11", "up", "rabbitmq", "running", "7,8", "170", "sees", "3"]
    assert lines[2].split()[3:6] == ["absent", "-", "-"]
    assert lines[3].split()[3:6] == ["partitioned", "-", "none"]


def test_the_fault_commands_parse_their_host_service_and_duration() -> None:
    args = build_parser().parse_args(["cluster", "fault", "partition", "cas1", "--seconds", "60"])
    assert (args.cluster_action, args.fault, args.host, args.seconds) == ("fault", "partition", "cas1", 60.0)
    args = build_parser().parse_args(["cluster", "fault", "kill", "rmq2", "rabbitmq"])
    assert (args.fault, args.host, args.service) == ("kill", "rmq2", "rabbitmq")
    args = build_parser().parse_args(["cluster", "--data-dir", "/tmp/c", "fault", "shape", "tm1", "--delay-ms", "5"])
    assert (args.cluster_data_dir, args.delay_ms, args.loss_pct) == ("/tmp/c", 5.0, 0.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["cluster", "fault", "explode", "rmq1"])


def test_bad_fault_arguments_say_what_is_allowed(plan: ClusterPlan) -> None:
    with pytest.raises(ConfigError, match="--seconds must be positive"):
        fault.partition(plan, "rmq1", seconds=0)
    with pytest.raises(ConfigError, match=r"loss 0\.\.100"):
        fault.netem_args(delay_ms=10, loss_pct=150)
    assert fault.netem_args(delay_ms=50, loss_pct=1.5) == ["netem", "delay", "50ms", "loss", "1.5%"]
    node = brokers.BrokerNode(plan, plan.by_name("rmq1"))
    with pytest.raises(ConfigError, match="runs rabbitmq, not 'cassandra'"):
        fault.check_service_name(plan.by_name("rmq1"), node, "cassandra")
    with pytest.raises(ConfigError, match="no host named 'rmq9'"):
        fault.kill(plan, "rmq9")


def test_a_fault_on_a_cluster_that_is_down_says_to_bring_it_up(plan: ClusterPlan) -> None:
    with pytest.raises(StackError, match="does not exist"):
        fault.heal(plan, "cas2")


def test_the_cli_finds_the_data_dir_and_the_test_plan(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    args = build_parser().parse_args(["cluster", "--data-dir", str(tmp_path), "status"])
    assert cluster_plan(args).data_dir == tmp_path
    assert cluster_plan(args).prefix == "fs"
    monkeypatch.setenv("FLEETSENSE_TEST_PORTS_OFFSET", "300")
    args = build_parser().parse_args(["cluster", "--for-tests", "--data-dir", str(tmp_path), "status"])
    assert (cluster_plan(args).prefix, cluster_plan(args).subnet) == ("ft3", 83)
    args = build_parser().parse_args(["cluster", "status"])
    assert cluster_plan(args).data_dir.name == ".fleetsense-cluster"


def test_roles_map_to_their_service_and_a_missing_module_says_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    assert roles.service_class(Role.BROKER) is brokers.BrokerNode
    assert roles.service_class(Role.CASSANDRA) is cassandra_ring.CassandraNode
    assert roles.service_class(Role.FLEET) is None
    monkeypatch.setitem(roles.SERVICE_CLASSES, Role.ZOOKEEPER, ("fleetsense.cluster.no_such_module", "Nope"))
    with pytest.raises(roles.ServiceNotBuilt, match="not built yet"):
        roles.service_class(Role.ZOOKEEPER)
    assert not roles.built(Role.ZOOKEEPER)
