"""Fault scenarios on the real cluster, each with a fleet driving scripted drives whose events are known: a fault is
injected while the vehicles send, and each scenario ends with the verdict (every vehicle's seqs contiguous and each
once, samples stored = sent, events = ground truth, nothing counted twice) and the time until the pipeline was
current again, from the fault's end and from its injection. Each scenario's row goes to
<test data dir>/fault-results.json; docs/faults.md gives the table (`python -m fleetsense.cluster.verdict <file>`
renders it)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.gateway.topology import TELEMETRY_QUEUE

from fleetsense.cluster import brokers, cassandra_ring, fault, flink_ha, job, netns
from fleetsense.cluster.endpoints import provision_vehicle
from fleetsense.cluster.plan import ClusterPlan, Host, Role
from fleetsense.cluster.verdict import ScenarioRecord

from .. import conftest as integration
from .fault_ops import (
    analysis_hosts,
    as_running,
    session_on,
    source_hosts,
    wait_brokers_in_sync,
    wait_job_running,
    wait_replica_complete,
)
from .ground_truth import CatchUp, Fleet, FleetRun, judge, prepare_fleet, record, time_until_current

pytestmark = pytest.mark.cluster

FLEET_SIZE = 12
SPEED = 2.0  # drive seconds per wall second: the 175 s drive lasts ~88 s, so traffic flows through each fault
BEFORE_FAULT = 0.2  # of every vehicle's drive produced before the fault is injected
OUTAGE_S = 20.0  # how long a killed process stays dead before it is restarted (as a supervisor would)
# The issue asks for 60 s partitions: longer than every failure detector here (RabbitMQ's net_ticktime 15 s, the
# job's AMQP heartbeat 5 s, Flink's heartbeat 10 s, ZooKeeper's session 6 s), so each partition is noticed and
# healed. $FLEETSENSE_FAULT_PARTITION_S shortens them for a quick run.
PARTITION_S = float(os.environ.get("FLEETSENSE_FAULT_PARTITION_S", "60"))
RECOVERY_TIMEOUT_S = 300.0
NO_LOSS = "no acknowledged batch lost; every sample and event stored once"


@dataclass(frozen=True)
class Fault:
    description: str  # what was done, to what
    ended_wall_s: float  # when it ended (heal, restart), or when it was injected if it has no end


Inject = Callable[[], Fault]


@pytest.fixture(scope="module")
def plan(cluster: ClusterPlan) -> ClusterPlan:
    # The session's cluster (conftest.py): up once, the ingest job running; with the TaskManagers an earlier module's
    # rescale added (the job may run there: a fault on "the host reading the queue" then has to find it).
    return as_running(cluster)


@pytest.fixture(scope="module")
def cql(plan: ClusterPlan) -> Iterator[Any]:
    with session_on(plan) as session:
        yield session


def fleet_host(plan: ClusterPlan) -> Host:
    return plan.hosts(Role.FLEET)[0]


def run_scenario(
    plan: ClusterPlan,
    cql: Any,
    tmp_path: Path,
    *,
    scenario: str,
    seed: int,
    inject: Inject,
    promise: str = NO_LOSS,
    after: Callable[[Fleet], tuple[bool, str]] | None = None,
) -> tuple[Fleet, ScenarioRecord]:
    """Prepare a fleet, start it on the fleet host, inject the fault once traffic flows, measure the time until
    current, let the drives finish, judge, record; the record's assertions come last so the row is always written."""
    started = time.monotonic()

    def provision(vehicle_id: str, out_dir: Path) -> Path:
        return provision_vehicle(plan, vehicle_id, out_dir=out_dir)

    fleet = prepare_fleet(provision, tmp_path, count=FLEET_SIZE, prefix=f"f{seed}", seed=seed)
    run = FleetRun(fleet, exec_prefix=netns.exec_prefix(fleet_host(plan)), speed=SPEED, timeout_s=900).start()
    try:
        run.wait_produced(BEFORE_FAULT)
        injected_wall_s = time.time()
        catch_up = CatchUp(
            cql, fleet, run.produced_marks(), since_wall_s=injected_wall_s, timeout_s=RECOVERY_TIMEOUT_S + PARTITION_S
        )
        injected = inject()
        marks = run.produced_marks()
        recovery_s = time_until_current(
            cql, fleet, marks, since_wall_s=injected.ended_wall_s, timeout_s=RECOVERY_TIMEOUT_S
        )
        from_injection_s = catch_up.seconds(wait_s=RECOVERY_TIMEOUT_S)
        run.wait(RECOVERY_TIMEOUT_S + 300)
    finally:
        run.stop()
    verdicts = judge(cql, fleet)
    after_ok, notes = after(fleet) if after else (True, "")  # a scenario's own check, noted in its row
    result = record(
        integration.test_data_dir(),
        fleet,
        verdicts,
        scenario=scenario,
        fault=injected.description,
        promise=promise,
        recovery_s=recovery_s,
        started_monotonic=started,
        notes=notes,
        fault_s=injected.ended_wall_s - injected_wall_s,
        from_injection_s=from_injection_s,
    )
    assert after_ok, f"{scenario}: {notes}"
    assert recovery_s is not None, f"{scenario}: the pipeline never caught up with the fleet ({result})"
    assert result.passed and result.lost == 0 and result.duplicated == 0, result
    return fleet, result


def kill_and_restart(plan: ClusterPlan, host: Host, service: str, *, outage_s: float = OUTAGE_S) -> Fault:
    """`fleetsense cluster fault kill <host> <service>`, then `fault start <host>` after the outage."""
    pids = fault.kill(plan, host.name, service)
    assert pids, f"nothing of {service} ran on {host.name}"
    time.sleep(outage_s)
    fault.start_host(plan, host.name)
    return Fault(f"SIGKILL {service} on {host.name}, restarted {outage_s:.0f} s later", time.time())


def power_cycle(plan: ClusterPlan, host: Host, *, outage_s: float = OUTAGE_S) -> str:
    """`fault stop <host>` (every process on it), then `fault start <host>` after the outage."""
    killed = fault.stop_host(plan, host.name)
    assert killed, f"nothing ran on {host.name}"
    time.sleep(outage_s)
    fault.start_host(plan, host.name)
    return f"power off {host.name} (SIGKILL to its {len(killed)} processes), on again {outage_s:.0f} s later"


# -- the scenarios, in the order they run ----------------------------------------------------------------------


def test_killing_the_broker_that_leads_the_telemetry_queue_loses_nothing(
    plan: ClusterPlan, cql: Any, tmp_path: Path
) -> None:
    def inject() -> Fault:
        leader = brokers.queue_leader(plan, TELEMETRY_QUEUE)
        done = kill_and_restart(plan, leader, "rabbitmq")
        wait_brokers_in_sync(plan)
        return Fault(done.description + f" (it led {TELEMETRY_QUEUE})", done.ended_wall_s)

    run_scenario(plan, cql, tmp_path, scenario="kill -9 the telemetry queue's leader broker", seed=100, inject=inject)


def test_a_killed_cassandra_node_catches_up_after_it_returns(plan: ClusterPlan, cql: Any, tmp_path: Path) -> None:
    victim = plan.hosts(Role.CASSANDRA)[-1]

    def inject() -> Fault:
        return kill_and_restart(plan, victim, "cassandra", outage_s=30.0)

    def caught_up(fleet: Fleet) -> tuple[bool, str]:
        """Its own copy of every row (read at ONE from it alone): hinted handoff replays the writes it missed; if
        hints were not enough within 2 minutes, a repair must make it whole."""
        expected = {d.config.vehicle_id: [b.seq for b in d.batches] for d in fleet.drives}
        started = time.monotonic()
        with session_on(plan, victim) as own:
            missing = wait_replica_complete(own, expected, timeout_s=120)
            if not missing:
                waited_s = time.monotonic() - started
                return True, f"{victim.name}: own rows (read at ONE) complete by hints, {waited_s:.0f} s on"
            before = sum(missing.values())
            cassandra_ring.repair(plan, victim, KEYSPACE)
            missing = wait_replica_complete(own, expected, timeout_s=60)
            how = f"hints left {before} rows missing on {victim.name} after 120 s; a full repair"
            return not missing, how + (" made it whole" if not missing else f" left {missing}")

    run_scenario(
        plan,
        cql,
        tmp_path,
        scenario="kill -9 one Cassandra node during writes",
        seed=200,
        inject=inject,
        after=caught_up,
    )


def test_killing_the_taskmanager_host_running_the_analysis_loses_nothing(
    plan: ClusterPlan, cql: Any, tmp_path: Path
) -> None:
    def inject() -> Fault:
        job_id = wait_job_running(plan)
        victim = analysis_hosts(plan, job_id)[0]
        done = power_cycle(plan, victim)  # the TaskManager and its Python workers
        wait_job_running(plan)
        return Fault(done, time.time())

    run_scenario(
        plan, cql, tmp_path, scenario="kill the TaskManager host running the analysis", seed=300, inject=inject
    )


def test_killing_the_active_jobmanager_hands_the_job_to_the_standby(
    plan: ClusterPlan, cql: Any, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def inject() -> Fault:
        job_id = wait_job_running(plan)
        leader = flink_ha.leader(plan)
        seen["checkpoint_before"] = job.last_completed_checkpoint(plan, job_id) or 0
        killed_at = time.time()
        fault.stop_host(plan, leader.name)
        new_leader = flink_ha.leader(plan) if _wait_new_leader(plan, leader) else leader
        seen.update(old=leader, new=new_leader, job_before=job_id, job_after=wait_job_running(plan))
        seen["restored"] = (job.restored_checkpoint(plan, seen["job_after"]) or {}).get("id", 0)
        fault.start_host(plan, leader.name)  # back, as the standby
        return Fault(f"power off {leader.name} (the leading JobManager); on again once the standby led", killed_at)

    run_scenario(plan, cql, tmp_path, scenario="kill the active JobManager", seed=400, inject=inject)
    assert seen["new"] != seen["old"], "the standby did not take over"
    assert seen["job_after"] == seen["job_before"], "the job was resubmitted, not recovered"
    assert seen["restored"] >= seen["checkpoint_before"] > 0, seen  # from its last checkpoint


def _wait_new_leader(plan: ClusterPlan, old: Host, timeout_s: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if flink_ha.leader(plan) != old:
                return True
        except Exception:  # between leaders
            pass
        time.sleep(1)
    return False


def test_a_rolling_restart_of_every_broker_during_traffic_loses_nothing(
    plan: ClusterPlan, cql: Any, tmp_path: Path
) -> None:
    def inject() -> Fault:
        for host in plan.hosts(Role.BROKER):
            node = brokers.BrokerNode(plan, host)
            node.stop()
            node.start()
            wait_brokers_in_sync(plan)  # the next node goes only once this one's replicas are back
        names = ", ".join(h.name for h in plan.hosts(Role.BROKER))
        return Fault(f"clean stop and start of {names}, one after the other", time.time())

    run_scenario(plan, cql, tmp_path, scenario="rolling restart of the three brokers", seed=500, inject=inject)


PARTITIONED: dict[Role, Callable[[ClusterPlan], Host]] = {
    Role.BROKER: lambda plan: brokers.queue_leader(plan, TELEMETRY_QUEUE),
    Role.CASSANDRA: lambda plan: plan.hosts(Role.CASSANDRA)[-1],
    Role.ZOOKEEPER: lambda plan: plan.hosts(Role.ZOOKEEPER)[0],
    Role.JOBMANAGER: flink_ha.leader,
    # The one reading the telemetry queue: its cut-off connection holds unacked deliveries until the broker gives up
    # on it, while the restarted job reads on (the case amqp_heartbeat_s bounds; a host without the reader misses it).
    Role.TASKMANAGER: lambda plan: source_hosts(plan, wait_job_running(plan))[0],
    Role.FLEET: fleet_host,
}


@pytest.mark.parametrize("role", list(PARTITIONED), ids=lambda role: role.name.lower())
def test_a_partitioned_host_of_each_kind_loses_nothing_once_healed(
    plan: ClusterPlan, cql: Any, tmp_path: Path, role: Role
) -> None:
    def inject() -> Fault:
        host = PARTITIONED[role](plan)
        fault.partition(plan, host.name, seconds=PARTITION_S)
        return Fault(f"{host.name} cut off (link down) for {PARTITION_S:.0f} s, then healed", time.time())

    run_scenario(
        plan,
        cql,
        tmp_path,
        scenario=f"partition a {role.name.lower()} host",
        seed=600 + list(Role).index(role),
        inject=inject,
    )
    if role in (Role.BROKER,):
        wait_brokers_in_sync(plan)
    wait_job_running(plan)  # the next scenario starts on a whole cluster


def test_rescaling_the_job_through_a_savepoint_during_traffic_loses_nothing(
    plan: ClusterPlan, cql: Any, tmp_path: Path
) -> None:
    """Last: it leaves the cluster with one more TaskManager and the job at a higher parallelism."""
    seen: dict[str, Any] = {}

    def inject() -> Fault:
        job_id = wait_job_running(plan)
        before = job.parallelism(plan, job_id)
        larger = flink_ha.add_taskmanager(plan)
        added = larger.hosts(Role.TASKMANAGER)[-1]
        rescaled = job.rescale(larger, before + 1)
        seen.update(before=before, after=job.parallelism(larger, rescaled.new_job_id), rescaled=rescaled)
        return Fault(
            f"{added.name} added; the job stopped with a savepoint and resubmitted at parallelism {before + 1} "
            f"(was {before})",
            time.time(),
        )

    run_scenario(plan, cql, tmp_path, scenario="rescale the job through a savepoint", seed=700, inject=inject)
    assert seen["after"] == seen["before"] + 1
    assert seen["rescaled"].new_job_id != seen["rescaled"].old_job_id and seen["rescaled"].savepoint
