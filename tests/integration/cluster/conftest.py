"""The cluster group's session fixture: the whole plan (3 brokers, 3 Cassandra nodes, ZooKeeper, the JobManagers
and TaskManagers once their services exist) up once, in namespaces named by $FLEETSENSE_TEST_PORTS_OFFSET, and down
at the end with nothing left. Every test here carries the `cluster` marker (`pytest -m cluster` runs the group)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetsense.cluster import manager, netns, roles
from fleetsense.cluster.plan import ClusterPlan, Role
from fleetsense.errors import FleetsenseError
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.prepare import prepare
from fleetsense.stack.process import pid_alive
from tests.integration.conftest import test_data_dir

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)


def submit_ingest_job(plan: ClusterPlan) -> str | None:
    """The ingest job on the cluster, once the flink helper's service exists (fleetsense.cluster.flink_ha)."""
    if not roles.built(Role.JOBMANAGER):
        return None
    from fleetsense.cluster import flink_ha

    submit = getattr(flink_ha, "submit_ingest_job", None)
    if submit is None:
        pytest.fail("fleetsense.cluster.flink_ha has no submit_ingest_job(plan) -> job id: wire the job here")
    return str(submit(plan))


def cluster_data_dir() -> Path:
    """Beside the single-node stack's test dir, not in it: the `stack` fixture empties its dir when it starts,
    which must not pull the disks from under a cluster of the same session."""
    stack_dir = test_data_dir()
    return stack_dir.with_name(f"{stack_dir.name}-cluster")


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterPlan]:
    plan = ClusterPlan.for_tests(cluster_data_dir())
    try:
        netns.require_root()
        manager.down(plan, say=lambda _: None)  # what a killed run left
        shutil.rmtree(plan.data_dir, ignore_errors=True)
        prepare(StackConfig.for_tests(test_data_dir()), say=lambda _: None)  # the Cassandra and Flink jars
        started = time.monotonic()
        manager.up(plan, say=lambda _: None)
        submit_ingest_job(plan)
        print(f"\ncluster up (cold) in {time.monotonic() - started:.0f} s")
    except FleetsenseError as exc:
        pytest.fail(f"the test cluster did not come up:\n{exc.render()}", pytrace=False)
    yield plan
    pids = [pid for host in plan.hosts() for pid in netns.pids(host)]
    manager.down(plan, say=lambda _: None)
    assert netns.leftovers(plan) == [], "`cluster down` left namespaces or links"
    left = [pid for pid in pids if pid_alive(pid)]
    assert not left, f"`cluster down` left processes running: {left}"
