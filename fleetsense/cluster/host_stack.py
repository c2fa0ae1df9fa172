"""A cluster host seen as a one-machine stack: the single-node components' settings, reused per host.

Each host has its own network stack, so it keeps the well-known ports (`Ports()`: 5672, 1883, 9042, 7000, ...); its
disk is `plan.host_dir(host)`; and every host reads the cluster's one secrets directory (like a shared secrets
mount), so the operator's password and the Erlang cookie are the same everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetsense.cluster.plan import ClusterPlan, Host, Role
from fleetsense.stack.layout import Ports, StackConfig

CLUSTER_NAME = "fleetsense"  # RabbitMQ node names (fleetsense@rmq1) and the Cassandra cluster_name derive from it
PROFILE = "dev"  # plain MQTT/AMQP/CQL inside the bridge, device logins on (docs/cluster.md)


def secrets_dir(plan: ClusterPlan) -> Path:
    return plan.data_dir / "secrets"


def host_config(plan: ClusterPlan, host: Host) -> StackConfig:
    """The StackConfig a single-node component needs to run as this host's service."""
    config = StackConfig(
        data_dir=plan.host_dir(host),
        ports=Ports(),
        name=CLUSTER_NAME,
        profile=PROFILE,
        cassandra_heap_mb=plan.heap_mb.get(Role.CASSANDRA, 512),
    )
    link_secrets(plan, config)
    return config


def link_secrets(plan: ClusterPlan, config: StackConfig) -> None:
    """`<host dir>/secrets` -> the cluster's secrets (relative, so a moved data dir keeps working)."""
    shared = secrets_dir(plan)
    shared.mkdir(parents=True, exist_ok=True, mode=0o700)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if not config.secrets_dir.is_symlink():
        config.secrets_dir.symlink_to(os.path.relpath(shared, config.data_dir))
