"""`fleetsense cluster up | down | status`: the hosts of a plan as namespaces, their services started in
dependency order (brokers, the ring and Flink side by side), then what needs the whole cluster (broker topology,
Cassandra schema); and the way back to nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetsense.cluster import netns, roles
from fleetsense.cluster.plan import ClusterPlan, Host, Role
from fleetsense.cluster.service import HostService, ServiceStatus
from fleetsense.errors import FleetsenseError, StackError

Say = Callable[[str], None]

# Within a lane, each step waits for the previous one; the lanes run side by side (2 cores: the JVMs' start-up
# CPU overlaps the brokers' and the ring's waits on each other).
FLINK_STEPS = (Role.ZOOKEEPER, Role.JOBMANAGER, Role.TASKMANAGER)
STOP_ORDER = (Role.TASKMANAGER, Role.JOBMANAGER, Role.ZOOKEEPER, Role.CASSANDRA, Role.BROKER)
# Stopped one at a time, last host first: the first host is the last to stop and boots alone next time (broker_lane).
STOP_ONE_BY_ONE = {Role.BROKER}
BROKER_HEAD_START_S = 60.0


@dataclass(frozen=True, kw_only=True)
class UpTimings:
    hosts_s: float
    services_s: dict[str, float]  # lane -> seconds until all its services answered
    apply_s: float
    total_s: float


def _parallel(tasks: Sequence[tuple[str, Callable[[], None]]]) -> dict[str, FleetsenseError]:
    """Run the tasks side by side; their failures by name (a traceback of an unexpected error still surfaces)."""
    errors: dict[str, FleetsenseError] = {}

    def run(name: str, task: Callable[[], None]) -> None:
        try:
            task()
        except FleetsenseError as exc:
            errors[name] = exc

    threads = [threading.Thread(target=run, args=task, name=f"cluster-{task[0]}") for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def _services(plan: ClusterPlan, role: Role, say: Say) -> list[HostService]:
    try:
        return [service for host in plan.hosts(role) if (service := roles.service_for(plan, host))]
    except roles.ServiceNotBuilt as exc:
        say(f"  {role.name.lower()}: skipped, {exc.message}")
        return []


def _start_group(services: Sequence[HostService], hosts: Sequence[Host]) -> None:
    errors = _parallel([(host.name, service.start) for host, service in zip(hosts, services, strict=True)])
    _raise_first(errors)


def _raise_first(errors: dict[str, FleetsenseError]) -> None:
    if errors:
        name, first = next(iter(errors.items()))
        others = "; ".join(f"{n}: {e.message}" for n, e in list(errors.items())[1:])
        raise StackError(
            f"{name} did not come up: {first.message}" + (f" (also {others})" if others else ""),
            hint=first.hint or "read the log, then run `fleetsense cluster up` again (it keeps what runs)",
            log_path=first.log_path,
        )


def broker_lane(plan: ClusterPlan, say: Say) -> None:
    """rmq1 first, then the others together. A brand-new rmq1 forms the cluster alone and the others join it
    (started together, each could form a cluster of its own). A cluster that ran before: `down` stopped rmq1 last,
    so it boots without waiting for its peers' tables; if it was not the last to stop (a crash), it waits for them,
    and the others follow after BROKER_HEAD_START_S without it.
    Known cost (RabbitMQ 3.10): a restarted node's MQTT plugin asks its peers for their client-id Raft members
    before restarting its own member, so when every node restarts, MQTT waits for its 100 s timeout (measured:
    warm `up` ~110 s, of which 100 s in that wait; one node restarted alone rejoins in ~5 s)."""
    from fleetsense.cluster.brokers import BrokerNode

    hosts = plan.hosts(Role.BROKER)
    nodes = [BrokerNode(plan, host) for host in hosts]
    if not nodes:
        return
    first_errors: dict[str, FleetsenseError] = {}
    first = threading.Thread(target=lambda: first_errors.update(_parallel([(hosts[0].name, nodes[0].start)])))
    first.start()
    first.join(timeout=None if nodes[0].fresh() else BROKER_HEAD_START_S)
    _raise_first(first_errors)
    rest = _parallel([(host.name, node.start) for host, node in zip(hosts[1:], nodes[1:], strict=True)])
    first.join()
    _raise_first({**first_errors, **rest})
    from fleetsense.cluster import mqtt_raft

    added = mqtt_raft.ensure_members(plan)  # RabbitMQ 3.10 can leave a node out of it (mqtt_raft.py says why)
    say(f"  brokers: {len(hosts)} nodes up" + (f"; added {', '.join(added)} to the MQTT Raft cluster" if added else ""))


def ring_lane(plan: ClusterPlan, say: Say) -> None:
    services = _services(plan, Role.CASSANDRA, say)
    _start_group(services, plan.hosts(Role.CASSANDRA))
    say(f"  cassandra: {len(services)} nodes up")


def flink_lane(plan: ClusterPlan, say: Say) -> None:
    for role in FLINK_STEPS:
        services = _services(plan, role, say)
        if services:
            _start_group(services, plan.hosts(role))
            say(f"  {role.name.lower()}: {len(services)} up")


def up(plan: ClusterPlan, *, say: Say = print) -> UpTimings:
    """Create every host, start every built service, then apply the broker topology and the schema. Harmless on
    a cluster that runs: what answers is left alone."""
    netns.require_root()
    started = time.monotonic()
    plan.data_dir.mkdir(parents=True, exist_ok=True)
    plan.shared_dir.mkdir(parents=True, exist_ok=True)
    netns.create_bridge(plan)
    for host in plan.hosts():
        netns.create_host(plan, host)
    hosts_s = time.monotonic() - started
    say(f"  hosts: {len(plan.hosts())} namespaces on {plan.bridge} ({plan.address(0)}/24)")
    lanes: dict[str, Callable[[ClusterPlan, Say], None]] = {
        "brokers": broker_lane,
        "cassandra": ring_lane,
        "flink": flink_lane,
    }
    lane_s: dict[str, float] = {}

    def timed(name: str) -> Callable[[], None]:
        def run() -> None:
            lanes[name](plan, say)
            lane_s[name] = time.monotonic() - started

        return run

    _raise_first(_parallel([(name, timed(name)) for name in lanes]))
    applying = time.monotonic()
    apply_topology_and_schema(plan)
    say("  broker topology and Cassandra schema: applied")
    now = time.monotonic()
    return UpTimings(hosts_s=hosts_s, services_s=lane_s, apply_s=now - applying, total_s=now - started)


def apply_topology_and_schema(plan: ClusterPlan) -> None:
    from fleetsense.cluster import brokers, cassandra_ring
    from fleetsense.cluster.host_stack import host_config
    from fleetsense.gateway import topology
    from fleetsense.stack.manager import flink_job_credentials, service_broker_credentials

    client = brokers.management_client(plan)
    topology.apply(client, operator=brokers.operator(plan).username)
    broker_host = host_config(plan, plan.hosts(Role.BROKER)[0])
    topology.ensure_flink_user(client, flink_job_credentials(broker_host).password)
    topology.ensure_service_user(client, service_broker_credentials(broker_host).password)
    cassandra_ring.apply_schema(plan)


def down(plan: ClusterPlan, *, say: Say = print) -> list[str]:
    """Stop every service cleanly (consumers before what they consume), then remove every namespace and link of
    the plan's prefix. Returns what was removed; raises if anything is left."""
    netns.require_root()
    for role in STOP_ORDER:
        hosts = [host for host in plan.hosts(role) if host.namespace in netns.namespaces()]
        services = _services(plan, role, say) if hosts else []
        running = [(h.name, s.stop) for h, s in zip(plan.hosts(role), services, strict=False) if h in hosts]
        if role in STOP_ONE_BY_ONE:
            errors = {}
            for task in reversed(running):
                errors.update(_parallel([task]))
        else:
            errors = _parallel(running)
        for name, error in errors.items():
            say(f"  {name}: clean stop failed ({error.message}); removing the host kills it")
        if running:
            say(f"  {role.name.lower()}: stopped on {', '.join(name for name, _ in running)}")
    removed = netns.remove_all(plan)
    say(f"  removed: {', '.join(removed) if removed else 'nothing (no host existed)'}")
    left = netns.leftovers(plan)
    if left:
        raise StackError(f"left behind after down: {', '.join(left)}", hint="run `fleetsense cluster down` again")
    return removed


# -- status ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class HostRow:
    host: str
    role: str
    address: str
    link: str  # "up", "partitioned", "absent" (no namespace)
    service: ServiceStatus | None
    rss_mb: float  # every process on the host


def rss_mb(pids: Sequence[int]) -> float:
    total_kb = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total_kb / 1024


def host_row(plan: ClusterPlan, host: Host) -> HostRow:
    role = host.role.name.lower()
    if host.namespace not in netns.namespaces():
        return HostRow(host=host.name, role=role, address=host.address, link="absent", service=None, rss_mb=0.0)
    link = "up" if netns.link_up(host) else "partitioned"
    try:
        service = roles.service_for(plan, host)
    except roles.ServiceNotBuilt:
        service = None
    status = None
    if service is not None:
        if link == "up":
            status = service.status()
        else:  # its probes would only time out: say what runs
            pids = tuple(service.pids())
            state = "partitioned" if pids else "stopped"
            status = ServiceStatus(host=host.name, service=service.name, state=state, pids=pids, detail="link down")
    return HostRow(
        host=host.name, role=role, address=host.address, link=link, service=status, rss_mb=rss_mb(netns.pids(host))
    )


def status(plan: ClusterPlan) -> list[HostRow]:
    rows: dict[str, HostRow] = {}

    def probe(host: Host) -> None:
        rows[host.name] = host_row(plan, host)

    threads = [threading.Thread(target=probe, args=(host,)) for host in plan.hosts()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [rows[host.name] for host in plan.hosts()]


def format_status(rows: Sequence[HostRow]) -> str:
    header = ("HOST", "ROLE", "ADDRESS", "LINK", "SERVICE", "STATE", "PIDS", "RSS MiB", "DETAIL")
    table = [header]
    for row in rows:
        service = row.service
        table.append(
            (
                row.host,
                row.role,
                row.address,
                row.link,
                service.service if service else "-",
                service.state if service else ("-" if row.link == "absent" else "none"),
                ",".join(map(str, service.pids)) if service and service.pids else "-",
                f"{row.rss_mb:.0f}" if row.rss_mb else "-",
                service.detail if service else "-",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in table)
