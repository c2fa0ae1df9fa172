"""The ingest job on the cluster's Flink: submitted to the leading JobManager with every broker and every Cassandra
node as its contact points, watched across a JobManager failover, and rescaled through a savepoint.

The job's settings are the single-node stack's (fleetsense.stack.jobs.build_ingest_settings); only where it
connects differs: `amqp_host` and `cassandra_host` are comma-separated lists of the plan's addresses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from fleetsense.cloud.cassandra_session import Login
from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.jobctl import FlinkCluster, JobError
from fleetsense.cluster import flink_ha
from fleetsense.cluster.plan import ClusterPlan, Role
from fleetsense.errors import StackError
from fleetsense.stack.jobs import INGEST_JOB_NAME, build_ingest_settings, submit_settings
from fleetsense.stack.layout import default_build_dir
from fleetsense.stack.secrets import Credentials, load_or_create

AMQP_PORT = 5672
CQL_PORT = 9042
FAILOVER_TIMEOUT_S = 120.0  # a standby's election (~7 s here) plus the job's restore, with room on a busy box


@dataclass(frozen=True, kw_only=True)
class Rescaled:
    old_job_id: str
    savepoint: str
    new_job_id: str


def flink(plan: ClusterPlan) -> FlinkCluster:
    """The cluster's Flink, at the leading JobManager's REST API (ask again after a failover)."""
    leader = flink_ha.leader(plan)
    return FlinkCluster(leader.address, flink_ha.REST_PORT, log_dir=plan.data_dir / "flink-client")


def secrets_dir(plan: ClusterPlan) -> Path:
    return plan.data_dir / "secrets"


def job_broker_login(plan: ClusterPlan) -> Credentials:
    """The job's broker user: the same file name and user as the single-node stack's (the broker hosts create it)."""
    from fleetsense.gateway.topology import FLINK_USER

    return load_or_create(secrets_dir(plan) / "rabbitmq-flink.json", FLINK_USER)


def job_cql_login(plan: ClusterPlan) -> Credentials | None:
    """The job's Cassandra user when the ring requires logins (its credentials file exists), else None."""
    path = secrets_dir(plan) / "cassandra" / "job.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return Credentials(username=data["username"], password=data["password"])


def contact_points(plan: ClusterPlan, role: Role) -> str:
    """Every host of a role, as the job's comma-separated host setting."""
    return ",".join(host.address for host in plan.hosts(role))


def ingest_settings(
    plan: ClusterPlan,
    overrides: dict[str, str] | None = None,
    *,
    amqp_login: Login | None = None,
    cql_login: Login | None = None,
) -> IngestJobSettings:
    from fleetsense.cloud.connector_build import build_connector_jar
    from fleetsense.cluster.cassandra_ring import DATACENTER

    return build_ingest_settings(
        amqp_host=contact_points(plan, Role.BROKER),
        amqp_port=AMQP_PORT,
        amqp_login=amqp_login or job_broker_login(plan),
        cassandra_host=contact_points(plan, Role.CASSANDRA),
        cassandra_port=CQL_PORT,
        cql_login=cql_login if cql_login is not None else job_cql_login(plan),
        connector_jar=build_connector_jar(default_build_dir()),
        # The ring's datacenter is the local one: LOCAL_QUORUM counts its replicas.
        overrides={"cassandra_local_dc": DATACENTER} | (overrides or {}),
    )


def settings_path(plan: ClusterPlan) -> Path:
    return plan.data_dir / "jobs" / "telemetry-ingest.json"


def submit_ingest(
    plan: ClusterPlan, overrides: dict[str, str] | None = None, *, savepoint: str | None = None
) -> tuple[str, bool]:
    """Submit the ingest job unless it already runs; returns (job id, whether it was submitted now)."""
    return submit_settings(flink(plan), ingest_settings(plan, overrides), settings_path(plan), savepoint=savepoint)


def submitted_settings(plan: ClusterPlan) -> dict[str, Any]:
    try:
        return dict(json.loads(settings_path(plan).read_text()))
    except (OSError, ValueError) as exc:
        raise JobError(
            f"no settings of a submitted ingest job in {settings_path(plan)}",
            hint="submit the job first (the cluster fixture, or `fleetsense cluster up`)",
        ) from exc


def running_job(plan: ClusterPlan, name: str = INGEST_JOB_NAME) -> str:
    job = flink(plan).running(name)
    if job is None:
        raise JobError(f"no running job {name!r} on the cluster", hint="submit it first")
    return job.job_id


def job_detail(plan: ClusterPlan, job_id: str) -> dict[str, Any] | None:
    """`/jobs/<id>` from whichever JobManager leads now; None while none answers (a failover in progress)."""
    try:
        return flink(plan).job_detail(job_id)
    except (StackError, JobError, requests.RequestException):
        return None


def is_running(detail: dict[str, Any] | None) -> bool:
    """Every task of the job runs (its sources consume): what 'the job is back' means after a fault."""
    if not detail or detail.get("state") != "RUNNING":
        return False
    vertices = detail.get("vertices", [])
    return bool(vertices) and all(vertex["status"] == "RUNNING" for vertex in vertices)


def wait_running(plan: ClusterPlan, job_id: str, *, timeout_s: float = FAILOVER_TIMEOUT_S) -> float:
    """Wait until every task of the job runs, following the leader across a failover; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        detail = job_detail(plan, job_id)
        if detail and detail.get("state") in ("FAILED", "CANCELED", "FINISHED"):
            raise JobError(f"job {job_id} ended as {detail['state']}", log_path=str(plan.data_dir / "hosts"))
        if is_running(detail):
            return time.monotonic() - started
        time.sleep(0.5)
    raise JobError(
        f"job {job_id} is not running after {timeout_s:.0f} s",
        hint="read the leading JobManager's log (hosts/jm*/flink/log)",
        log_path=str(plan.data_dir / "hosts"),
    )


def restarts(plan: ClusterPlan, job_id: str) -> int:
    return flink(plan).restarts(job_id)


def checkpoints(plan: ClusterPlan, job_id: str) -> dict[str, Any]:
    return flink(plan).checkpoints(job_id)


def last_completed_checkpoint(plan: ClusterPlan, job_id: str) -> int | None:
    completed = (checkpoints(plan, job_id).get("latest") or {}).get("completed")
    return int(completed["id"]) if completed else None


def restored_checkpoint(plan: ClusterPlan, job_id: str) -> dict[str, Any] | None:
    """The checkpoint (or savepoint) the job's current run started from: id, is_savepoint, external_path."""
    restored = (checkpoints(plan, job_id).get("latest") or {}).get("restored")
    return dict(restored) if restored else None


def parallelism(plan: ClusterPlan, job_id: str) -> int:
    """The largest parallelism of the job's operators (the analysis'; the source has `readers`)."""
    return max(int(vertex["parallelism"]) for vertex in flink(plan).job_detail(job_id)["vertices"])


def total_slots(plan: ClusterPlan) -> int:
    """The task slots of every TaskManager registered with the leader."""
    reply = requests.get(f"{flink_ha.rest_url(plan)}/overview", timeout=5)
    return int(reply.json()["slots-total"])


def savepoint_dir(plan: ClusterPlan) -> Path:
    return flink_ha.flink_dir(plan) / "savepoints"


def rescale_job(plan: ClusterPlan, job_id: str, resubmit: Callable[[str], str]) -> Rescaled:
    """Stop the job with a savepoint (its sources stop first: nothing is processed after it), then `resubmit`
    (savepoint path -> new job id) at the new parallelism, and wait until it runs."""
    savepoint = flink(plan).stop_with_savepoint(job_id, savepoint_dir(plan))
    new_id = resubmit(savepoint)
    wait_running(plan, new_id)
    return Rescaled(old_job_id=job_id, savepoint=savepoint, new_job_id=new_id)


def rescale(plan: ClusterPlan, new_parallelism: int) -> Rescaled:
    """The ingest job at `new_parallelism` (its analysis operator), through a savepoint: no message lost (unacked
    deliveries go back to the queue), no state reset. More TaskManagers first when the slots do not suffice: start
    the TaskManager of a plan with one more tm host, then rescale. The shard count stays (state is keyed by it)."""
    previous = submitted_settings(plan)
    overrides = {"parallelism": str(new_parallelism), "shards": str(previous["shards"])}
    settings = ingest_settings(plan, overrides)  # a bad parallelism is refused before the job is stopped
    slots = total_slots(plan)
    if new_parallelism > slots:
        raise JobError(
            f"parallelism {new_parallelism} needs {new_parallelism} slots; the cluster has {slots}",
            hint=f"add a TaskManager host ({flink_ha.SLOTS_PER_TASKMANAGER} slots each) first",
        )
    job_id = running_job(plan)

    def resubmit(savepoint: str) -> str:
        new_id, _ = submit_settings(flink(plan), settings, settings_path(plan), savepoint=savepoint)
        return new_id

    return rescale_job(plan, job_id, resubmit)
