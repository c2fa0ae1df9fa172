"""Where clients reach the cluster from the root namespace (or any host): every broker's MQTT and AMQP, the CQL
contact points, each JobManager's REST API. The scenarios, the job's settings and `cluster status` read them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetsense.cluster.plan import ClusterPlan, Role
from fleetsense.stack.layout import Ports

PORTS = Ports()  # each host has its own network stack: the well-known ports everywhere (host_stack.py)


@dataclass(frozen=True, kw_only=True)
class Endpoints:
    mqtt: tuple[tuple[str, int], ...]  # (address, port) per broker node, rmq1 first
    amqp: tuple[tuple[str, int], ...]
    management: tuple[str, ...]  # http://address:15672 per broker node
    cql: tuple[str, ...]  # contact points (addresses); port cql_port
    cql_port: int
    flink_rest: tuple[str, ...]  # http://address:8081 per JobManager (the leader answers; a standby redirects)

    @property
    def amqp_hosts(self) -> str:
        """The job's amqp_host setting on the cluster: a comma-separated list of the broker addresses."""
        return ",".join(address for address, _ in self.amqp)

    @property
    def cassandra_hosts(self) -> str:
        """The job's cassandra_host setting on the cluster."""
        return ",".join(self.cql)

    def lines(self) -> list[str]:
        return [
            "MQTT        " + " ".join(f"{a}:{p}" for a, p in self.mqtt),
            "AMQP        " + " ".join(f"{a}:{p}" for a, p in self.amqp),
            "management  " + " ".join(self.management),
            "CQL         " + " ".join(f"{a}:{self.cql_port}" for a in self.cql),
            "Flink REST  " + (" ".join(self.flink_rest) or "-"),
        ]


def endpoints(plan: ClusterPlan) -> Endpoints:
    brokers = [host.address for host in plan.hosts(Role.BROKER)]
    return Endpoints(
        mqtt=tuple((address, PORTS.mqtt) for address in brokers),
        amqp=tuple((address, PORTS.amqp) for address in brokers),
        management=tuple(f"http://{address}:{PORTS.rabbitmq_management}" for address in brokers),
        cql=tuple(host.address for host in plan.hosts(Role.CASSANDRA)),
        cql_port=PORTS.cql,
        flink_rest=tuple(f"http://{host.address}:{PORTS.flink_rest}" for host in plan.hosts(Role.JOBMANAGER)),
    )


def vehicles_dir(plan: ClusterPlan) -> Path:
    return plan.data_dir / "vehicles"


def provision_vehicle(plan: ClusterPlan, vehicle_id: str, *, out_dir: Path | None = None) -> Path:
    """A broker user for `vehicle_id` (created once: users are cluster-wide) and its edge config file
    `<out_dir>/<vehicle_id>.toml` pointing at the cluster's brokers over plain MQTT (the dev profile). Returns the
    config file's path."""
    from fleetsense.cluster.brokers import management_client
    from fleetsense.device_config import ClockConfig
    from fleetsense.gateway.provision import BrokerEndpoint, provision
    from fleetsense.ids import validate_vehicle_id
    from fleetsense.stack.secrets import new_password

    validate_vehicle_id(vehicle_id)
    path = ((out_dir or vehicles_dir(plan)) / f"{vehicle_id}.toml").absolute()
    address, port = endpoints(plan).mqtt[0]
    # TODO(issue 16, failover helper): list every broker in the device config's `endpoints` field once it exists;
    # until then the device knows the first broker only.
    provision(
        management_client(plan),
        vehicle_id,
        endpoint=BrokerEndpoint(host=address, mqtt_port=port),
        config_path=path,
        state_dir=path.with_suffix(""),
        password=new_password(),
        # The vehicles run on this machine, whose clock is the cloud's (as for the single-node stack's vehicles).
        clock=ClockConfig(assume_synced=True),
    )
    return path
