"""Three Cassandra 5.0 nodes in one ring, one per Cassandra host: the single node's cassandra.yaml and JVM
(fleetsense/stack/cassandra.py) with the host's address, two seeds, a datacenter and a rack per node.

A brand-new ring starts its nodes together without bootstrap: with no data anywhere there is nothing to stream,
so `auto_bootstrap: false` is safe and skips the joining node's RING_DELAY (30 s) and streaming sleeps; and with
`skip_wait_for_gossip_to_settle=0` nobody polls gossip for ~10 s before opening CQL. A node that starts on an
existing ring (after `fault stop`, or a replaced disk) keeps auto_bootstrap on: it has data to catch up on.
Hinted handoff stays on (window 3 h, the default): a node back within it gets the writes it missed from its peers;
`repair` covers anything longer.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fleetsense.cluster import netns
from fleetsense.cluster.host_stack import CLUSTER_NAME, host_config
from fleetsense.cluster.plan import ClusterPlan, Host, Role
from fleetsense.cluster.service import ServiceStatus
from fleetsense.errors import StackError
from fleetsense.stack import process
from fleetsense.stack.cassandra import Cassandra, _java_env, cassandra_yaml
from fleetsense.stack.cassandra_dist import JAVA17_FLAGS, cassandra_version, complete, lib_dir

DATACENTER = "dc1"
SEED_COUNT = 2  # two seeds: a ring whose one seed is down cannot admit a restarted node
REPLICATION_FACTOR = 3
CQL_PORT = 9042
JMX_PORT = 7199  # on the namespace's loopback only: nodetool (repair) runs on the node's own host
START_TIMEOUT_S = 300.0  # three JVMs start together on two cores
HINT_WINDOW = "3h"
SCHEMA_AGREEMENT_TIMEOUT_S = 120.0
TOOL_LOGBACK_XML = """<configuration>
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target><encoder><pattern>%-5level %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDERR" /></root>
</configuration>
"""


def seeds(plan: ClusterPlan) -> list[str]:
    return [host.address for host in plan.hosts(Role.CASSANDRA)[:SEED_COUNT]]


def replication(plan: ClusterPlan) -> str:
    """The keyspace's replication on this ring (NetworkTopologyStrategy: racks and datacenters count)."""
    factor = min(REPLICATION_FACTOR, len(plan.hosts(Role.CASSANDRA)))
    return f"{{'class': 'NetworkTopologyStrategy', '{DATACENTER}': {factor}}}"


def rackdc_properties(host: Host) -> str:
    """GossipingPropertyFileSnitch's file: one datacenter, a rack per node (as three machines would be)."""
    return f"dc={DATACENTER}\nrack=rack{host.index}\n"


def ring_yaml(plan: ClusterPlan, host: Host, *, new_ring: bool) -> dict[str, object]:
    config = host_config(plan, host)
    settings = cassandra_yaml(config, config.component_dir("cassandra"), address=host.address, seeds=seeds(plan))
    settings.update(
        cluster_name=f"{CLUSTER_NAME} cluster",
        endpoint_snitch="GossipingPropertyFileSnitch",
        auto_bootstrap=not new_ring,
        hinted_handoff_enabled=True,
        max_hint_window=HINT_WINDOW,
    )
    return settings


def ring_jvm_flags() -> list[str]:
    return [
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        f"-Dcassandra.jmx.local.port={JMX_PORT}",
        "-Djava.rmi.server.hostname=127.0.0.1",
    ]


def ring_is_new(plan: ClusterPlan) -> bool:
    """No node of the ring has any data yet."""
    for host in plan.hosts(Role.CASSANDRA):
        data = host_config(plan, host).component_dir("cassandra") / "data"
        if data.is_dir() and any(data.iterdir()):
            return False
    return True


def cql_answers(host: Host) -> bool:
    return process.port_accepts(host.address, CQL_PORT)


@contextmanager
def node_session(
    host: Host, *, timeout_s: float = 5.0, schema_agreement_wait_s: float = 10.0, request_timeout_s: float = 10.0
) -> Iterator[Any]:
    """A session whose every request goes to `host` alone (a whitelist policy): what that node says, not the
    ring."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    logging.getLogger("cassandra").setLevel(logging.ERROR)  # its protocol-downgrade warnings, as open_cluster does
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([host.address]), request_timeout=request_timeout_s
    )
    cluster = Cluster(
        [host.address],
        port=CQL_PORT,
        connect_timeout=timeout_s,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        max_schema_agreement_wait=schema_agreement_wait_s,
    )
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def node_view(host: Host, *, timeout_s: float = 5.0) -> dict[str, Any] | None:
    """What the node itself says over CQL: its bootstrap state and the peers it knows; None when it does not
    answer (a dead node is not answered for by another)."""
    if not cql_answers(host):
        return None
    try:
        with node_session(host, timeout_s=timeout_s) as session:
            local = session.execute("SELECT bootstrapped, data_center, rack FROM system.local").one()
            peers = [str(row.peer) for row in session.execute("SELECT peer FROM system.peers_v2")]
    except Exception:  # any driver failure means: this node does not answer for itself
        return None
    return {"bootstrapped": local.bootstrapped, "dc": local.data_center, "rack": local.rack, "peers": sorted(peers)}


def node_state(view: dict[str, Any] | None) -> str:
    """nodetool's two letters as seen from outside: Up/Down, Normal/Joining."""
    if view is None:
        return "DN"
    return "UN" if view["bootstrapped"] == "COMPLETED" else "UJ"


def ring_status(plan: ClusterPlan) -> dict[str, str]:
    """Host name -> "UN" / "UJ" / "DN" for every node of the ring."""
    return {host.name: node_state(node_view(host)) for host in plan.hosts(Role.CASSANDRA)}


def answering_node(plan: ClusterPlan) -> Host:
    for host in plan.hosts(Role.CASSANDRA):
        if netns.link_up(host) and cql_answers(host):
            return host
    raise StackError(
        "no Cassandra node of the cluster answers CQL",
        hint="`fleetsense cluster status` shows which Cassandra hosts run; `fleetsense cluster up` starts them",
    )


def apply_schema(plan: ClusterPlan) -> None:
    """The keyspace with the ring's replication (created first, so cloud/schema.py's `IF NOT EXISTS` keeps it),
    then the tables and migrations as on the single node, through one coordinator. The driver waits for the ring
    to agree after each change (measured: 75-112 s in all here); it cannot be skipped: a migration that copies a
    table reads at LOCAL_QUORUM, and a replica that has not seen the new table fails the read (tried)."""
    from fleetsense.cloud.schema import KEYSPACE
    from fleetsense.cloud.schema import apply_schema as apply_tables

    with node_session(
        answering_node(plan), timeout_s=10, schema_agreement_wait_s=SCHEMA_AGREEMENT_TIMEOUT_S
    ) as session:
        session.execute(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = {replication(plan)}")
        apply_tables(session)
        process.wait_until(
            lambda: schema_agreed(session),
            timeout_s=SCHEMA_AGREEMENT_TIMEOUT_S,
            what="the ring's agreement on the schema",
        )


def schema_agreed(session: Any) -> bool:
    """Whether the coordinator and every peer it knows report one schema version."""
    local = session.execute("SELECT schema_version FROM system.local").one().schema_version
    peers = [row.schema_version for row in session.execute("SELECT schema_version FROM system.peers_v2")]
    return all(version == local for version in peers)


def keyspace_replication(plan: ClusterPlan) -> dict[str, str]:
    from fleetsense.cloud.cassandra_session import connect
    from fleetsense.cloud.schema import KEYSPACE

    with connect((answering_node(plan).address, CQL_PORT)) as session:
        row = session.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (KEYSPACE,)
        ).one()
    return dict(row.replication) if row else {}


class CassandraNode:
    """One ring node on its host (HostService)."""

    name = "cassandra"

    def __init__(self, plan: ClusterPlan, host: Host) -> None:
        self.plan = plan
        self.host = host
        self.cassandra = Cassandra(host_config(plan, host))
        # Decided when the service is made (before any node starts): a node's own first write must not turn
        # its peers' start into a bootstrap.
        self.new_ring = ring_is_new(plan)

    def _pid(self) -> int | None:
        pids = process.read_pids(self.cassandra.pid_file)
        return pids[0] if pids and process.pid_alive(pids[0]) else None

    def pids(self) -> list[int]:
        pid = self._pid()
        return [pid] if pid else []

    def write_config(self) -> None:
        self.cassandra.write_config()  # the single node's files (logback, directories), then the ring's settings
        conf = self.cassandra.conf_dir
        settings = ring_yaml(self.plan, self.host, new_ring=self.new_ring)
        (conf / "cassandra.yaml").write_text(json.dumps(settings, indent=2))
        (conf / "cassandra-rackdc.properties").write_text(rackdc_properties(self.host))

    def start(self) -> None:
        if self._pid() is None:
            lib = lib_dir(self.cassandra.config)
            if not complete(lib, cassandra_version()):
                raise StackError(
                    f"Cassandra {cassandra_version()}'s jars are missing ({lib})",
                    hint="run `fleetsense stack prepare` (the README's set-up command does this)",
                )
            self.write_config()
            self.cassandra._claim_data_dir()
            command = self.cassandra.java_command(lib)
            command[1:1] = ring_jvm_flags()
            pid = netns.spawn(
                self.host,
                command,
                env=_java_env(),
                log_file=self.cassandra.log_dir / "stdout.log",
                cwd=self.cassandra.state_dir,
            )
            self.cassandra.pid_file.write_text(f"{pid}\n")
        process.wait_until(
            lambda: cql_answers(self.host),
            timeout_s=START_TIMEOUT_S,
            what=f"Cassandra on {self.host.name}",
            log_path=self.cassandra.main_log(),
            still_running=lambda: self._pid() is not None,
        )

    def stop(self) -> None:
        pid = self._pid()
        if pid is not None:
            # SIGTERM runs Cassandra's shutdown hook: it drains, flushes the commit log and leaves gossip.
            process.terminate([pid], grace_s=30)

    def kill(self) -> list[int]:
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
        if not pids:
            return ServiceStatus(host=self.host.name, service=self.name, state="stopped", pids=(), detail="DN")
        view = node_view(self.host)
        state = node_state(view)
        if view is None:
            return ServiceStatus(
                host=self.host.name,
                service=self.name,
                state="degraded",
                pids=pids,
                detail="DN (process up, CQL not answering: starting or cut off)",
            )
        detail = f"{state} {view['dc']}/{view['rack']}, knows {len(view['peers'])} peers"
        return ServiceStatus(host=self.host.name, service=self.name, state="running", pids=pids, detail=detail)


def nodetool(plan: ClusterPlan, host: Host, *args: str, timeout_s: float = 600.0) -> str:
    """Cassandra's nodetool (from the same jars) against `host`'s JMX on its own loopback."""
    config = host_config(plan, host)
    lib = lib_dir(config)
    java = process.require_binary("java", hint="install Java 17: `apt-get install openjdk-17-jdk-headless`")
    # The server's JPMS flags (FileUtils needs them in the tool too); its history file goes to the host's disk;
    # warnings only (without a logback file of its own, the tool logs Netty's DEBUG lines to stdout).
    logback = config.data_dir / "nodetool-logback.xml"
    logback.write_text(TOOL_LOGBACK_XML)
    flags = [f"-Duser.home={config.data_dir}", f"-Dlogback.configurationFile={logback}", *JAVA17_FLAGS]
    cmd = [java, "-Xmx128m", *flags, "-cp", f"{lib}/*", "org.apache.cassandra.tools.NodeTool"]
    done = netns.run(
        host,
        [*cmd, "-h", "127.0.0.1", "-p", str(JMX_PORT), *args],
        env=_java_env(),
        timeout_s=timeout_s,
        what=f"nodetool {' '.join(args)}",
    )
    return done.stdout


def repair(plan: ClusterPlan, host: Host, keyspace: str = "fleetsense") -> str:
    """A full repair of `keyspace` run from `host`: after a node was down longer than the hint window (3 h), or
    lost hints, its replicas are made whole again from the others."""
    return nodetool(plan, host, "repair", "--full", keyspace)
