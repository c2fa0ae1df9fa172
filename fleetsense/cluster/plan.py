"""The cluster's hosts, declared once: which roles, how many of each, their names, addresses and memory.

Every other module of the cluster (the network, the processes started on each host, `cluster status`, the fault
injector, the tests) derives what it needs from `ClusterPlan.hosts()`; nothing else spells out a host or an address.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path

from fleetsense.errors import ConfigError


class Role(enum.Enum):
    """What a host runs. The value is the host name's stem (`rmq1`, `cas2`, ...) and its addresses' block."""

    BROKER = "rmq"
    CASSANDRA = "cas"
    ZOOKEEPER = "zk"
    JOBMANAGER = "jm"
    TASKMANAGER = "tm"
    FLEET = "fleet"


# The last octet of a host's address: block + index (1-based), so addresses say the role at a glance.
ADDRESS_BLOCK: dict[Role, int] = {
    Role.BROKER: 10,
    Role.CASSANDRA: 20,
    Role.ZOOKEEPER: 30,
    Role.JOBMANAGER: 40,
    Role.TASKMANAGER: 50,
    Role.FLEET: 60,
}
MAX_PER_ROLE = 9  # one address block each
BRIDGE_HOST_OCTET = 1  # the root namespace's own address on the bridge: the CLI and the tests reach hosts from it

CLUSTER_DATA_DIR_ENV = "FLEETSENSE_CLUSTER_DATA_DIR"


@dataclass(frozen=True, kw_only=True)
class Host:
    role: Role
    index: int  # 1-based within its role
    name: str  # "rmq1": also its name in /etc/hosts of every namespace (Erlang node names need one)
    address: str  # "10.77.0.11"
    namespace: str  # "fs-rmq1": the Linux network namespace it runs in
    veth: str  # the root namespace's end of its link ("fs-rmq1", <= 15 bytes): down = partitioned


@dataclass(frozen=True, kw_only=True)
class ClusterPlan:
    """One cluster on this machine. `prefix` and `subnet` keep two clusters (a developer's, the tests') apart."""

    data_dir: Path
    prefix: str = "fs"  # namespace, bridge and veth names start with it; <= 5 bytes (interface names are <= 15)
    subnet: int = 77  # hosts are 10.<subnet>.0.x/24
    counts: dict[Role, int] = field(
        default_factory=lambda: {
            Role.BROKER: 3,
            Role.CASSANDRA: 3,
            Role.ZOOKEEPER: 3,  # an ensemble: losing one node costs the job a ~1 s restart, not an outage
            Role.JOBMANAGER: 2,  # the leader and a standby
            Role.TASKMANAGER: 2,  # `cluster scale` adds up to MAX_PER_ROLE
            Role.FLEET: 1,
        }
    )
    # JVM heaps in MiB, per role: 2 cores and 24 GiB hold the whole plan (docs/deployment.md gives measured RSS).
    heap_mb: dict[Role, int] = field(
        default_factory=lambda: {
            Role.CASSANDRA: 512,
            Role.ZOOKEEPER: 64,
            Role.JOBMANAGER: 512,
            Role.TASKMANAGER: 768,
        }
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).absolute())
        if not (self.prefix.isalnum() and self.prefix.islower() and 1 <= len(self.prefix) <= 5):
            raise ConfigError(f"cluster prefix {self.prefix!r} must be 1-5 lower-case letters or digits")
        if not 1 <= self.subnet <= 254:
            raise ConfigError(f"cluster subnet {self.subnet} must be 1..254 (hosts are 10.<subnet>.0.x)")
        for role, count in self.counts.items():
            if not 0 <= count <= MAX_PER_ROLE:
                raise ConfigError(f"{count} {role.name.lower()} hosts: at most {MAX_PER_ROLE} per role")

    @classmethod
    def for_tests(cls, data_dir: Path) -> ClusterPlan:
        """The test suite's cluster, apart from a developer's (`fs`, 10.77): $FLEETSENSE_TEST_PORTS_OFFSET (the
        same variable that moves the single-node test stack) also moves the prefix and the subnet."""
        offset_text = os.environ.get("FLEETSENSE_TEST_PORTS_OFFSET", "0")
        offset = int(offset_text) if offset_text.isdigit() else 0
        step = offset // 100  # 0, 3, 6, 9, 12 for the offsets in use
        return cls(data_dir=data_dir, prefix=f"ft{step}" if step else "ft", subnet=80 + step)

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br"

    @property
    def bridge_address(self) -> str:
        return self.address(BRIDGE_HOST_OCTET)

    def address(self, octet: int) -> str:
        return f"10.{self.subnet}.0.{octet}"

    def host(self, role: Role, index: int) -> Host:
        name = f"{role.value}{index}"
        namespace = f"{self.prefix}-{name}"
        return Host(
            role=role,
            index=index,
            name=name,
            address=self.address(ADDRESS_BLOCK[role] + index),
            namespace=namespace,
            veth=namespace,
        )

    def hosts(self, role: Role | None = None) -> list[Host]:
        """Every host of the plan (or of one role), in a stable order: brokers, Cassandra, ZooKeeper, JobManagers,
        TaskManagers, fleet."""
        roles = [role] if role else list(Role)
        return [self.host(r, i) for r in roles for i in range(1, self.counts.get(r, 0) + 1)]

    def by_name(self, name: str) -> Host:
        for host in self.hosts():
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts())
        raise ConfigError(f"no host named {name!r} in this cluster", hint=f"choose one of: {known}")

    def host_dir(self, host: Host) -> Path:
        """Where a host keeps its state and logs: like a machine's disk, it survives the host's stop and start."""
        return self.data_dir / "hosts" / host.name

    @property
    def shared_dir(self) -> Path:
        """What every host sees at the same path: Flink's HA storage and checkpoints (a real cluster uses S3, HDFS
        or NFS here)."""
        return self.data_dir / "shared"
