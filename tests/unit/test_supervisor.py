"""The host supervisor (fleetsense/cluster/supervisor.py): its restart delays, its command line, and a real child
that exits being started again, and a SIGTERM that ends both without a restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetsense.cluster import supervisor


def test_a_daemon_that_ran_a_while_is_restarted_after_the_plain_delay() -> None:
    assert supervisor.next_delay_s(16.0, ran_s=supervisor.QUICK_EXIT_S) == supervisor.RESTART_DELAY_S


def test_quick_exits_back_off_doubling_up_to_the_cap() -> None:
    delays = [0.0]
    for _ in range(8):
        delays.append(supervisor.next_delay_s(delays[-1], ran_s=0.5))
    assert delays[1:5] == [2.0, 4.0, 8.0, 16.0]
    assert max(delays) == supervisor.MAX_RESTART_DELAY_S


def test_its_command_line_is_recognised_and_a_daemons_is_not() -> None:
    cmd = supervisor.command(["bash", "jobmanager.sh", "start-foreground"])
    assert supervisor.is_supervisor(" ".join(cmd))
    assert not supervisor.is_supervisor("bash /opt/flink/bin/jobmanager.sh start-foreground")


def test_without_a_daemon_it_says_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        supervisor.main(["--"])
    assert "after `--`" in capsys.readouterr().err


def test_it_restarts_a_daemon_that_exits_and_a_sigterm_ends_both(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    daemon = ["sh", "-c", f"echo x >> {starts}; sleep 0.2; exit 1"]
    proc = subprocess.Popen(
        supervisor.command(daemon, restart_delay_s=0.1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while not (starts.exists() and len(starts.read_text().split()) >= 3):
            assert time.monotonic() < deadline, "the daemon was not started three times within 20 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    assert "exited with code 1" in output and "starting it again" in output
    assert output.splitlines()[-1].endswith("stopped: restarting nothing")
    count = len(starts.read_text().split())
    time.sleep(0.5)
    assert len(starts.read_text().split()) == count, "a daemon was started after the stop"


def test_a_sigterm_reaches_a_long_running_daemon(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        supervisor.command([sys.executable, "-c", "import time; time.sleep(60)"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(1.0)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)
    assert time.monotonic() - started < 10
    assert "(asked to stop)" in output and output.splitlines()[-1].endswith("stopped: restarting nothing")


def test_a_daemon_still_starting_is_not_hung_and_one_silent_past_the_grace_is() -> None:
    assert not supervisor.hung(answered_once=False, silent_s=600, grace_s=60)
    assert not supervisor.hung(answered_once=True, silent_s=59, grace_s=60)
    assert supervisor.hung(answered_once=True, silent_s=60, grace_s=60)


def test_the_liveness_probe_is_on_its_command_line_only_when_asked() -> None:
    cmd = supervisor.command(["sleep", "1"], alive_url="http://127.0.0.1:8081/config", alive_grace_s=60)
    assert cmd[cmd.index("--alive-url") + 1] == "http://127.0.0.1:8081/config"
    assert cmd[cmd.index("--alive-grace-s") + 1] == "60"
    assert "--alive-url" not in supervisor.command(["sleep", "1"])
    assert not supervisor.answers("http://127.0.0.1:9/nothing", timeout_s=0.5)
