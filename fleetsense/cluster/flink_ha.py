"""Flink on the cluster: a JobManager on each jm host (one leads, the others stand by, elected in ZooKeeper) and a
TaskManager on each tm host, from the apache-flink wheel's distribution with the single-node stack's settings
(fleetsense.stack.flink.shared_settings) bound to the host's address.

High availability (Flink's ZooKeeper mode): the leader keeps the job graphs and completed checkpoints in
`high-availability.storageDir` and their pointers in ZooKeeper; when it dies, its ZooKeeper session expires, a
standby is elected, reads them back and restarts the jobs from their last completed checkpoint. TaskManagers find
the leader in ZooKeeper too. The storage and the checkpoints are under plan.shared_dir (file://): every host here
sees the same filesystem; a real cluster puts them on S3, HDFS or NFS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import requests

from fleetsense.cluster import jvm, netns, supervisor, zk_read, zookeeper
from fleetsense.cluster.plan import ClusterPlan, Host, Role
from fleetsense.cluster.service import ServiceStatus
from fleetsense.errors import StackError
from fleetsense.stack import process
from fleetsense.stack.flink import (
    copy_logging_config,
    flink_env,
    flink_home,
    flink_yaml,
    java_opts,
    link_lib_dir,
    shared_settings,
)

REST_PORT = 8081
RPC_PORT = 6123
BLOB_PORT = 6124
TASKMANAGER_RPC_PORT = 6122
TASKMANAGER_DATA_PORT = 6121
# One TaskManager holds the whole job at its default parallelism (4): when the other TaskManager's host dies, the
# job restarts on the survivor instead of waiting for slots.
SLOTS_PER_TASKMANAGER = 4
CLUSTER_ID = "/fleetsense"
ZK_ROOT = "/flink"
# A dead leader's ZooKeeper session outlives it by this much: the floor of a JobManager failover. Flink's default
# (60 s) suits real networks; on one machine a session that misses 6 s of heartbeats is gone, not slow.
ZK_SESSION_TIMEOUT_MS = 6000
START_TIMEOUT_S = 180.0
# A JobManager's REST API answers 503 while no leader is known: through a ZooKeeper outage, and for good when it
# hangs out of the election. Longer than a failover (~7 s) and a restarted leader's recovery, short next to a hang.
ALIVE_GRACE_S = 60.0
LEADER_ADDRESS = re.compile(rb"https?://([0-9.]+):\d+")


def flink_dir(plan: ClusterPlan) -> Path:
    """Checkpoints, savepoints and the HA storage: on the filesystem every host shares."""
    return plan.shared_dir / "flink"


def ha_settings(plan: ClusterPlan) -> dict[str, str]:
    return {
        "high-availability.type": "zookeeper",
        "high-availability.zookeeper.quorum": zookeeper.quorum(plan),
        "high-availability.zookeeper.path.root": ZK_ROOT,
        "high-availability.cluster-id": CLUSTER_ID,
        "high-availability.storageDir": f"file://{flink_dir(plan) / 'ha'}",
        "high-availability.zookeeper.client.session-timeout": str(ZK_SESSION_TIMEOUT_MS),
        "high-availability.zookeeper.client.connection-timeout": "3000",
    }


def host_settings(plan: ClusterPlan, host: Host) -> dict[str, str]:
    """The Flink configuration of a jm or tm host: its own address advertised, every interface of its namespace
    bound (its eth0 and its loopback), the well-known ports (each host has its own network stack)."""
    first_jm = plan.hosts(Role.JOBMANAGER)[0]
    settings = {
        **shared_settings(flink_dir(plan)),
        **ha_settings(plan),
        "jobmanager.rpc.address": host.address if host.role is Role.JOBMANAGER else first_jm.address,
        "jobmanager.rpc.port": str(RPC_PORT),
        "high-availability.jobmanager.port": str(RPC_PORT),  # else a random port per start
        "jobmanager.bind-host": "0.0.0.0",
        "jobmanager.memory.heap.size": f"{plan.heap_mb[Role.JOBMANAGER]}m",
        "blob.server.port": str(BLOB_PORT),
        "rest.address": host.address,
        "rest.bind-address": "0.0.0.0",
        "rest.port": str(REST_PORT),
        "taskmanager.host": host.address,
        # Else the TaskManager names itself after InetAddress.getLocalHost(): the machine's hostname, which the
        # hosts' /etc/hosts (only the plan's names) cannot resolve.
        "taskmanager.resource-id": host.name,
        "taskmanager.bind-host": "0.0.0.0",
        "taskmanager.rpc.port": str(TASKMANAGER_RPC_PORT),
        "taskmanager.data.port": str(TASKMANAGER_DATA_PORT),
        "taskmanager.numberOfTaskSlots": str(SLOTS_PER_TASKMANAGER),
        # The heap of plan.heap_mb is the tasks' (plus Flink's own 128 MiB); managed memory is what process-mode
        # Python workers and RocksDB would use (the job runs its Python in the TaskManager's thread by default).
        "taskmanager.memory.task.heap.size": f"{plan.heap_mb[Role.TASKMANAGER]}m",
        "taskmanager.memory.managed.size": "256m",
        # Spread a job's slots over the TaskManagers: losing one host then costs half the job, not possibly none.
        "cluster.evenly-spread-out-slots": "true",
        "metrics.internal.query-service.port": "0",
    }
    return settings


class _FlinkProcess:
    """A Flink daemon on a host, run in the foreground under the host's supervisor (fleetsense.cluster.supervisor,
    itself under `ip netns exec`), which starts it again when it exits: Flink's daemons exit on fatal errors (a
    ZooKeeper session lost) and expect to be restarted, as systemd or Kubernetes would."""

    name = ""
    script = ""  # jobmanager.sh / taskmanager.sh

    def __init__(self, plan: ClusterPlan, host: Host) -> None:
        self.plan = plan
        self.host = host
        self.dir = plan.host_dir(host) / "flink"
        self.conf_dir = self.dir / "conf"
        self.log_dir = self.dir / "log"
        self.lib_dir = self.dir / "lib"
        self.log_file = self.log_dir / f"{self.name}.out"

    def env(self) -> dict[str, str]:
        return flink_env(
            conf_dir=self.conf_dir,
            log_dir=self.log_dir,
            pid_dir=self.dir / "pids",
            lib_dir=self.lib_dir,
            plugins_dir=flink_home() / "plugins",
            ident=self.host.name,
        ) | {"HOSTNAME": self.host.name}

    def write_config(self) -> None:
        home = flink_home()
        for folder in (self.conf_dir, self.log_dir, self.dir / "pids", flink_dir(self.plan)):
            folder.mkdir(parents=True, exist_ok=True)
        copy_logging_config(home / "conf", self.conf_dir)
        link_lib_dir(self.lib_dir, home)
        settings = {"env.java.opts.all": java_opts(home, self.log_dir), **host_settings(self.plan, self.host)}
        (self.conf_dir / "config.yaml").write_text(flink_yaml(settings))

    def start_process(self) -> None:
        if self.pids():
            return
        self.write_config()
        daemon = ["bash", str(flink_home() / "bin" / self.script), "start-foreground"]
        netns.spawn(self.host, self.supervised(daemon), env=self.env(), log_file=self.log_file)

    def supervised(self, daemon: list[str]) -> list[str]:
        """A TaskManager exits on its own fatal errors: restarting it when it exits is enough."""
        return supervisor.command(daemon)

    def _start_until(self, ready: Callable[[], bool], *, what: str) -> None:
        self.start_process()
        process.wait_until(
            ready, timeout_s=START_TIMEOUT_S, what=what, log_path=self.log_dir, still_running=lambda: bool(self.pids())
        )

    def pids(self) -> list[int]:
        """The supervisor first, then the daemon (the start script or its JVM) and its Python workers: their
        environment names our conf dir (FLINK_CONF_DIR), from the supervisor down."""
        found = jvm.pids_with(self.host, f"FLINK_CONF_DIR={self.conf_dir} ")
        return sorted(found, key=lambda pid: not supervisor.is_supervisor(jvm.cmdline(pid)))

    def stop(self) -> None:
        """A clean stop: SIGTERM reaches the supervisor (which restarts nothing after it) and the daemon."""
        jvm.stop(self.pids())

    def kill(self) -> list[int]:
        """The service's power switch: SIGKILL to the supervisor first (nothing restarts it), then the daemon."""
        return jvm.kill(self.pids())

    def _status(self, detail: str, *, healthy: bool) -> ServiceStatus:
        pids = tuple(self.pids())
        if not pids:
            state, detail = "stopped", "-"
        elif not netns.link_up(self.host):
            state = "partitioned"
        else:
            state = "running" if healthy else "degraded"
        return ServiceStatus(host=self.host.name, service=self.name, state=state, pids=pids, detail=detail)


class JobManagerNode(_FlinkProcess):
    name = "jobmanager"
    script = "jobmanager.sh"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host.address}:{REST_PORT}"

    def answering(self) -> bool:
        try:
            return requests.get(f"{self.rest_url}/config", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start(self) -> None:
        self._start_until(self.answering, what=f"the Flink JobManager on {self.host.name}")

    def supervised(self, daemon: list[str]) -> list[str]:
        """Restarted when it exits, and when its REST API stops answering for ALIVE_GRACE_S: a JobManager that
        lost its ZooKeeper session may reconnect without rejoining the election and then answer 503 for good."""
        probe = f"http://127.0.0.1:{REST_PORT}/config"  # its own namespace's loopback: seen during a partition too
        return supervisor.command(daemon, alive_url=probe, alive_grace_s=ALIVE_GRACE_S)

    def status(self) -> ServiceStatus:
        if not self.answering():
            return self._status("not answering", healthy=False)
        try:
            leading = leader(self.plan) == self.host
        except StackError:
            return self._status("no leader elected", healthy=False)
        return self._status("leader" if leading else "standby", healthy=True)


class TaskManagerNode(_FlinkProcess):
    name = "taskmanager"
    script = "taskmanager.sh"

    def registered(self) -> bool:
        """Whether the leading JobManager lists this TaskManager (it found the leader through ZooKeeper)."""
        try:
            reply = requests.get(f"{rest_url(self.plan)}/taskmanagers", timeout=3).json()
        except (requests.RequestException, ValueError, StackError):
            return False
        return any(self.host.address in str(tm.get("path", "")) for tm in reply.get("taskmanagers", []))

    def start(self) -> None:
        what = f"the Flink TaskManager on {self.host.name} (registered with the leading JobManager)"
        self._start_until(self.registered, what=what)

    def status(self) -> ServiceStatus:
        registered = self.registered()
        return self._status("registered" if registered else "not registered with the leader", healthy=registered)


def add_taskmanager(plan: ClusterPlan) -> ClusterPlan:
    """One more tm host (its namespace on the bridge, its TaskManager registered with the leader): returns the plan
    that has it, for the commands that follow (a rescale, `cluster down`, which removes every host of the prefix)."""
    wider = replace(plan, counts={**plan.counts, Role.TASKMANAGER: plan.counts.get(Role.TASKMANAGER, 0) + 1})
    added = wider.hosts(Role.TASKMANAGER)[-1]
    netns.create_host(wider, added)
    TaskManagerNode(wider, added).start()
    return wider


def leader_address(plan: ClusterPlan) -> str | None:
    """The address of the JobManager whose REST endpoint leads, as Flink wrote it in ZooKeeper; None when no leader
    is elected (yet). Raises StackError when no ZooKeeper node answers."""
    path = f"{ZK_ROOT}{CLUSTER_ID}/leader/rest_server/connection_info"
    errors = []
    for zk in plan.hosts(Role.ZOOKEEPER):
        try:
            data = zk_read.get_data(zk.address, zookeeper.CLIENT_PORT, path)
        except OSError as exc:
            errors.append(f"{zk.name}: {exc}")
            continue
        match = LEADER_ADDRESS.search(data or b"")
        return match.group(1).decode() if match else None
    raise StackError(
        f"no ZooKeeper node answers ({'; '.join(errors)})",
        hint="`fleetsense cluster status` shows which hosts run; Flink's leader election needs ZooKeeper",
    )


def leader(plan: ClusterPlan) -> Host:
    """The leading JobManager's host."""
    address = leader_address(plan)
    for host in plan.hosts(Role.JOBMANAGER):
        if host.address == address:
            return host
    raise StackError(
        "no Flink JobManager leads" + (f" (ZooKeeper names {address}, not a jm host)" if address else ""),
        hint="a standby takes over within seconds of a leader's loss; wait, or start a JobManager",
    )


def rest_url(plan: ClusterPlan) -> str:
    """The leading JobManager's REST API."""
    return f"http://{leader(plan).address}:{REST_PORT}"


def submit_ingest_job(plan: ClusterPlan) -> str:
    """The ingest job on the cluster (fleetsense.cluster.job.submit_ingest): what `cluster up` and the cluster
    tests' session fixture call once Flink runs. Returns its id (the running one's when it already runs)."""
    from fleetsense.cluster import job

    job_id, _ = job.submit_ingest(plan)
    return job_id
