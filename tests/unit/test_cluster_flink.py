"""The Flink side of the cluster rendered from the plan: ZooKeeper's zoo.cfg, each jm/tm host's Flink settings, and
the leader's address as Flink writes it in ZooKeeper."""

from __future__ import annotations

from pathlib import Path

from fleetsense.cluster import flink_ha, zookeeper
from fleetsense.cluster.plan import ClusterPlan, Role
from fleetsense.stack.flink import flink_settings
from fleetsense.stack.layout import StackConfig


def _plan(tmp_path: Path, zookeepers: int = 1) -> ClusterPlan:
    counts = {Role.ZOOKEEPER: zookeepers, Role.JOBMANAGER: 2, Role.TASKMANAGER: 2}
    return ClusterPlan(data_dir=tmp_path, counts=counts)


def test_a_lone_zookeeper_runs_standalone_on_its_own_address(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    zk1 = plan.hosts(Role.ZOOKEEPER)[0]
    cfg = zookeeper.zoo_cfg(plan, zk1, tmp_path / "data")
    assert f"clientPortAddress={zk1.address}" in cfg and "clientPort=2181" in cfg
    assert "server." not in cfg
    assert zookeeper.quorum(plan) == f"{zk1.address}:2181"


def test_three_zookeepers_form_an_ensemble_that_every_client_is_told_of(tmp_path: Path) -> None:
    plan = _plan(tmp_path, zookeepers=3)
    cfg = zookeeper.zoo_cfg(plan, plan.hosts(Role.ZOOKEEPER)[1], tmp_path / "data")
    servers = [line for line in cfg.splitlines() if line.startswith("server.")]
    assert servers == [f"server.{h.index}={h.address}:2888:3888" for h in plan.hosts(Role.ZOOKEEPER)]
    assert zookeeper.quorum(plan).count(":2181") == 3


def test_zookeeper_session_timeouts_allow_flinks_short_session() -> None:
    # ZooKeeper grants sessions of 2..20 ticks; Flink asks for ZK_SESSION_TIMEOUT_MS.
    assert 2 * zookeeper.TICK_MS <= flink_ha.ZK_SESSION_TIMEOUT_MS <= 20 * zookeeper.TICK_MS


def test_the_srvr_reply_gives_the_nodes_mode() -> None:
    assert zookeeper.mode("Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\n") == "follower"
    assert zookeeper.mode("This ZooKeeper instance is not currently serving requests\n") == ""
    assert zookeeper.mode("") == ""


def test_each_flink_host_advertises_its_own_address_and_finds_the_leader_in_zookeeper(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    jm2, tm1 = plan.host(Role.JOBMANAGER, 2), plan.host(Role.TASKMANAGER, 1)
    jm = flink_ha.host_settings(plan, jm2)
    tm = flink_ha.host_settings(plan, tm1)
    assert jm["jobmanager.rpc.address"] == jm2.address and jm["rest.address"] == jm2.address
    assert tm["taskmanager.host"] == tm1.address and tm["taskmanager.resource-id"] == "tm1"
    for settings in (jm, tm):
        assert settings["high-availability.type"] == "zookeeper"
        assert settings["high-availability.zookeeper.quorum"] == zookeeper.quorum(plan)
        assert settings["high-availability.storageDir"] == f"file://{plan.shared_dir}/flink/ha"
        assert settings["state.checkpoints.dir"] == f"file://{plan.shared_dir}/flink/checkpoints"


def test_the_cluster_hosts_keep_the_single_node_stacks_job_settings(tmp_path: Path) -> None:
    """What is not about addresses, ports or memory is the same Flink as the single-node stack's."""
    plan = _plan(tmp_path)
    single = flink_settings(StackConfig(data_dir=tmp_path / "stack"), tmp_path / "state")
    host = flink_ha.host_settings(plan, plan.host(Role.TASKMANAGER, 1))
    for key in ("heartbeat.timeout", "python.executable", "classloader.parent-first-patterns.additional"):
        assert host[key] == single[key]
    assert single["rest.address"] == "127.0.0.1" and "high-availability.type" not in single


def test_one_taskmanager_holds_the_whole_default_job_after_the_others_loss() -> None:
    from fleetsense.cloud.job_settings import IngestJobSettings

    from fleetsense.settings_spec import describe

    default_parallelism = next(s.default for s in describe(IngestJobSettings) if s.name == "parallelism")
    assert default_parallelism <= flink_ha.SLOTS_PER_TASKMANAGER


def test_the_leaders_address_is_read_from_flinks_serialized_leader_information() -> None:
    # ObjectOutputStream: magic, a block of writeUTF(address), then the UUID object (as Flink writes it).
    blob = b"\xac\xed\x00\x05w\x1a\x00\x18http://10.77.0.42:8081sr\x00\x0ejava.util.UUID\xbc\x99\x03\xf7"
    match = flink_ha.LEADER_ADDRESS.search(blob)
    assert match is not None and match.group(1) == b"10.77.0.42"
