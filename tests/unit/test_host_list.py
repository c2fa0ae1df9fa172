"""Host lists in the job's amqp_host / cassandra_host (the same cases as the connector's HostListTest), and the
Python writer's driver Cluster built from one: every node a contact point, the local datacenter named."""

from __future__ import annotations

import pytest
from fleetsense.cloud.cassandra_session import open_cluster
from fleetsense.cloud.host_list import parse_host_list
from fleetsense.cloud.job_settings import IngestJobSettings

from fleetsense.errors import ConfigError


def test_one_host_is_the_single_node_form() -> None:
    assert parse_host_list("127.0.0.1", what="h") == ("127.0.0.1",)
    assert parse_host_list("localhost", what="h") == ("localhost",)


def test_a_list_keeps_its_order_and_ignores_spaces_around_commas() -> None:
    assert parse_host_list("10.77.0.11, 10.77.0.12 ,rmq3", what="h") == ("10.77.0.11", "10.77.0.12", "rmq3")


@pytest.mark.parametrize("bad", ["", " ", "a,,b", "a,", "10.0.0.256", "10.0.0", "h:5672", "-h", "a b", "a_b", "a,b,a"])
def test_bad_entries_are_refused_with_the_setting_named(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"^the hosts") as err:
        parse_host_list(bad, what="the hosts")
    assert err.value.hint


def _settings(**changes: str) -> IngestJobSettings:
    values = {
        "amqp_host": "10.77.0.11,10.77.0.12,10.77.0.13",
        "amqp_port": 5672,
        "amqp_vhost": "fleet",
        "amqp_username": "u",
        "amqp_password": "p",
        "amqp_queue": "q",
        "cassandra_host": "10.77.0.21,10.77.0.22,10.77.0.23",
        "cassandra_port": 9042,
        "keyspace": "k",
        "connector_jar": "j",
    }
    return IngestJobSettings(**(values | changes))  # type: ignore[arg-type]


def test_the_job_settings_take_lists_and_refuse_a_bad_one_before_anything_is_submitted() -> None:
    assert _settings().cassandra_local_dc == "datacenter1"  # the single node's
    with pytest.raises(ConfigError, match="amqp_host"):
        _settings(amqp_host="10.77.0.11;10.77.0.12")
    with pytest.raises(ConfigError, match="cassandra_host"):
        _settings(cassandra_host="10.77.0.21:9042")
    assert _settings().with_overrides({"cassandra_local_dc": "dc1"}).cassandra_local_dc == "dc1"


def test_the_python_writer_knows_every_node_and_writes_to_the_local_datacenter() -> None:
    cluster = open_cluster(("10.77.0.21,10.77.0.22,10.77.0.23", 9042), local_dc="dc1")
    try:
        assert list(cluster.contact_points) == ["10.77.0.21", "10.77.0.22", "10.77.0.23"]
        policy = cluster.profile_manager.default.load_balancing_policy
        assert policy._child_policy.local_dc == "dc1"  # token-aware around a DC-aware round robin
    finally:
        cluster.shutdown()
