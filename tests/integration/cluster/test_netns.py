"""Hosts as network namespaces, without any service: a spawned process is on its host as soon as spawn returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetsense.cluster import netns
from fleetsense.cluster.plan import ClusterPlan, Role

pytestmark = pytest.mark.cluster


def test_a_spawned_process_is_in_its_host_when_spawn_returns_and_remove_all_leaves_nothing(tmp_path: Path) -> None:
    # Its own prefix and subnet: apart from the session's cluster.
    plan = ClusterPlan(data_dir=tmp_path, prefix="ftn", subnet=199, counts={Role.FLEET: 2})
    try:
        netns.create_bridge(plan)
        for host in plan.hosts():
            netns.create_host(plan, host)
        first, second = plan.hosts()
        for attempt in range(30):
            pid = netns.spawn(first, ["sleep", "60"], env={"PATH": "/usr/bin:/bin"}, log_file=tmp_path / "s.log")
            # Before the fix the child was often still in the root namespace here, and a start-up check called
            # a healthy service dead.
            assert pid in netns.pids(first), f"attempt {attempt}: pid {pid} not yet on {first.name}"
        assert netns.pids(second) == []
        netns.set_link(first, up=False)
        assert not netns.link_up(first)
        netns.set_link(first, up=True)
        assert netns.link_up(first)
    finally:
        removed = netns.remove_all(plan)
    assert "ftn-br" in removed
    assert netns.leftovers(plan) == []
