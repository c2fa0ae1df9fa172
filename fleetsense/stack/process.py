"""Process and port helpers shared by the stack components: spawn, wait, check, stop."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fleetsense.errors import StackError


def require_binary(name: str, *, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"'{name}' was not found on PATH", hint=hint)
    return path


def read_pids(pid_file: Path) -> list[int]:
    """The pids in a pid file (one per line; Flink's daemon script appends one line per instance)."""
    try:
        text = pid_file.read_text()
    except FileNotFoundError:
        return []
    return [int(line) for line in text.split() if line.strip().isdigit()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def port_accepts(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_ports_free(component: str, host: str, ports: Mapping[str, int], *, how_to_change: str) -> None:
    busy = {name: port for name, port in ports.items() if not port_bindable(host, port)}
    if busy:
        listing = ", ".join(f"{name}={port}" for name, port in busy.items())
        raise StackError(
            f"{component} cannot start: port(s) already in use on {host}: {listing}",
            hint=f"stop whatever listens there (see `ss -ltnp`), or {how_to_change}",
        )


# How long a process that looked gone is given before it counts as exited: a process list is a snapshot, and a
# daemon exec'ing its JVM shows no command line or environment for a moment (a JobManager that ran on was called
# dead in a cluster's start, 2026-12-06 16:26).
CONFIRM_EXIT_S = 1.0


def wait_until(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    log_path: Path | None = None,
    still_running: Callable[[], bool] | None = None,
    interval_s: float = 0.5,
    confirm_exit_s: float = CONFIRM_EXIT_S,
) -> None:
    """Poll `check` until it holds; fail early with the log path if the process died meanwhile (seen gone twice,
    `confirm_exit_s` apart)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return
        if still_running is not None and not still_running() and not _back_after(confirm_exit_s, still_running):
            raise StackError(
                f"{what}: the process exited during start-up",
                hint="read the end of the log for the cause",
                log_path=str(log_path) if log_path else None,
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{what}: not ready after {timeout_s:.0f} s",
                hint="the machine may be overloaded; read the log, then retry `fleetsense stack up`",
                log_path=str(log_path) if log_path else None,
            )
        time.sleep(interval_s)


def _back_after(delay_s: float, still_running: Callable[[], bool]) -> bool:
    time.sleep(delay_s)
    return still_running()


def spawn_detached(cmd: Sequence[str], *, env: Mapping[str, str], log_file: Path, cwd: Path | None = None) -> int:
    """Start a long-running server in its own session so it outlives the CLI; output goes to log_file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.pid


def terminate(pids: Sequence[int], *, grace_s: float = 30.0) -> None:
    """SIGTERM, wait up to grace_s for a clean shutdown, then SIGKILL whatever is left."""
    live = [pid for pid in pids if pid_alive(pid)]
    for pid in live:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while live and time.monotonic() < deadline:
        time.sleep(0.2)
        live = [pid for pid in live if pid_alive(pid)]
    for pid in live:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_checked(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
    what: str,
    log_path: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a short command; a failure becomes a StackError carrying its output."""
    try:
        done = subprocess.run(
            list(cmd),
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what}: timed out after {timeout_s:.0f} s", log_path=_str(log_path)) from exc
    except FileNotFoundError as exc:
        raise StackError(f"{what}: {cmd[0]} not found", hint="run the README's set-up command") from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-2000:]
        raise StackError(f"{what} failed (exit {done.returncode}): {output}", log_path=_str(log_path))
    return done


def _str(path: Path | None) -> str | None:
    return str(path) if path else None
