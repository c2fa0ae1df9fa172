"""Which service each host role runs: Role -> its HostService class, imported when first needed.

The import is lazy so a role whose module is not built yet (or whose libraries are not installed) fails only the
commands that need it, with a message that says which; the fleet host runs no service of its own (the scenarios
start simulated vehicles on it).
"""

from __future__ import annotations

import importlib
from typing import cast

from fleetsense.cluster.plan import ClusterPlan, Host, Role
from fleetsense.cluster.service import HostService
from fleetsense.errors import StackError

# Role -> (module, class). The order of roles in a host's start follows plan.Role.
SERVICE_CLASSES: dict[Role, tuple[str, str]] = {
    Role.BROKER: ("fleetsense.cluster.brokers", "BrokerNode"),
    Role.CASSANDRA: ("fleetsense.cluster.cassandra_ring", "CassandraNode"),
    Role.ZOOKEEPER: ("fleetsense.cluster.zookeeper", "ZooKeeperNode"),
    Role.JOBMANAGER: ("fleetsense.cluster.flink_ha", "JobManagerNode"),
    Role.TASKMANAGER: ("fleetsense.cluster.flink_ha", "TaskManagerNode"),
}


class ServiceNotBuilt(StackError):
    """A role's service module does not exist in this checkout yet."""


def service_class(role: Role) -> type[HostService] | None:
    """The class that runs `role`'s service, None for a role without one (the fleet)."""
    if role not in SERVICE_CLASSES:
        return None
    module_name, class_name = SERVICE_CLASSES[role]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # a library the module needs is missing: the CLI says which
        raise ServiceNotBuilt(
            f"the {role.name.lower()} service is not built yet ({module_name} does not exist in this checkout)",
            hint="its hosts are created but run nothing; merge the branch that adds it",
        ) from exc
    return cast(type[HostService], getattr(module, class_name))


def built(role: Role) -> bool:
    try:
        service_class(role)
    except ServiceNotBuilt:
        return False
    return True


def service_for(plan: ClusterPlan, host: Host) -> HostService | None:
    """The service object of `host` (stateless: it reads its state from the host's disk and processes)."""
    cls = service_class(host.role)
    return cls(plan, host) if cls else None
