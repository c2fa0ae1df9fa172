"""ZooKeeper on a zk host, from Debian's `zookeeper` package (3.8.0): Flink's JobManagers elect their leader there
and keep the pointers to the job graph and its completed checkpoints (the data itself is in the shared directory).

Three nodes by default (ClusterPlan.counts), an ensemble (server.N lines) that survives the loss of one: with a
lone node, cutting it off suspended the job for the whole outage and (before the supervisor) ended every Flink
daemon for good; with three, the clients of the lost node reconnect to another within the 6 s session and the job
restarts once (~1 s). Two more JVMs cost ~160 MiB RSS (docs/cluster-flink.md, "Why three nodes").
"""

from __future__ import annotations

import socket
from pathlib import Path

from fleetsense.cluster import jvm, netns
from fleetsense.cluster.plan import ClusterPlan, Host, Role
from fleetsense.cluster.service import ServiceStatus
from fleetsense.errors import StackError
from fleetsense.stack import process

CLIENT_PORT = 2181
PEER_PORT = 2888  # followers to the leader
ELECTION_PORT = 3888
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
# zookeeper.jar's manifest names its other dependencies; slf4j-simple turns its logs into lines on stderr (our log).
SLF4J_BINDING = Path("/usr/share/java/slf4j-simple.jar")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"  # standalone when zoo.cfg lists no server.N
TICK_MS = 1000  # sessions may be as short as 2 ticks: Flink's 6 s session timeout needs ticks of at most 3 s
START_TIMEOUT_S = 60.0


def quorum(plan: ClusterPlan) -> str:
    """The connect string every client (Flink) is given: each ZooKeeper host's address and client port."""
    return ",".join(f"{host.address}:{CLIENT_PORT}" for host in plan.hosts(Role.ZOOKEEPER))


def zoo_cfg(plan: ClusterPlan, host: Host, data_dir: Path) -> str:
    """The node's configuration: its own address for clients, and the ensemble's peers when there are several."""
    lines = [
        "# Written by `fleetsense cluster up`; edits are overwritten.",
        f"tickTime={TICK_MS}",
        "initLimit=10",
        "syncLimit=5",
        f"dataDir={data_dir}",
        f"clientPort={CLIENT_PORT}",
        f"clientPortAddress={host.address}",
        # `srvr` answers `cluster status` (Mode: standalone / leader / follower); `ruok` the start-up check.
        "4lw.commands.whitelist=srvr,ruok,mntr",
        "admin.enableServer=false",  # its Jetty console would take another port and ~20 MiB
        "autopurge.snapRetainCount=3",
        "autopurge.purgeInterval=1",
    ]
    ensemble = plan.hosts(Role.ZOOKEEPER)
    if len(ensemble) > 1:
        lines += [f"server.{peer.index}={peer.address}:{PEER_PORT}:{ELECTION_PORT}" for peer in ensemble]
    return "\n".join(lines) + "\n"


def four_letter(address: str, command: str, *, timeout_s: float = 2.0) -> str:
    """A ZooKeeper four-letter command's reply ('' when the node does not answer)."""
    try:
        with socket.create_connection((address, CLIENT_PORT), timeout=timeout_s) as conn:
            conn.sendall(command.encode())
            chunks = []
            while chunk := conn.recv(4096):
                chunks.append(chunk)
    except OSError:
        return ""
    return b"".join(chunks).decode(errors="replace")


def mode(srvr_reply: str) -> str:
    """`Mode: follower` -> "follower"; '' when the reply has none (the node is not serving: no quorum)."""
    for line in srvr_reply.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return ""


class ZooKeeperNode:
    name = "zookeeper"

    def __init__(self, plan: ClusterPlan, host: Host) -> None:
        self.plan = plan
        self.host = host
        self.dir = plan.host_dir(host) / "zookeeper"
        self.data_dir = self.dir / "data"
        self.cfg = self.dir / "zoo.cfg"
        self.log_file = self.dir / "zookeeper.log"

    def command(self) -> list[str]:
        heap = self.plan.heap_mb[Role.ZOOKEEPER]
        return [
            "java",
            f"-Xms{heap}m",
            f"-Xmx{heap}m",
            "-XX:+UseSerialGC",  # one small heap: no parallel GC threads competing for the 2 cores
            "-Dzookeeper.jmx.log4j.disable=true",
            "-cp",
            f"{ZOOKEEPER_JAR}:{SLF4J_BINDING}",
            MAIN_CLASS,
            str(self.cfg),  # also the marker that tells this node's JVM apart (jvm.pids_with)
        ]

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "myid").write_text(f"{self.host.index}\n")
        self.cfg.write_text(zoo_cfg(self.plan, self.host, self.data_dir))

    def serving(self) -> bool:
        return bool(mode(four_letter(self.host.address, "srvr")))

    def start(self) -> None:
        if not ZOOKEEPER_JAR.is_file():
            raise StackError(
                f"ZooKeeper is not installed ({ZOOKEEPER_JAR} is missing)",
                hint="`apt-get install zookeeper` (bash scripts/dev.sh setup does it)",
            )
        self.start_process()
        ensemble = len(self.plan.hosts(Role.ZOOKEEPER))
        # An ensemble member serves only once a majority runs: the caller starts them all, then waits on each.
        timeout_s = START_TIMEOUT_S if ensemble == 1 else START_TIMEOUT_S * 2
        process.wait_until(
            self.serving,
            timeout_s=timeout_s,
            what=f"ZooKeeper on {self.host.name}",
            log_path=self.log_file,
            still_running=lambda: bool(self.pids()),
        )

    def start_process(self) -> None:
        """Start without waiting: an ensemble's members must all be started before any serves."""
        if not self.pids():
            self.write_config()
            netns.spawn(self.host, self.command(), env={"PATH": "/usr/bin:/bin"}, log_file=self.log_file)

    def stop(self) -> None:
        jvm.stop(self.pids())

    def kill(self) -> list[int]:
        return jvm.kill(self.pids())

    def pids(self) -> list[int]:
        return jvm.pids_with(self.host, str(self.cfg))

    def status(self) -> ServiceStatus:
        pids = tuple(self.pids())
        serving_mode = mode(four_letter(self.host.address, "srvr")) if pids else ""
        if not pids:
            state, detail = "stopped", "-"
        elif not netns.link_up(self.host):
            state, detail = "partitioned", serving_mode or "not serving"
        elif serving_mode:
            state, detail = "running", serving_mode
        else:
            state, detail = "degraded", "not serving (no quorum?)"
        return ServiceStatus(host=self.host.name, service=self.name, state=state, pids=pids, detail=detail)
