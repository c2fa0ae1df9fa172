"""What the fault scenarios need to know of the cluster beyond `fleetsense cluster fault`: which TaskManager host runs
the analysis, the ingest job running again after a fault, a broker's return into its queues, and a node's own copy of
the rows (read at ONE from that node alone)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import requests
from fleetsense.cloud import tables as t
from fleetsense.cloud.cassandra_session import connect, statement
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.gateway.topology import FLEET_VHOST, TELEMETRY_QUEUE

from fleetsense.cluster import brokers, flink_ha, job, netns
from fleetsense.cluster.endpoints import endpoints
from fleetsense.cluster.plan import ClusterPlan, Host, Role
from fleetsense.errors import FleetsenseError

from ..helpers import eventually

ANALYSIS_VERTEX = "analyse"  # in the name of the job's vertex that validates, deduplicates and analyses
TELEMETRY_SOURCE_VERTEX = "amqp: fleet.telemetry"  # in the name of the vertex that reads the telemetry queue
REST_TIMEOUT_S = 5.0
_HOURS_AT_ONE = t.VEHICLE_HOURS.read("hour_bucket", where=("vehicle_id",), consistency="ONE")
_SEQS_AT_ONE = t.BATCHES.read("seq", where=("vehicle_id", "hour_bucket"), consistency="ONE")


def wait_job_running(plan: ClusterPlan, *, timeout_s: float = 180.0) -> str:
    """The ingest job's id once every task of it runs (following the leader across a failover)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            job_id = job.running_job(plan)
            job.wait_running(plan, job_id, timeout_s=max(1.0, deadline - time.monotonic()))
            return job_id
        except FleetsenseError:  # no leader yet, its REST API not up, or the job not yet listed as running
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def as_running(plan: ClusterPlan) -> ClusterPlan:
    """The session's cluster as it runs now. An earlier test may have added TaskManager hosts to it (a rescale:
    flink_ha.add_taskmanager returns the wider plan, while the session's fixture keeps the one it started), and Flink
    may then schedule the job there: a fault aimed at "the host running X" must know those hosts too."""
    existing = netns.namespaces()
    while True:
        wider = replace(plan, counts={**plan.counts, Role.TASKMANAGER: plan.counts.get(Role.TASKMANAGER, 0) + 1})
        if wider.hosts(Role.TASKMANAGER)[-1].namespace not in existing:
            return plan
        plan = wider


def analysis_hosts(plan: ClusterPlan, job_id: str) -> list[Host]:
    """The TaskManager hosts running subtasks of the analysis vertex (a kill that misses them would test nothing)."""
    return vertex_hosts(plan, job_id, ANALYSIS_VERTEX)


def source_hosts(plan: ClusterPlan, job_id: str) -> list[Host]:
    """The TaskManager hosts reading the telemetry queue: cut one off and its connection holds unacked deliveries."""
    return vertex_hosts(plan, job_id, TELEMETRY_SOURCE_VERTEX)


def vertex_hosts(plan: ClusterPlan, job_id: str, vertex_name: str) -> list[Host]:
    """The TaskManager hosts running subtasks of the job's vertex whose name contains `vertex_name`."""
    # A TaskManager names its host by address or by name, with or without a port, depending on the field (`host`,
    # `endpoint`, `taskmanager-id` = "<host>:<port>-<suffix>"): match every one against both.
    known = {key: host for host in plan.hosts(Role.TASKMANAGER) for key in (host.address, host.name)}
    rest = flink_ha.rest_url(plan)
    found: list[Host] = []
    said: list[Any] = []
    for vertex in job.flink(plan).job_detail(job_id)["vertices"]:
        if vertex_name not in vertex["name"]:
            continue
        reply = requests.get(f"{rest}/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers", timeout=REST_TIMEOUT_S)
        said.append(reply.json())
        for tm in said[-1]["taskmanagers"]:
            names = {str(tm.get(field, "")).split(":", 1)[0] for field in ("host", "endpoint", "taskmanager-id")}
            for name in sorted(names & known.keys()):
                if known[name] not in found:
                    found.append(known[name])
    assert found, f"no TaskManager host of {sorted(known)} runs {vertex_name!r} (REST said {said})"
    return found


def telemetry_queue_in_sync(plan: ClusterPlan) -> bool:
    """Every broker node is running and a member of the telemetry queue with its replica online again."""
    info = brokers.api_get(plan, brokers.answering_broker(plan), f"queues/{FLEET_VHOST}/{TELEMETRY_QUEUE}")
    count = len(plan.hosts(Role.BROKER))
    return bool(info) and len(info.get("members", [])) == count and len(info.get("online", [])) == count


def wait_brokers_in_sync(plan: ClusterPlan, *, timeout_s: float = 180.0) -> None:
    def probe() -> bool:
        try:
            return telemetry_queue_in_sync(plan)
        except Exception:  # no node answers yet
            return False

    assert eventually(probe, bool, timeout_s=timeout_s), "the telemetry queue did not get all its replicas back"


@contextmanager
def session_on(plan: ClusterPlan, host: Host | None = None) -> Iterator[Any]:
    """A CQL session on the ring (dev profile: no login); with `host`, one that asks that node only (its policy set
    when the driver's Cluster is built: a policy swapped in later knows no hosts)."""
    if host is None:
        with connect((endpoints(plan).cql[0], endpoints(plan).cql_port)) as session:
            yield session
        return
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    only = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([host.address]))
    cluster = Cluster([host.address], port=endpoints(plan).cql_port, execution_profiles={EXEC_PROFILE_DEFAULT: only})
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def seqs_at_one(session: Any, vehicle_id: str) -> list[int]:
    """The vehicle's stored seqs as one replica has them: ONE, asked of a node that holds a replica of every
    partition (RF 3 on 3 nodes) answers from its own data."""
    hours = session.execute(statement(_HOURS_AT_ONE.cql.format(ks=KEYSPACE), consistency="ONE"), (vehicle_id,))
    seqs: list[int] = []
    for row in hours:
        cql = _SEQS_AT_ONE.cql.format(ks=KEYSPACE)
        seqs += [r.seq for r in session.execute(statement(cql, consistency="ONE"), (vehicle_id, row.hour_bucket))]
    return sorted(seqs)


def wait_replica_complete(session: Any, expected: dict[str, list[int]], *, timeout_s: float) -> dict[str, int]:
    """Until the node behind `session` holds every expected seq; returns, per vehicle, how many it still misses."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = {vid: len(set(seqs) - set(seqs_at_one(session, vid))) for vid, seqs in expected.items()}
        missing = {vid: n for vid, n in missing.items() if n}
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(2)
