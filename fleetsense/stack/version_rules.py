"""The pure rules of result versions on the stack (docs/reprocessing.md): `--since`, a replay's own settings, what
"caught up with live" needs, what `job status` prints, which versions have expired, which rows a version copies from
its parent. No I/O: fleetsense/stack/reprocess.py and replay_feeder.py apply them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleetsense.cloud.history import DAY_MS
from fleetsense.cloud.log_replay import FeedProgress
from fleetsense.errors import ConfigError

REPROCESS_PREFIX = "fleetsense-reprocess-r"


# How far back a replay may start: the log's retention, and the job's own check that refuses batches older than
# 30 days (validate.MAX_AGE_US) measured when the replay reads them, less a day for a replay that runs for hours.
MAX_SINCE_DAYS = 29


# Caught up: the last finished pass began at most this long ago, and the replay queue holds at most this much.
CAUGHT_UP_LAG_S = 120.0


CAUGHT_UP_QUEUED = 5_000


# The settings a version records (and a promoted version's live job keeps): what changes results.
RESULT_SETTINGS = ("vehicle_class", "thresholds", "gap_wait_ms", "max_waiting")


def job_name(version: int) -> str:
    return f"{REPROCESS_PREFIX}{version}"


def since_ms_of(text: str, *, now_ms: int) -> int:
    """`--since`: an ISO date or time (UTC unless it says otherwise), or `<N>d` (N days ago); snapped down to the
    start of its UTC day, so no day's results are split between two versions."""
    text = text.strip()
    try:
        if text.endswith("d") and text[:-1].isdigit():
            at_ms = now_ms - int(text[:-1]) * DAY_MS
        else:
            parsed = datetime.fromisoformat(text)
            at_ms = int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000)
    except ValueError as exc:
        raise ConfigError(
            f"--since {text!r} is neither a date nor a number of days",
            hint="e.g. --since 2026-11-20, --since 2026-11-20T00:00Z or --since 7d",
        ) from exc
    day_ms = at_ms - at_ms % DAY_MS
    if day_ms > now_ms:
        raise ConfigError(f"--since {text!r} is in the future", hint="replays start at a past day")
    if now_ms - day_ms > MAX_SINCE_DAYS * DAY_MS:
        raise ConfigError(
            f"--since {text!r} is more than {MAX_SINCE_DAYS} days ago: older batches are past the log's reach",
            hint=f"the log keeps 30 days and the job refuses older samples; start at most {MAX_SINCE_DAYS} days back",
        )
    return day_ms


def result_settings(overrides: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in sorted(overrides.items()) if name in RESULT_SETTINGS}


def replay_overrides(overrides: dict[str, str]) -> dict[str, str]:
    """A reprocessing job's settings over the operator's: results only, no live events (so no webhooks), one reader
    (the queue is fed in order; competing readers would reorder it), two slots beside the live job's four."""
    refused = {"writes", "events_exchange", "readers"} & set(overrides)
    if refused:
        raise ConfigError(
            f"--set {', '.join(sorted(refused))}: a reprocessing job's own settings",
            hint="a replay writes results only, publishes no live events and reads its queue with one reader",
        )
    return {"parallelism": "2", **overrides, "writes": "results", "events_exchange": "", "readers": "1"}


@dataclass(frozen=True)
class CatchUp:
    """Whether a replaying version has caught up with live, and if not, what is missing (promote says it)."""

    missing: tuple[str, ...]

    @property
    def caught_up(self) -> bool:
        return not self.missing


def catch_up(
    progress: FeedProgress | None, *, queued: int | None, job_running: bool, feeder_alive: bool, now_ms: int
) -> CatchUp:
    missing: list[str] = []
    if not job_running:
        missing.append("its reprocessing job is not running")
    if progress is None or progress.fed_through_ms is None:
        done = f"{progress.vehicle_days_done}/{progress.vehicle_days_total}" if progress else "0"
        missing.append(f"the first pass over the log is not finished ({done} vehicle-days fed)")
    else:
        lag_s = (now_ms - progress.fed_through_ms) / 1000
        if lag_s > CAUGHT_UP_LAG_S:
            missing.append(f"the log is fed up to {lag_s:.0f} s ago (at most {CAUGHT_UP_LAG_S:.0f} s)")
            if not feeder_alive:
                missing.append("its feeder is not running (restart it with `fleetsense job reprocess --resume N`)")
    if queued is None:
        missing.append("its replay queue cannot be read")
    elif queued > CAUGHT_UP_QUEUED:
        missing.append(f"the job has {queued} batches still to read (at most {CAUGHT_UP_QUEUED})")
    return CatchUp(tuple(missing))


def progress_lines(progress: FeedProgress, *, queued: int | None, now_ms: int) -> list[str]:
    lag = (
        "first pass running"
        if progress.fed_through_ms is None
        else _duration((now_ms - progress.fed_through_ms) / 1000)
    )
    return [
        f"vehicle-days {progress.vehicle_days_done}/{progress.vehicle_days_total}   batches {progress.counts.rows}"
        f"   samples {progress.counts.samples}   {progress.samples_per_s():,.0f} samples/s fed",
        f"lag to live {lag}   queued for the job {'?' if queued is None else queued}   passes {progress.passes}"
        f"   late batches {progress.counts.late_rows}",
    ]


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def expired(versions: list[Any], active: int, now: datetime) -> list[int]:
    """Retired versions past the time they were kept for (promote's --keep-days): dropped by the next reprocess or
    promote."""
    return [
        v.version
        for v in versions
        if v.version != active and v.state == "retired" and v.retire_after is not None and v.retire_after <= now
    ]


def before_replay(row: Any, before_ms: int) -> bool:
    """Whether a result row belongs to a day before the replay's first (day-partitioned tables), or (trips) started
    before it."""
    day = getattr(row, "day_bucket", None)
    if day is not None:
        return int(day.days_from_epoch if hasattr(day, "days_from_epoch") else _days_of(day)) * DAY_MS < before_ms
    start = row.start_time
    return int(start.replace(tzinfo=UTC).timestamp() * 1000) < before_ms


def _days_of(day: Any) -> int:
    from datetime import date

    return int((day - date(1970, 1, 1)).days)
