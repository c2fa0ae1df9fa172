"""The local stack itself: every component up and healthy, `up` idempotent, everything on loopback."""

from __future__ import annotations

from pathlib import Path

from fleetsense.cloud.schema import apply_schema, schema_version

from fleetsense.stack import manager
from fleetsense.stack.cassandra_dist import cassandra_version
from fleetsense.stack.layout import StackConfig


def listening_addresses(pids: set[int]) -> set[str]:
    """Local addresses of the TCP sockets in LISTEN state owned by `pids` (from /proc, no tools needed)."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    addresses: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                addresses.add(fields[1].split(":")[0])
    return addresses


def test_every_component_is_running_and_healthy(stack: StackConfig) -> None:
    rows = {row.name: row for row in manager.status(stack)}
    assert set(rows) == {"rabbitmq", "cassandra", "flink", "api"}
    assert rows["api"].health.startswith("ok: ") and len(rows["api"].pids) == 1
    assert rows["rabbitmq"].health == "ok"
    # The node reports the release the runtime pom declares: the stack runs the Cassandra it fetched.
    assert rows["cassandra"].health == f"ok (Cassandra {cassandra_version()})"
    assert rows["flink"].health.startswith("ok: 2 TaskManagers")
    assert len(rows["flink"].pids) == 3  # one JobManager and two TaskManagers, separate JVMs


def test_up_twice_is_harmless(stack: StackConfig) -> None:
    before = {row.name: row.pids for row in manager.status(stack)}
    manager.up(stack, say=lambda _: None)
    assert {row.name: row.pids for row in manager.status(stack)} == before


def test_nothing_listens_beyond_loopback(stack: StackConfig) -> None:
    pids = {pid for row in manager.status(stack) for pid in row.pids}
    addresses = listening_addresses(pids)
    ipv4_loopback = "0100007F"
    ipv6_mapped_loopback = "0000000000000000FFFF00000100007F"
    assert addresses, "found no listening sockets at all"
    assert addresses <= {ipv4_loopback, ipv6_mapped_loopback}, addresses


def test_schema_is_applied_once_and_reapplying_changes_nothing(stack: StackConfig, cql) -> None:  # type: ignore[no-untyped-def]
    assert schema_version(cql) >= 1
    assert apply_schema(cql) == []
