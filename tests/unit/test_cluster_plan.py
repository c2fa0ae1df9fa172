"""The cluster's plan: every host gets a unique name, address, namespace and an interface name Linux accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetsense.cluster.netns import hosts_file
from fleetsense.cluster.plan import MAX_PER_ROLE, ClusterPlan, Role
from fleetsense.errors import ConfigError


def full_plan(prefix: str = "fs") -> ClusterPlan:
    return ClusterPlan(data_dir=Path("/tmp/x"), prefix=prefix, counts={role: MAX_PER_ROLE for role in Role})


def test_the_default_plan_is_the_issue_s_cluster() -> None:
    plan = ClusterPlan(data_dir=Path("/tmp/x"))
    assert [h.name for h in plan.hosts(Role.BROKER)] == ["rmq1", "rmq2", "rmq3"]
    assert [h.address for h in plan.hosts(Role.CASSANDRA)] == ["10.77.0.21", "10.77.0.22", "10.77.0.23"]
    assert len(plan.hosts(Role.JOBMANAGER)) == 2
    assert plan.bridge_address == "10.77.0.1"


def test_the_largest_plan_has_unique_names_addresses_and_valid_interface_names() -> None:
    plan = full_plan("abcde")
    hosts = plan.hosts()
    assert len({h.name for h in hosts}) == len({h.address for h in hosts}) == len(hosts) == 6 * MAX_PER_ROLE
    assert plan.bridge_address not in {h.address for h in hosts}
    assert all(len(name.encode()) <= 15 for name in [plan.bridge, *(h.veth for h in hosts)])
    assert all(int(h.address.rsplit(".", 1)[1]) < 255 for h in hosts)
    assert hosts_file(plan).count("\n") == len(hosts) + 1


def test_by_name_finds_a_host_and_names_the_choices_when_it_does_not() -> None:
    plan = ClusterPlan(data_dir=Path("/tmp/x"))
    assert plan.by_name("tm2").address == "10.77.0.52"
    with pytest.raises(ConfigError) as caught:
        plan.by_name("tm7")
    assert caught.value.hint and "rmq1" in caught.value.hint


@pytest.mark.parametrize("prefix", ["", "toolong", "Fs", "f-s"])
def test_a_prefix_that_would_make_bad_interface_names_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError):
        ClusterPlan(data_dir=Path("/tmp/x"), prefix=prefix)


def test_test_clusters_move_with_the_ports_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETSENSE_TEST_PORTS_OFFSET", "600")
    moved = ClusterPlan.for_tests(Path("/tmp/x"))
    monkeypatch.setenv("FLEETSENSE_TEST_PORTS_OFFSET", "0")
    base = ClusterPlan.for_tests(Path("/tmp/x"))
    assert (moved.prefix, moved.subnet) == ("ft6", 86)
    assert (base.prefix, base.subnet) == ("ft", 80)
