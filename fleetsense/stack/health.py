"""Health rules of the running stack: pure functions over what Flink's REST API and RabbitMQ's management API
answer, so a stalled job can never look healthy (a job whose writes hang stays RUNNING with every subtask RUNNING;
only its checkpoints and the queue behind it show the stall). Each rule returns one Check; thresholds are named
settings in HealthThresholds. The I/O that fetches the replies is in health_probe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

Reply = Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class HealthThresholds:
    # A checkpoint is overdue when none has completed for the larger of these (the job checkpoints every 1 s by
    # default, so 20 s is many missed ones, yet longer than a restart's recovery of ~6 s measured here).
    checkpoint_overdue_s: float = 20.0
    checkpoint_overdue_intervals: float = 3.0
    # The broker keeps a depth sample every 5 s (management stats, kept 10 minutes); the queue "keeps growing"
    # when over the window it grew by at least `min_messages` and rose in at least `rising_fraction` of the steps.
    queue_window_s: int = 60
    queue_sample_s: int = 5
    queue_growth_min_messages: int = 100
    queue_growth_rising_fraction: float = 0.7
    # Restarts repeat when this many job failures happened within the window (Flink's exception history).
    restarts_window_s: float = 120.0
    restarts_max: int = 3


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    ok: bool
    detail: str


def checkpoint_check(
    job: Reply, checkpoints: Reply, checkpoint_config: Reply | None, thresholds: HealthThresholds
) -> Check:
    """Checkpoints are completing: the last one is younger than the allowed age. Flink's `now` in the job reply
    dates everything, so the age is right even when this machine's clock differs from the JobManager's."""
    name = "checkpoints"
    if checkpoint_config is None or not checkpoint_config.get("interval"):
        return Check(name=name, ok=False, detail="checkpointing is not enabled for this job")
    now_ms = int(job["now"])
    interval_s = int(checkpoint_config["interval"]) / 1000
    allowed_s = max(thresholds.checkpoint_overdue_s, thresholds.checkpoint_overdue_intervals * interval_s)
    counts = checkpoints.get("counts") or {}
    completed = (checkpoints.get("latest") or {}).get("completed") or {}
    tally = f"{counts.get('completed', 0)} completed, {counts.get('failed', 0)} failed"
    if completed.get("latest_ack_timestamp"):
        age_s = (now_ms - int(completed["latest_ack_timestamp"])) / 1000
        said = f"last completed {age_s:.1f} s ago"
    else:
        running_since = (job.get("timestamps") or {}).get("RUNNING") or job.get("start-time") or now_ms
        age_s = (now_ms - int(running_since)) / 1000
        said = f"none completed in the {age_s:.1f} s since the job started"
    detail = f"{said} (allowed {allowed_s:.0f} s, interval {interval_s:g} s); {tally}"
    pending = _in_progress_s(checkpoints, now_ms)
    if pending is not None:
        detail += f"; one in progress for {pending:.1f} s"
    return Check(name=name, ok=age_s <= allowed_s, detail=detail)


def _in_progress_s(checkpoints: Reply, now_ms: int) -> float | None:
    for entry in checkpoints.get("history") or []:
        if entry.get("status") == "IN_PROGRESS" and entry.get("trigger_timestamp"):
            return (now_ms - int(entry["trigger_timestamp"])) / 1000
    return None


def subtasks_check(job: Reply) -> Check:
    """The job is RUNNING and so is every subtask of every operator."""
    vertices = job.get("vertices") or []
    total = sum(sum(int(n) for n in (v.get("tasks") or {}).values()) for v in vertices)
    not_running = []
    for vertex in vertices:
        others = {state: int(n) for state, n in (vertex.get("tasks") or {}).items() if state != "RUNNING" and n}
        if others:
            states = ", ".join(f"{n} {state}" for state, n in sorted(others.items()))
            not_running.append(f"{vertex.get('name', vertex.get('id'))}: {states}")
    state = job.get("state")
    if state == "RUNNING" and not not_running and total:
        return Check(name="subtasks", ok=True, detail=f"all {total} subtasks RUNNING")
    detail = f"job {state}; " + ("; ".join(not_running) if not_running else "no subtasks")
    return Check(name="subtasks", ok=False, detail=detail)


def restarts_check(job: Reply, exceptions: Reply, thresholds: HealthThresholds) -> Check:
    """Failures (each one restarts the job) within the window, from Flink's exception history, which keeps each
    failure's time: one reading is enough, no history of our own. The history holds the latest 16 by default
    (web.exception-history-size), more than any sensible restarts_max."""
    now_ms = int(job["now"])
    entries: Sequence[Reply] = (exceptions.get("exceptionHistory") or {}).get("entries") or []
    window_ms = thresholds.restarts_window_s * 1000
    recent = [e for e in entries if now_ms - int(e.get("timestamp") or 0) <= window_ms]
    detail = f"{len(recent)} failure(s) in the last {thresholds.restarts_window_s:.0f} s"
    if recent:
        latest = max(recent, key=lambda e: int(e.get("timestamp") or 0))
        detail += f"; latest in {latest.get('taskName') or 'the job'}: {_first_line(latest)}"
    return Check(name="restarts", ok=len(recent) < thresholds.restarts_max, detail=detail)


def _first_line(entry: Reply) -> str:
    text = str(entry.get("stacktrace") or entry.get("exceptionName") or "")
    return text.strip().splitlines()[0][:200] if text.strip() else "(no message)"


def queue_growth_check(queue: Reply, thresholds: HealthThresholds) -> Check:
    """The queue's depth (ready + unacknowledged) does not keep growing: from the broker's own depth samples
    (`?lengths_age=..&lengths_incr=..` on the management API), so one request sees the last minute."""
    name = f"queue {queue.get('name', '')}".rstrip()
    samples = sorted(
        ((int(s["timestamp"]), int(s["sample"])) for s in (queue.get("messages_details") or {}).get("samples") or []),
    )
    if samples:
        newest_ms = samples[-1][0]
        samples = [s for s in samples if newest_ms - s[0] <= thresholds.queue_window_s * 1000]
    depth = queue.get("messages", samples[-1][1] if samples else "?")
    span_s = (samples[-1][0] - samples[0][0]) / 1000 if samples else 0.0
    if len(samples) < 3 or span_s < thresholds.queue_window_s / 2:
        return Check(name=name, ok=True, detail=f"{depth} messages (too little history yet to see a trend)")
    steps = list(pairwise(samples))
    rising = sum(1 for (_, before), (_, after) in steps if after > before)
    growth = samples[-1][1] - samples[0][1]
    growing = (
        growth >= thresholds.queue_growth_min_messages
        and rising >= thresholds.queue_growth_rising_fraction * len(steps)
    )
    detail = f"{depth} messages, {growth:+d} over the last {span_s:.0f} s ({rising} of {len(steps)} steps rising)"
    if growing:
        detail += ": the job is not keeping up or not acknowledging"
    return Check(name=name, ok=not growing, detail=detail)


def unknown(name: str, why: str) -> Check:
    """A reading that could not be taken: not healthy, since nothing says it is."""
    short = why if len(why) <= 200 else why[:200] + " ..."  # library errors can run to a screenful
    return Check(name=name, ok=False, detail=f"cannot tell: {short}")


def format_checks(title: str, checks: Sequence[Check]) -> list[str]:
    verdict = "healthy" if all(c.ok for c in checks) else "UNHEALTHY"
    width = max((len(c.name) for c in checks), default=0)
    return [f"{title}: {verdict}"] + [
        f"  {c.name.ljust(width)}  {'ok  ' if c.ok else 'FAIL'}  {c.detail}" for c in checks
    ]
