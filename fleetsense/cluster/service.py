"""What each host role runs, as seen by `cluster up | down | status | fault`: one interface for every service.

brokers.py (RabbitMQ node + its authoriser), cassandra_ring.py (a Cassandra node), zookeeper.py and flink_ha.py
(ZooKeeper, a JobManager, a TaskManager) each implement it; roles.py maps a Role to its service; the fleet host runs
no service of its own (the simulated vehicles are started on it by the scenario that needs them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fleetsense.cluster.plan import ClusterPlan, Host


@dataclass(frozen=True, kw_only=True)
class ServiceStatus:
    host: str  # "rmq1"
    service: str  # "rabbitmq", "cassandra", "zookeeper", "jobmanager", "taskmanager"
    state: str  # "running", "stopped", "degraded", "partitioned"
    pids: tuple[int, ...]
    detail: str  # what the service says of itself: "leader", "standby", "UN", "member of 3", ...


class HostService(Protocol):
    """One service on one host. `start` returns once it answers (or raises StackError with the log's path);
    `kill` is the power switch (SIGKILL, no clean shutdown); `stop` is a clean shutdown."""

    name: str

    def __init__(self, plan: ClusterPlan, host: Host) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def kill(self) -> list[int]: ...

    def pids(self) -> list[int]: ...

    def status(self) -> ServiceStatus: ...
