"""`fleetsense cluster fault`: what can go wrong with a host, made to happen on purpose.

kill    SIGKILL a host's service (the process dies, the host and its other processes stay: a crash)
stop    SIGKILL every process on the host (power off: epmd, the authoriser, everything)
start   start the host's service again on the same disk (power on)
partition / heal
        the host's link goes down (it keeps running, sees no one, no one sees it) / comes back
shape   latency and loss need the kernel's sch_netem qdisc; where it is missing (this machine) it says so
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from fleetsense.cluster import netns, roles
from fleetsense.cluster.plan import ClusterPlan, Host
from fleetsense.cluster.service import HostService
from fleetsense.errors import ConfigError, StackError

NETEM_MISSING = "Specified qdisc kind is unknown"


def _host(plan: ClusterPlan, name: str) -> Host:
    host = plan.by_name(name)
    if host.namespace not in netns.namespaces():
        raise StackError(f"host {name} does not exist (the cluster is down)", hint="run `fleetsense cluster up`")
    return host


def _service(plan: ClusterPlan, host: Host) -> HostService:
    service = roles.service_for(plan, host)
    if service is None:
        raise ConfigError(
            f"{host.name} ({host.role.name.lower()}) runs no service of its own",
            hint="`stop` powers the host off (every process on it), `partition` cuts it off",
        )
    return service


def check_service_name(host: Host, service: HostService, wanted: str | None) -> None:
    if wanted is not None and wanted != service.name:
        raise ConfigError(
            f"{host.name} runs {service.name}, not {wanted!r}", hint=f"`fault kill {host.name} {service.name}`"
        )


def kill(plan: ClusterPlan, name: str, service_name: str | None = None) -> list[int]:
    """SIGKILL the host's service; returns the pids killed ([] when it was not running)."""
    host = _host(plan, name)
    service = _service(plan, host)
    check_service_name(host, service, service_name)
    return service.kill()


def stop_host(plan: ClusterPlan, name: str) -> list[int]:
    """Power the host off: SIGKILL to every process in its namespace."""
    return netns.kill_all(_host(plan, name))


def start_host(plan: ClusterPlan, name: str) -> None:
    """Power the host on: its service starts on the disk it had (returns once it answers)."""
    host = _host(plan, name)
    _service(plan, host).start()


def partition(
    plan: ClusterPlan, name: str, *, seconds: float | None, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Cut the host off; with `seconds`, heal it after that long (the link comes back whatever happens meanwhile)."""
    if seconds is not None and seconds <= 0:
        raise ConfigError(f"--seconds must be positive, got {seconds:g}", hint="for example --seconds 60")
    host = _host(plan, name)
    netns.set_link(host, up=False)
    if seconds is None:
        return
    try:
        sleep(seconds)
    finally:
        netns.set_link(host, up=True)


def heal(plan: ClusterPlan, name: str) -> None:
    netns.set_link(_host(plan, name), up=True)


def netem_args(*, delay_ms: float, loss_pct: float) -> list[str]:
    if delay_ms < 0 or not 0 <= loss_pct <= 100:
        raise ConfigError(
            f"shape needs delay >= 0 ms and loss 0..100 %, got {delay_ms:g} ms and {loss_pct:g} %",
            hint="for example --delay-ms 50 --loss-pct 1",
        )
    return ["netem", "delay", f"{delay_ms:g}ms", "loss", f"{loss_pct:g}%"]


def shape(plan: ClusterPlan, name: str, *, delay_ms: float, loss_pct: float) -> None:
    """Latency and loss on the host's link (both directions: the qdisc sits on the root end of its veth, which
    carries everything the host receives; replies are delayed once, as a slow link would)."""
    qdisc = netem_args(delay_ms=delay_ms, loss_pct=loss_pct)
    host = _host(plan, name)
    cmd = ["tc", "qdisc", "replace", "dev", host.veth, "root", *qdisc]
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode == 0:
        return
    if NETEM_MISSING in done.stderr:
        raise StackError(
            "latency and loss cannot be injected on this machine: the kernel has no sch_netem qdisc "
            f"(`tc ... netem` says {NETEM_MISSING!r})",
            hint="use `partition` (total loss for N s) instead, or run on a kernel with sch_netem "
            "(`modprobe sch_netem`; most distribution kernels ship it)",
        )
    raise StackError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")


def unshape(plan: ClusterPlan, name: str) -> None:
    host = _host(plan, name)
    subprocess.run(["tc", "qdisc", "del", "dev", host.veth, "root"], capture_output=True, stdin=subprocess.DEVNULL)
