"""A host's process supervisor, as systemd's `Restart=always` would be on a real machine: it runs a daemon as its
child and starts it again a few seconds after it exits, whatever the exit code.

Flink's standalone daemons exit on fatal errors by design (a JobManager or TaskManager whose ZooKeeper session
expired, a TaskManager that found no leader in time) and leave the restart to a supervisor; without one, a ZooKeeper
outage longer than the session timeout took the cluster's Flink down for good (docs/faults.md, known failures).

It runs ON the host (`ip netns exec ... python -m fleetsense.cluster.supervisor -- <daemon>`), as the daemon's
parent, so the faults keep their meaning: powering the host off (`fault stop`: SIGKILL to every process in the
namespace) kills the supervisor too, and the service stays down until `fault start`; `fault kill` (the service's
power switch, JobManagerNode.kill) kills the supervisor first, then the daemon. A clean stop (SIGTERM or SIGINT to
the supervisor, what `cluster down` sends) is passed to the daemon and ends the supervisor once the daemon exits:
nothing is restarted after it.

A daemon can also hang rather than exit: after a ZooKeeper session loss a JobManager reconnects but its leader
election never resumes ("None of the contenders participates in the leader election anymore"), and its REST API
answers 503 "ongoing leader election" for good. `--alive-url` is the liveness probe (Kubernetes' livenessProbe): once
the daemon has answered it, a daemon that has not answered HTTP 200 for `--alive-grace-s` is killed (SIGKILL) and
started again.

    python -m fleetsense.cluster.supervisor [--restart-delay-s 2] [--alive-url URL --alive-grace-s 60] \
        -- bash jobmanager.sh start-foreground
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from types import FrameType

MODULE = "fleetsense.cluster.supervisor"
# systemd's RestartSec is 100 ms; a JVM that exits at once (its port still held, say) would spin, so a few seconds.
RESTART_DELAY_S = 2.0
# Restarts that come quicker than this after a start back off (doubling, up to the cap): a crash loop does not eat
# the 2 cores; a daemon that ran for a while is started again after the plain delay.
QUICK_EXIT_S = 10.0
MAX_RESTART_DELAY_S = 30.0
PROBE_INTERVAL_S = 5.0


def command(
    daemon: Sequence[str],
    *,
    restart_delay_s: float = RESTART_DELAY_S,
    alive_url: str | None = None,
    alive_grace_s: float = 0.0,
) -> list[str]:
    """The command line that runs `daemon` under a supervisor (with this interpreter: the venv's)."""
    probe = ["--alive-url", alive_url, "--alive-grace-s", f"{alive_grace_s:g}"] if alive_url else []
    return [sys.executable, "-m", MODULE, "--restart-delay-s", f"{restart_delay_s:g}", *probe, "--", *daemon]


def answers(url: str, *, timeout_s: float = 3.0) -> bool:
    """Whether `url` answers HTTP 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def hung(*, answered_once: bool, silent_s: float, grace_s: float) -> bool:
    """The liveness verdict: a daemon that answered once (it started) and then not for `grace_s` hangs. One still
    starting (never answered) is left alone: a slow start on a busy machine is not a hang."""
    return answered_once and silent_s >= grace_s


def is_supervisor(cmdline: str) -> bool:
    """Whether a process's command line (NUL bytes as spaces) is a supervisor's."""
    return f" -m {MODULE} " in f" {cmdline} "


def next_delay_s(previous_delay_s: float, ran_s: float, *, base_s: float = RESTART_DELAY_S) -> float:
    """The wait before the next start: the base after a run of QUICK_EXIT_S or more, else double the previous one
    (capped at MAX_RESTART_DELAY_S)."""
    if ran_s >= QUICK_EXIT_S:
        return base_s
    return min(max(previous_delay_s * 2, base_s), MAX_RESTART_DELAY_S)


class Supervisor:
    def __init__(
        self, daemon: Sequence[str], *, restart_delay_s: float, alive_url: str | None = None, alive_grace_s: float = 0
    ) -> None:
        self.daemon = list(daemon)
        self.base_delay_s = restart_delay_s
        self.alive_url = alive_url
        self.alive_grace_s = alive_grace_s
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None

    def say(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} supervisor: {text}", flush=True)

    def stop(self, signum: int, _frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: pass it on to the daemon and restart nothing after it exits."""
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def pause(self, seconds: float) -> None:
        """Sleep, cut short by a stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.1)

    def watch(self, child: subprocess.Popen[bytes]) -> int:
        """Wait for the daemon to exit; with a liveness probe, kill it once it hangs. Returns its exit code."""
        if not self.alive_url:
            return child.wait()
        answered_once = False
        last_answer = time.monotonic()
        while True:
            try:
                return child.wait(timeout=PROBE_INTERVAL_S)
            except subprocess.TimeoutExpired:
                pass
            if self.stopping:
                continue
            if answers(self.alive_url):
                answered_once, last_answer = True, time.monotonic()
            elif hung(answered_once=answered_once, silent_s=time.monotonic() - last_answer, grace_s=self.alive_grace_s):
                self.say(f"{self.alive_url} has not answered for {self.alive_grace_s:g} s: killing the hung daemon")
                child.kill()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        delay_s = 0.0
        starts = 0
        code = 0
        while not self.stopping:
            starts += 1
            started = time.monotonic()
            self.child = subprocess.Popen(self.daemon)
            self.say(f"started `{' '.join(self.daemon)}` (pid {self.child.pid}, start {starts})")
            if self.stopping:  # the stop came while it was being started
                self.child.terminate()
            code = self.watch(self.child)
            ran_s = time.monotonic() - started
            if self.stopping:
                self.say(f"the daemon exited with code {code} after {ran_s:.1f} s (asked to stop)")
                break
            delay_s = next_delay_s(delay_s, ran_s, base_s=self.base_delay_s)
            self.say(f"the daemon exited with code {code} after {ran_s:.1f} s; starting it again in {delay_s:g} s")
            self.pause(delay_s)
        self.say("stopped: restarting nothing")
        return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--restart-delay-s", type=float, default=RESTART_DELAY_S)
    parser.add_argument("--alive-url", help="liveness probe: kill and restart a daemon that stops answering HTTP 200")
    parser.add_argument("--alive-grace-s", type=float, default=60.0, help="how long it may not answer")
    parser.add_argument("daemon", nargs=argparse.REMAINDER, help="-- then the daemon's command line")
    args = parser.parse_args(argv)
    daemon = args.daemon[1:] if args.daemon[:1] == ["--"] else args.daemon
    if not daemon:
        parser.error("no daemon to supervise: give its command after `--`")
    if args.restart_delay_s <= 0:
        parser.error(f"--restart-delay-s must be positive, got {args.restart_delay_s:g}")
    supervisor = Supervisor(
        daemon, restart_delay_s=args.restart_delay_s, alive_url=args.alive_url, alive_grace_s=args.alive_grace_s
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
