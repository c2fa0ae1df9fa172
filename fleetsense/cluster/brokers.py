"""A RabbitMQ node per broker host: Debian's rabbitmq-server with the single-node stack's configuration
(fleetsense/stack/rabbitmq.py) plus classic-config peer discovery, and beside it the identity authoriser.

The three nodes share one Erlang cookie and find each other by name (`fleetsense@rmq1`, resolved through the
namespace's /etc/hosts). The quorum queues gateway/topology.py declares once every node runs get one replica per
node (x-quorum-initial-group-size defaults to the cluster's size). MQTT 3.10 tracks client ids on Raft: new MQTT
connections need a majority of the three nodes.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import requests

from fleetsense.cluster import netns
from fleetsense.cluster.host_stack import CLUSTER_NAME, host_config, secrets_dir
from fleetsense.cluster.plan import ClusterPlan, Host, Role
from fleetsense.cluster.service import ServiceStatus
from fleetsense.errors import StackError
from fleetsense.stack import process
from fleetsense.stack.rabbitmq import INSTALL_HINT, RABBITMQ_BIN, RabbitMQ, authoriser_port
from fleetsense.stack.secrets import Credentials, load_or_create, write_private

ALL_INTERFACES = "0.0.0.0"  # in a host's namespace: its own address and its loopback, nothing else
START_TIMEOUT_S = 240.0  # a node joining waits for its peers' tables; the machine is shared and slow
API_TIMEOUT_S = 3.0
# A minority side stops serving (listeners paused) until the partition heals: with quorum queues and MQTT client
# ids on Raft, a minority could not accept anything durable anyway, and no split-brain queue contents can arise.
PARTITION_HANDLING = "pause_minority"
# pause_minority acts only on what a node sees *during* a partition. A peer counts as down after no data for
# 0.75-1.25 x net_ticktime; with Erlang's default of 60 s a 60 s cut is noticed at best at its very end, and after
# the heal TCP's retransmission back-off delays the first data a few seconds more. Measured (issue 16): rmq1
# timed its peers out 9 s *after* the heal, closed its links, its peers reconnected within 30 ms, so rmq1 never
# saw itself in a minority ("Keeping ... listeners: the node is already back") and Mnesia, which never re-merges
# a partition it detected ({inconsistent_database, running_partitioned_network, ...} on every node), left rmq1
# alone for good. At 15 s (as OpenStack's RabbitMQ default) any cut longer than ~19 s is seen by both sides while
# it lasts: the cut-off node pauses, and on the heal restarts and rejoins, the path pause_minority is made for.
# A cut of ~11-19 s can still be seen by one side only (measured: 16 s left rmq1 alone; docs/cluster.md,
# "A partitioned broker").
NET_TICKTIME_S = 15


def node_name(host: Host) -> str:
    return f"{CLUSTER_NAME}@{host.name}"


def cluster_settings(plan: ClusterPlan) -> list[str]:
    """rabbitmq.conf lines every broker host adds to the single node's: who its peers are, how partitions end."""
    peers = [
        f"cluster_formation.classic_config.nodes.{host.index} = {node_name(host)}" for host in plan.hosts(Role.BROKER)
    ]
    return [
        "cluster_formation.peer_discovery_backend = classic_config",
        *peers,
        f"cluster_partition_handling = {PARTITION_HANDLING}",
        f"net_ticktime = {NET_TICKTIME_S}",
    ]


def ctl_env(node_env: dict[str, str]) -> dict[str, str]:
    """rabbitmqctl's environment: the node's, with the node's net_ticktime (Erlang wants every peer of a
    connection, the CLI's hidden node too, to tick at the same rate, or a long command can be timed out)."""
    return {**node_env, "RABBITMQ_CTL_ERL_ARGS": f"-kernel net_ticktime {NET_TICKTIME_S}"}


def erlang_cookie(plan: ClusterPlan) -> str:
    """One cookie for every node (and rabbitmqctl): Erlang distribution refuses peers with another."""
    return load_or_create(secrets_dir(plan) / "rabbitmq-erlang-cookie.json", "erlang").password


def operator(plan: ClusterPlan) -> Credentials:
    return RabbitMQ(host_config(plan, plan.hosts(Role.BROKER)[0])).operator


def management_url(host: Host) -> str:
    return f"http://{host.address}:15672"


def api_get(plan: ClusterPlan, host: Host, path: str, *, timeout_s: float = API_TIMEOUT_S) -> Any:
    """GET from one node's management API; None when it does not answer (down, paused or partitioned)."""
    creds = operator(plan)
    try:
        reply = requests.get(
            f"{management_url(host)}/api/{path}", auth=(creds.username, creds.password), timeout=timeout_s
        )
    except requests.RequestException:
        return None
    return reply.json() if reply.status_code == 200 else None


def answering_broker(plan: ClusterPlan) -> Host:
    """The first broker whose management API answers (any node serves the whole cluster's API)."""
    for host in plan.hosts(Role.BROKER):
        if netns.link_up(host) and api_get(plan, host, "overview") is not None:
            return host
    raise StackError(
        "no RabbitMQ node of the cluster answers its management API",
        hint="`fleetsense cluster status` shows which broker hosts run; `fleetsense cluster up` starts them",
    )


def management_client(plan: ClusterPlan) -> Any:
    from fleetsense.gateway.management import ManagementClient

    creds = operator(plan)
    return ManagementClient(management_url(answering_broker(plan)), creds.username, creds.password)


def running_nodes(plan: ClusterPlan, via: Host) -> list[str]:
    """The node names `via` sees running (its view of the cluster), [] when it does not answer."""
    nodes = api_get(plan, via, "nodes") or []
    return sorted(node["name"] for node in nodes if node.get("running"))


def queue_leader(plan: ClusterPlan, queue: str, vhost: str = "fleet") -> Host:
    """The broker host whose node leads the quorum queue `queue` now (the one to kill in the failover scenario)."""
    from urllib.parse import quote

    via = answering_broker(plan)
    info = api_get(plan, via, f"queues/{quote(vhost, safe='')}/{quote(queue, safe='')}")
    leader = (info or {}).get("leader") or (info or {}).get("node")
    if not leader:
        raise StackError(f"the management API of {via.name} names no leader for queue {queue!r} in vhost {vhost!r}")
    return plan.by_name(str(leader).split("@", 1)[1])


def queue_members(plan: ClusterPlan, queue: str, vhost: str = "fleet") -> list[str]:
    from urllib.parse import quote

    info = api_get(plan, answering_broker(plan), f"queues/{quote(vhost, safe='')}/{quote(queue, safe='')}")
    return sorted((info or {}).get("members", []))


class BrokerNode:
    """The RabbitMQ node and its identity authoriser on one broker host (HostService)."""

    name = "rabbitmq"

    def __init__(self, plan: ClusterPlan, host: Host) -> None:
        self.plan = plan
        self.host = host
        self.rabbit = RabbitMQ(
            host_config(plan, host),
            listen_address=ALL_INTERFACES,
            node_host=host.name,
            cluster_settings=cluster_settings(plan),
        )

    # -- state ------------------------------------------------------------------------------------

    def _beam_pid(self) -> int | None:
        pids = process.read_pids(self.rabbit.pid_file)
        return pids[0] if pids and process.pid_alive(pids[0]) else None

    def _authoriser_pid(self) -> int | None:
        pids = process.read_pids(self.rabbit.authoriser_pid_file)
        return pids[0] if pids and process.pid_alive(pids[0]) else None

    def pids(self) -> list[int]:
        return [pid for pid in (self._beam_pid(), self._authoriser_pid()) if pid]

    def answers(self) -> bool:
        return (
            process.port_accepts(self.host.address, self.rabbit.config.ports.mqtt)
            and api_get(self.plan, self.host, "overview") is not None
        )

    def fresh(self) -> bool:
        """Never booted: no node database yet (it will join the cluster through peer discovery)."""
        mnesia = self.rabbit.home / "mnesia"
        return not (mnesia.is_dir() and any(mnesia.iterdir()))

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._start_authoriser()
        if self._beam_pid() is None:
            server = RABBITMQ_BIN / "rabbitmq-server"
            if not server.exists():
                raise StackError(f"RabbitMQ is not installed ({server} is missing)", hint=INSTALL_HINT)
            self.rabbit.write_config()
            # Erlang reads the cookie from $HOME, which is the node's home: owner-only or it refuses it.
            cookie = self.rabbit.home / ".erlang.cookie"
            write_private(cookie, erlang_cookie(self.plan))
            cookie.chmod(0o400)
            self.rabbit.pid_file.unlink(missing_ok=True)
            netns.spawn(
                self.host,
                [str(server)],
                env=self.rabbit.env(),
                log_file=self.rabbit.log_dir / "startup.log",
                cwd=self.rabbit.home,
            )
        process.wait_until(
            self.answers,
            timeout_s=START_TIMEOUT_S,
            what=f"RabbitMQ on {self.host.name}",
            log_path=self.rabbit.main_log(),
        )

    def _start_authoriser(self) -> None:
        if self._authoriser_pid() is not None:
            return
        # On the namespace's loopback, as on the single node: only this host's broker asks it.
        port = authoriser_port(self.rabbit.config)
        cmd = [sys.executable, "-m", "fleetsense.gateway.authoriser", "--port", str(port)]
        pid = netns.spawn(
            self.host,
            [*cmd, "--log-file", str(self.rabbit.authoriser_log())],
            env=os.environ,
            log_file=self.rabbit.log_dir / "authoriser-startup.log",
        )
        self.rabbit.home.mkdir(parents=True, exist_ok=True)
        self.rabbit.authoriser_pid_file.write_text(f"{pid}\n")

    def stop(self) -> None:
        """A clean shutdown: the node leaves its queues' Raft groups in order (their leaders move elsewhere)."""
        pid = self._beam_pid()
        if pid is not None:
            rabbitmqctl = str(RABBITMQ_BIN / "rabbitmqctl")
            try:
                netns.run(
                    self.host,
                    [rabbitmqctl, "-n", self.rabbit.node, "stop", str(self.rabbit.pid_file)],
                    env=ctl_env(self.rabbit.env()),
                    timeout_s=60,
                    what="rabbitmqctl stop",
                )
            except StackError:
                pass  # signals follow; `status` shows anything left
            process.terminate([pid], grace_s=15)
        authoriser = self._authoriser_pid()
        if authoriser is not None:  # last: the node may consult it until it has stopped
            process.terminate([authoriser], grace_s=10)
        self.rabbit.authoriser_pid_file.unlink(missing_ok=True)

    def kill(self) -> list[int]:
        """SIGKILL the node (and its authoriser): no clean shutdown, its peers see a node go away."""
        killed = []
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        return killed

    def status(self) -> ServiceStatus:
        pids = tuple(self.pids())
        beam = self._beam_pid()
        running = running_nodes(self.plan, self.host) if beam else []
        if beam and running:
            state, detail = "running", f"sees {len(running)} running: {', '.join(n.split('@')[1] for n in running)}"
        elif beam:
            state, detail = "degraded", "node process up, management API not answering (starting, paused or cut off)"
        else:
            state, detail = ("degraded", "authoriser only") if pids else ("stopped", "-")
        if beam and not self._authoriser_pid():
            state, detail = "degraded", "authoriser down: logins without a cached answer are refused"
        return ServiceStatus(host=self.host.name, service=self.name, state=state, pids=pids, detail=detail)
