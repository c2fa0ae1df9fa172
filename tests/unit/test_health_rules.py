"""The health rules over Flink- and RabbitMQ-shaped replies (trimmed from real ones taken on the test stack while
Cassandra was stopped with SIGSTOP and after it was continued)."""

from __future__ import annotations

from typing import Any

from fleetsense.stack.health import (
    HealthThresholds,
    checkpoint_check,
    format_checks,
    queue_growth_check,
    restarts_check,
    subtasks_check,
)

NOW_MS = 1796513506599
DEFAULTS = HealthThresholds()
CHECKPOINT_CONFIG = {"mode": "exactly_once", "interval": 1000, "timeout": 600000, "max_concurrent": 1}


def vertex(name: str, **tasks: int) -> dict[str, Any]:
    states = dict.fromkeys(("INITIALIZING", "CANCELING", "FAILED", "CREATED", "RUNNING", "DEPLOYING"), 0)
    return {"id": name[:8], "name": name, "parallelism": sum(tasks.values()), "tasks": {**states, **tasks}}


def job_reply(state: str = "RUNNING", *, vertices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "jid": "e489bca122e53089e2e7465fa7b3fd26",
        "name": "fleetsense-telemetry-ingest",
        "state": state,
        "start-time": NOW_MS - 90_000,
        "now": NOW_MS,
        "timestamps": {"RUNNING": NOW_MS - 89_600, "INITIALIZING": NOW_MS - 90_000},
        "vertices": vertices
        or [
            vertex("Source: amqp: fleet.telemetry -> _stream_key_by_map_operator", RUNNING=1),
            vertex("Source: amqp: fleet.status -> vehicle status -> Sink: status done", RUNNING=1),
            vertex("validate, deduplicate, analyse, store -> Sink: done", RUNNING=4),
        ],
    }


def checkpoints_reply(last_ack_ms: int | None, *, in_progress_since_ms: int | None = None) -> dict[str, Any]:
    completed = None
    if last_ack_ms is not None:
        completed = {"id": 42, "status": "COMPLETED", "trigger_timestamp": last_ack_ms - 40}
        completed["latest_ack_timestamp"] = last_ack_ms
    history = [] if completed is None else [completed]
    if in_progress_since_ms is not None:
        history.insert(0, {"id": 43, "status": "IN_PROGRESS", "trigger_timestamp": in_progress_since_ms})
    return {
        "counts": {"restored": 0, "total": 48, "in_progress": 1, "completed": 42, "failed": 5},
        "latest": {"completed": completed, "savepoint": None, "failed": None, "restored": None},
        "history": history,
    }


def test_a_checkpoint_a_second_ago_is_healthy() -> None:
    check = checkpoint_check(job_reply(), checkpoints_reply(NOW_MS - 1000), CHECKPOINT_CONFIG, DEFAULTS)
    assert check.ok and "last completed 1.0 s ago" in check.detail


def test_writes_hanging_with_every_subtask_running_is_caught_by_the_checkpoint_age() -> None:
    # Seen with Cassandra stopped: the job RUNNING, all 6 subtasks RUNNING, checkpoint 43 pending for 44 s.
    replies = checkpoints_reply(NOW_MS - 44_107, in_progress_since_ms=NOW_MS - 43_147)
    assert subtasks_check(job_reply()).ok
    check = checkpoint_check(job_reply(), replies, CHECKPOINT_CONFIG, DEFAULTS)
    assert not check.ok
    assert "last completed 44.1 s ago (allowed 20 s" in check.detail and "in progress for 43.1 s" in check.detail


def test_the_allowed_age_grows_with_a_long_checkpoint_interval() -> None:
    slow = {**CHECKPOINT_CONFIG, "interval": 60_000}
    assert checkpoint_check(job_reply(), checkpoints_reply(NOW_MS - 100_000), slow, DEFAULTS).ok
    assert not checkpoint_check(job_reply(), checkpoints_reply(NOW_MS - 190_000), slow, DEFAULTS).ok


def test_no_checkpoint_yet_counts_from_when_the_job_started_running() -> None:
    young = {**job_reply(), "timestamps": {"RUNNING": NOW_MS - 5_000}}
    assert checkpoint_check(young, checkpoints_reply(None), CHECKPOINT_CONFIG, DEFAULTS).ok
    old = checkpoint_check(job_reply(), checkpoints_reply(None), CHECKPOINT_CONFIG, DEFAULTS)
    assert not old.ok and "none completed in the 89.6 s since the job started" in old.detail


def test_a_job_without_checkpointing_is_unhealthy() -> None:
    assert not checkpoint_check(job_reply(), checkpoints_reply(None), None, DEFAULTS).ok


def test_a_restarting_job_names_the_subtasks_that_are_not_running() -> None:
    # Seen while the job restarted against a stopped Cassandra.
    job = job_reply(
        vertices=[
            vertex("Source: amqp: fleet.telemetry -> _stream_key_by_map_operator", RUNNING=1),
            vertex("Source: amqp: fleet.status -> vehicle status -> Sink: status done", INITIALIZING=1),
            vertex("validate, deduplicate, analyse, store -> Sink: done", INITIALIZING=4),
        ]
    )
    check = subtasks_check(job)
    assert not check.ok
    assert "validate, deduplicate, analyse, store -> Sink: done: 4 INITIALIZING" in check.detail
    assert not subtasks_check(job_reply("RESTARTING")).ok
    assert subtasks_check(job_reply()).detail == "all 6 subtasks RUNNING"


def failure(ago_ms: int, message: str = "pemja.core.PythonException: NoHostAvailable") -> dict[str, Any]:
    return {
        "exceptionName": "pemja.core.PythonException",
        "stacktrace": f"{message}\n\tat cassandra.cluster...",
        "timestamp": NOW_MS - ago_ms,
        "taskName": "validate, deduplicate, analyse, store -> Sink: done (1/4) - execution #2",
        "concurrentExceptions": [],
    }


def exceptions_reply(*failures: dict[str, Any]) -> dict[str, Any]:
    return {"root-exception": None, "exceptionHistory": {"entries": list(failures), "truncated": False}}


def test_repeated_restarts_within_the_window_are_unhealthy_and_old_ones_are_forgotten() -> None:
    looping = exceptions_reply(failure(4_000), failure(15_000), failure(26_000), failure(41_000))
    check = restarts_check(job_reply(), looping, DEFAULTS)
    assert not check.ok
    assert check.detail.startswith("4 failure(s) in the last 120 s; latest in validate")
    assert "NoHostAvailable" in check.detail
    recovered = exceptions_reply(failure(130_000), failure(141_000), failure(152_000))
    assert restarts_check(job_reply(), recovered, DEFAULTS).ok
    assert restarts_check(job_reply(), exceptions_reply(failure(4_000), failure(50_000)), DEFAULTS).ok


def queue_reply(depths_oldest_first: list[int], *, step_ms: int = 5000) -> dict[str, Any]:
    newest = 1796513520000
    samples = [
        {"sample": depth, "timestamp": newest - step_ms * (len(depths_oldest_first) - 1 - i)}
        for i, depth in enumerate(depths_oldest_first)
    ]
    return {
        "name": "fleet.telemetry",
        "messages": depths_oldest_first[-1],
        "messages_details": {"avg": 49.6, "avg_rate": 1.7, "rate": 0.0, "samples": list(reversed(samples))},
    }


def test_a_queue_that_keeps_growing_is_unhealthy() -> None:
    # The broker's samples while the job could not write (one vehicle, ~2 batches/s), one flat step.
    check = queue_growth_check(queue_reply([0, 5, 15, 25, 35, 45, 55, 65, 75, 85, 95, 95, 110]), DEFAULTS)
    assert not check.ok
    assert check.detail.startswith("110 messages, +110 over the last 60 s (11 of 12 steps rising)")


def test_a_queue_that_drains_between_checkpoints_is_healthy_even_when_busy() -> None:
    sawtooth = [0, 900, 40, 1200, 10, 800, 0, 1500, 30, 700, 0, 900, 1400]
    assert queue_growth_check(queue_reply(sawtooth), DEFAULTS).ok
    assert queue_growth_check(queue_reply([2] * 13), DEFAULTS).ok
    small = queue_growth_check(queue_reply([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), DEFAULTS)
    assert small.ok  # rising, but by less than queue_growth_min_messages


def test_too_little_queue_history_is_not_a_verdict() -> None:
    check = queue_growth_check(queue_reply([0, 500, 1000]), DEFAULTS)
    assert check.ok and "too little history" in check.detail
    assert queue_growth_check({"name": "fleet.telemetry", "messages": 0}, DEFAULTS).ok


def test_samples_older_than_the_window_are_ignored() -> None:
    old_growth_then_flat = [0, 200, 400, 600] + [600] * 13
    assert queue_growth_check(queue_reply(old_growth_then_flat), DEFAULTS).ok


def test_the_report_says_unhealthy_when_any_check_fails() -> None:
    ok = subtasks_check(job_reply())
    bad = restarts_check(job_reply(), exceptions_reply(*(failure(t) for t in (1000, 2000, 3000))), DEFAULTS)
    lines = format_checks("fleetsense-telemetry-ingest", [ok, bad])
    assert lines[0] == "fleetsense-telemetry-ingest: UNHEALTHY"
    assert lines[1].startswith("  subtasks  ok") and lines[2].startswith("  restarts  FAIL")
    assert format_checks("job", [ok])[0] == "job: healthy"
