"""What the Flink-side services (ZooKeeper, JobManager, TaskManager) share on a host: finding their own processes
among the host's by a marker on the command line, the power switch, and a resident-size reading for the docs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from fleetsense.cluster import netns
from fleetsense.cluster.plan import Host
from fleetsense.stack import process


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def environ(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pids_with(host: Host, marker: str) -> list[int]:
    """The host's processes whose command line or environment holds `marker` (a path only this service names), so
    a host running two services, or a fault helper's `sleep`, is told apart. The environment counts because a
    Flink daemon is a shell script until it execs its JVM, and its Python workers inherit it."""
    return [pid for pid in netns.pids(host) if marker in cmdline(pid) or marker in environ(pid)]


def kill(pids: list[int]) -> list[int]:
    """SIGKILL: the service's power switch (no shutdown hook runs, no ZooKeeper session is closed)."""
    killed = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10.0
    while any(process.pid_alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.1)
    return killed


def stop(pids: list[int], *, grace_s: float = 20.0) -> None:
    process.terminate(pids, grace_s=grace_s)


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
