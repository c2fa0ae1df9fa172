"""Hosts as Linux network namespaces on one bridge: create, run processes in, partition, shape, remove.

Each host is a namespace with its own loopback and one veth whose other end is on the bridge `<prefix>-br`; the root
namespace holds the bridge's address (10.<subnet>.0.1), so the CLI and the tests reach every host. A partition takes
the root end of the host's veth down: the host keeps running and sees no one, and no one sees it. `ip netns exec`
bind-mounts /etc/netns/<namespace>/hosts over /etc/hosts, which is how every host resolves the others' names.
Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from fleetsense.cluster.plan import ClusterPlan, Host
from fleetsense.errors import StackError
from fleetsense.stack import process

NETNS_ETC = Path("/etc/netns")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise StackError(
            f"`ip {' '.join(args)}` failed: {done.stderr.strip()}",
            hint="the cluster needs root (network namespaces, a bridge, veth pairs) and iproute2",
        )
    return done


def require_root() -> None:
    if os.geteuid() != 0:
        raise StackError(
            "`fleetsense cluster` needs root: it builds hosts as network namespaces",
            hint="run it as root (sudo), or use the single-node `fleetsense stack`",
        )


def namespaces() -> set[str]:
    return {line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()}


def links() -> set[str]:
    names = set()
    for line in _ip("-o", "link", "show").stdout.splitlines():
        # "12: fs-rmq1@if11: <BROADCAST,...": the name ends at '@' (a veth's peer) or ':'
        names.add(line.split(": ", 2)[1].split("@", 1)[0])
    return names


def hosts_file(plan: ClusterPlan) -> str:
    lines = ["127.0.0.1 localhost"] + [f"{host.address} {host.name}" for host in plan.hosts()]
    return "\n".join(lines) + "\n"


def create_bridge(plan: ClusterPlan) -> None:
    if plan.bridge not in links():
        _ip("link", "add", plan.bridge, "type", "bridge")
        _ip("addr", "add", f"{plan.bridge_address}/24", "dev", plan.bridge)
    _ip("link", "set", plan.bridge, "up")


def create_host(plan: ClusterPlan, host: Host) -> None:
    """The namespace, its veth on the bridge, its address and its /etc/hosts; harmless when it exists."""
    if host.namespace not in namespaces():
        _ip("netns", "add", host.namespace)
    if host.veth not in links():
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        _ip("link", "set", host.veth, "master", plan.bridge)
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
    _ip("link", "set", host.veth, "up")
    _ip("-n", host.namespace, "link", "set", "lo", "up")
    _ip("-n", host.namespace, "link", "set", "eth0", "up")
    etc = NETNS_ETC / host.namespace
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text(hosts_file(plan))


def exec_prefix(host: Host) -> list[str]:
    """Put before a command to run it on `host` (`ip netns exec` execs the command: the pid is the command's)."""
    return ["ip", "netns", "exec", host.namespace]


def spawn(host: Host, cmd: Sequence[str], *, env: Mapping[str, str], log_file: Path, cwd: Path | None = None) -> int:
    """Start a long-running process on `host`, in its own session (it outlives the CLI); returns its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            [*exec_prefix(host), *cmd],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _await_entry(host, proc)
    return proc.pid


def in_namespace(host: Host, pid: int) -> bool:
    """Whether process `pid` runs in the host's network namespace (same namespace inode)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{host.namespace}").st_ino
    except OSError:
        return False


def _await_entry(host: Host, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Return once the child has entered the namespace (or exited). Until `ip netns exec` has switched, the child
    is in the root namespace and absent from `pids(host)`: a caller checking "is it still running?" right after
    spawning would see nothing and call a healthy start a crash (seen: a JobManager reported dead while it ran)."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and not in_namespace(host, proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def run(
    host: Host, cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout_s: float = 120.0, what: str
) -> subprocess.CompletedProcess[str]:
    """Run a short command on `host`; a failure becomes a StackError with its output (the stack's own runner)."""
    return process.run_checked([*exec_prefix(host), *cmd], env=env, timeout_s=timeout_s, what=f"{what} on {host.name}")


def pids(host: Host) -> list[int]:
    """Every process running in the host's namespace (what a machine's power switch would stop)."""
    if host.namespace not in namespaces():
        return []
    done = _ip("netns", "pids", host.namespace, check=False)
    return [int(word) for word in done.stdout.split() if word.isdigit()]


def kill_all(host: Host, sig: signal.Signals = signal.SIGKILL) -> list[int]:
    """Signal every process on the host; returns the pids signalled."""
    signalled = []
    for pid in pids(host):
        try:
            os.kill(pid, sig)
            signalled.append(pid)
        except ProcessLookupError:
            pass
    return signalled


def set_link(host: Host, *, up: bool) -> None:
    """Partition (`up=False`) or heal the host: its veth's root end goes down or up; its processes keep running."""
    _ip("link", "set", host.veth, "up" if up else "down")


def link_up(host: Host) -> bool:
    """Whether the host's link is administratively up (not partitioned)."""
    done = _ip("-o", "link", "show", host.veth, check=False)
    if done.returncode != 0 or "<" not in done.stdout:
        return False
    return "UP" in done.stdout.split("<", 1)[1].split(">", 1)[0].split(",")


def remove_host(host: Host) -> None:
    """Kill what runs there, then delete its veth, namespace and /etc/netns entry; harmless when absent."""
    _remove_namespace(host.namespace)


def _remove_namespace(namespace: str) -> None:
    if namespace in namespaces():
        done = _ip("netns", "pids", namespace, check=False)
        for word in done.stdout.split():
            try:
                os.kill(int(word), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    if namespace in links():  # the root end of the host's veth has the namespace's name
        _ip("link", "del", namespace, check=False)
    if namespace in namespaces():
        _ip("netns", "del", namespace, check=False)
    etc = NETNS_ETC / namespace
    (etc / "hosts").unlink(missing_ok=True)
    if etc.is_dir():
        etc.rmdir()


def remove_all(plan: ClusterPlan) -> list[str]:
    """Every namespace and link with the plan's prefix (also hosts a larger plan added), then the bridge.
    Returns what was removed, so `down` can say it and a test can check nothing is left."""
    removed = []
    mark = f"{plan.prefix}-"
    for namespace in sorted(n for n in namespaces() if n.startswith(mark)):
        _remove_namespace(namespace)
        removed.append(namespace)
    for link in sorted(name for name in links() if name.startswith(mark)):
        _ip("link", "del", link, check=False)
        removed.append(link)
    return removed


def leftovers(plan: ClusterPlan) -> list[str]:
    """Namespaces, links and /etc/netns entries of this plan's prefix that still exist."""
    mark = f"{plan.prefix}-"
    found = [n for n in namespaces() if n.startswith(mark)] + [link for link in links() if link.startswith(mark)]
    if NETNS_ETC.is_dir():
        found += [str(p) for p in NETNS_ETC.iterdir() if p.name.startswith(mark)]
    return sorted(found)
