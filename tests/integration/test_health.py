"""Health that tells the truth: a Cassandra that stops answering (SIGSTOP) while telemetry flows leaves the job
RUNNING with every subtask RUNNING, yet the stack turns unhealthy within 30 s and healthy again after SIGCONT; and
Flink's Prometheus endpoints serve the job's metrics, on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fleetsense.stack import manager
from fleetsense.stack.health import Check
from fleetsense.stack.layout import LOOPBACK, StackConfig

from .helpers import eventually, unique_vehicle

UNHEALTHY_WITHIN_S = 30.0
# Recovery: the job reconnects and checkpoints within seconds; restarts it made meanwhile age out of the
# restarts window (120 s), so allow that plus a margin.
HEALTHY_AGAIN_WITHIN_S = 180.0


@pytest.fixture
def vehicle_streaming(stack: StackConfig, operator_client: Any, tmp_path: Path) -> Iterator[None]:
    """A simulated vehicle publishing live for a few minutes (a process: the agent owns its signal handlers)."""
    config_path = manager.provision_vehicle(stack, operator_client, unique_vehicle("health"), out_dir=tmp_path)
    agent = subprocess.Popen(
        [sys.executable, "-m", "fleetsense.cli", "edge", "run", "--config", str(config_path), "--simulate"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        agent.terminate()
        agent.wait(timeout=30)


def failing(checks: list[Check]) -> list[Check]:
    return [check for check in checks if not check.ok]


def stack_health(stack: StackConfig) -> tuple[bool, list[Check]]:
    """What `fleetsense stack status` decides its exit code on: every component and every check."""
    health = manager.stack_health(stack)
    return health.healthy, health.checks


def cassandra_pid(stack: StackConfig) -> int:
    (row,) = [row for row in manager.status(stack) if row.name == "cassandra"]
    assert len(row.pids) == 1, row
    return row.pids[0]


def test_a_stalled_cassandra_turns_the_stack_unhealthy_within_30_s_and_healthy_after(
    stack: StackConfig, ingest_job: str, vehicle_streaming: None
) -> None:
    healthy, checks = eventually(lambda: stack_health(stack), lambda r: r[0], timeout_s=120)
    assert healthy, failing(checks)
    pid = cassandra_pid(stack)
    os.kill(pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        # The Cassandra row turns unhealthy on its own (its probe times out); what must not stay silent is the
        # telemetry path: a check of the job has to fail, and name why.
        healthy, checks = eventually(
            lambda: stack_health(stack), lambda r: bool(failing(r[1])), timeout_s=UNHEALTHY_WITHIN_S
        )
        took_s = time.monotonic() - stopped_at
        assert not healthy and failing(checks), f"the job's checks still pass after {took_s:.0f} s: {checks}"
        assert took_s <= UNHEALTHY_WITHIN_S + 10  # the last probe may start just before the deadline
        print(f"unhealthy {took_s:.1f} s after SIGSTOP: {failing(checks)}")
        # Whether the job still hangs on its writes (every subtask RUNNING) or already fails and restarts, no
        # checkpoint can complete while Cassandra is stopped: that check must say so within the 30 s too.
        healthy, checks = eventually(
            lambda: stack_health(stack),
            lambda r: "checkpoints" in {c.name for c in failing(r[1])},
            timeout_s=UNHEALTHY_WITHIN_S - (time.monotonic() - stopped_at),
        )
        took_s = time.monotonic() - stopped_at
        (overdue,) = [c for c in checks if c.name == "checkpoints"]
        assert not overdue.ok and took_s <= UNHEALTHY_WITHIN_S + 10, (took_s, checks)
        assert "last completed" in overdue.detail and "allowed 20 s" in overdue.detail
        print(f"checkpoints overdue {took_s:.1f} s after SIGSTOP: {overdue.detail}")
    finally:
        os.kill(pid, signal.SIGCONT)
    continued_at = time.monotonic()
    healthy, checks = eventually(lambda: stack_health(stack), lambda r: r[0], timeout_s=HEALTHY_AGAIN_WITHIN_S)
    assert healthy, failing(checks)
    print(f"healthy again {time.monotonic() - continued_at:.1f} s after SIGCONT")


def prometheus_pages(stack: StackConfig) -> list[str]:
    """Every Flink Prometheus endpoint: the JobManager and each TaskManager take one port of the range."""
    first = stack.ports.flink_prometheus_first
    pages = []
    for port in range(first, first + stack.flink_taskmanagers + 1):
        reply = requests.get(f"http://{LOOPBACK}:{port}/metrics", timeout=10)
        reply.raise_for_status()
        pages.append(reply.text)
    return pages


def metric_values(pages: list[str], name: str, *, containing: str = "") -> list[float]:
    return [
        float(line.rsplit(" ", 1)[1])
        for page in pages
        for line in page.splitlines()
        if line.startswith(name + "{") and containing in line
    ]


def test_flinks_prometheus_endpoints_serve_the_jobs_checkpoints_and_counters(
    stack: StackConfig, ingest_job: str
) -> None:
    # Label values keep only [a-zA-Z0-9:_] (the reporter's filterLabelValueCharacters default).
    job = 'job_name="fleetsense_telemetry_ingest"'
    pages = eventually(
        lambda: prometheus_pages(stack),
        lambda p: any(
            v > 0 for v in metric_values(p, "flink_jobmanager_job_numberOfCompletedCheckpoints", containing=job)
        ),
        timeout_s=60,
    )
    assert any(v > 0 for v in metric_values(pages, "flink_jobmanager_job_numberOfCompletedCheckpoints", containing=job))
    # The job's own counters (accepted, rejected, ...) come from the TaskManagers running its operators.
    assert any(name.endswith("_accepted") for page in pages[1:] for name in _metric_names(page)), "no accepted counter"


def _metric_names(page: str) -> set[str]:
    return {line.split("{", 1)[0] for line in page.splitlines() if line and not line.startswith("#")}
