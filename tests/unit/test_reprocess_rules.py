"""The pure rules of `job reprocess` and `job promote` (fleetsense/stack/rules.py): --since, a replay's own
settings, what "caught up with live" needs, and what `job status` prints; --since fuzzed."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fleetsense.cloud.history import DAY_MS
from fleetsense.cloud.log_replay import FeedProgress

from fleetsense.errors import ConfigError
from fleetsense.stack import version_rules as rules

NOW_MS = 1_796_000_000_000 + 13 * 3_600_000  # 13:00 UTC on a day
TODAY_MS = NOW_MS - NOW_MS % DAY_MS


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def test_since_takes_a_day_a_time_or_days_ago_snapped_to_the_utc_day() -> None:
    assert rules.since_ms_of(utc(TODAY_MS).strftime("%Y-%m-%d"), now_ms=NOW_MS) == TODAY_MS  # read as UTC
    assert rules.since_ms_of("3d", now_ms=NOW_MS) == TODAY_MS - 3 * DAY_MS
    assert rules.since_ms_of("0d", now_ms=NOW_MS) == TODAY_MS
    assert rules.since_ms_of(utc(TODAY_MS - DAY_MS + 5_000_000).isoformat(), now_ms=NOW_MS) == TODAY_MS - DAY_MS


@pytest.mark.parametrize(
    ("text", "message"),
    [("tomorrowish", "neither a date"), ("30d", "more than 29 days"), ("2999-01-01", "in the future"), ("", "neither")],
)
def test_since_refuses_what_a_replay_cannot_do(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rules.since_ms_of(text, now_ms=NOW_MS)


def test_since_fuzzed_gives_a_day_start_within_reach_or_a_config_error() -> None:
    rng = random.Random(19)
    alphabet = "0123456789-:TZd+. xW"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 26)))
        try:
            since = rules.since_ms_of(text, now_ms=NOW_MS)
        except ConfigError:
            continue
        assert since % DAY_MS == 0 and TODAY_MS - 29 * DAY_MS <= since <= TODAY_MS, text


def test_a_replay_writes_results_only_publishes_nothing_and_reads_with_one_reader() -> None:
    got = rules.replay_overrides({"thresholds": "van.harsh_brake_g=0.3"})
    assert got == {
        "parallelism": "2",
        "thresholds": "van.harsh_brake_g=0.3",
        "writes": "results",
        "events_exchange": "",
        "readers": "1",
    }
    assert rules.replay_overrides({"parallelism": "1"})["parallelism"] == "1"
    for own in ("writes", "events_exchange", "readers"):
        with pytest.raises(ConfigError, match=own):
            rules.replay_overrides({own: "x"})


def test_a_version_records_only_the_settings_that_change_results() -> None:
    assert rules.result_settings({"parallelism": "2", "thresholds": "t", "vehicle_class": "car"}) == {
        "thresholds": "t",
        "vehicle_class": "car",
    }


def progress(**fields: object) -> FeedProgress:
    p = FeedProgress(version=2, since_ms=TODAY_MS - DAY_MS, started_ms=NOW_MS - 600_000, copied_rows=0)
    for name, value in fields.items():
        setattr(p, name, value)
    return p


def test_caught_up_needs_a_finished_pass_a_recent_one_a_short_queue_and_a_running_job() -> None:
    fresh = progress(fed_through_ms=NOW_MS - 30_000, passes=3)
    assert rules.catch_up(fresh, queued=10, job_running=True, feeder_alive=True, now_ms=NOW_MS).caught_up
    first = rules.catch_up(
        progress(vehicle_days_done=3, vehicle_days_total=8),
        queued=0,
        job_running=True,
        feeder_alive=True,
        now_ms=NOW_MS,
    )
    assert first.missing == ("the first pass over the log is not finished (3/8 vehicle-days fed)",)
    stale = rules.catch_up(
        progress(fed_through_ms=NOW_MS - 600_000), queued=99_999, job_running=False, feeder_alive=False, now_ms=NOW_MS
    )
    assert stale.missing == (
        "its reprocessing job is not running",
        "the log is fed up to 600 s ago (at most 120 s)",
        "its feeder is not running (restart it with `fleetsense job reprocess --resume N`)",
        "the job has 99999 batches still to read (at most 5000)",
    )
    unknown = rules.catch_up(fresh, queued=None, job_running=True, feeder_alive=True, now_ms=NOW_MS)
    assert unknown.missing == ("its replay queue cannot be read",)  # unknown is never taken for empty


def test_status_lines_say_progress_rate_and_lag() -> None:
    p = progress(fed_through_ms=NOW_MS - 90_000, vehicle_days_done=8, vehicle_days_total=8, passes=4)
    p.counts.rows, p.counts.samples, p.feeding_ms = 1000, 100_000, 2000.0
    lines = rules.progress_lines(p, queued=12, now_ms=NOW_MS)
    assert lines[0].startswith("vehicle-days 8/8   batches 1000   samples 100000   50,000 samples/s fed")
    assert "lag to live 90 s" in lines[1] and "queued for the job 12" in lines[1]


def test_rows_before_the_replay_are_copied_from_the_parent_and_only_those() -> None:
    class Row:
        def __init__(self, **values: object) -> None:
            self.__dict__.update(values)

    since = TODAY_MS - DAY_MS
    yesterday: date = utc(since - DAY_MS).date()
    assert rules.before_replay(Row(day_bucket=yesterday), since)
    assert not rules.before_replay(Row(day_bucket=utc(since).date()), since)
    naive = lambda ms: utc(ms).replace(tzinfo=None)  # noqa: E731  (the driver's timestamps: naive UTC)
    assert rules.before_replay(Row(start_time=naive(since - 1)), since)
    assert not rules.before_replay(Row(start_time=naive(since)), since)


def test_retired_versions_expire_after_their_keep_time_and_the_active_one_never() -> None:
    from fleetsense.cloud.result_versions import ResultVersion

    now = utc(NOW_MS)

    def version(number: int, state: str, kept_until_ms: int | None) -> ResultVersion:
        until = utc(kept_until_ms) if kept_until_ms is not None else None
        return ResultVersion(version=number, results_keyspace=f"k{number}", state=state, retire_after=until)

    versions = [
        version(1, "retired", NOW_MS - 1),  # expired: version 1's tables are emptied, not dropped
        version(2, "retired", NOW_MS + 1),  # kept a little longer
        version(3, "retired", None),  # kept until someone says
        version(4, "replaying", NOW_MS - 1),  # not retired
        version(5, "active", NOW_MS - 1),
        version(6, "retired", NOW_MS),  # exactly now: expired
    ]
    assert rules.expired(versions, active=5, now=now) == [1, 6]
    assert rules.expired(versions, active=6, now=now) == [1]


def test_a_savepoint_refused_while_tasks_redeploy_is_tried_again_and_any_other_refusal_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetsense.cloud.jobctl import JobError

    from fleetsense.stack import reprocess

    class Flink:
        def __init__(self, failures: list[str]) -> None:
            self.failures, self.calls = failures, 0

        def stop_with_savepoint(self, job_id: str, target: object) -> str:
            self.calls += 1
            if self.failures:
                raise JobError(self.failures.pop(0))
            return f"{target}/savepoint-1"

    restarting = "the savepoint failed: Task x is not being executed at the moment. Aborting checkpoint."
    flink = Flink([restarting, restarting])
    monkeypatch.setattr(reprocess.time, "sleep", lambda _s: None)  # no waiting in a unit test (undone after it)
    assert reprocess._stop_with_savepoint(flink, "job", tmp_path) == f"{tmp_path}/savepoint-1"
    assert flink.calls == 3
    with pytest.raises(JobError, match="disk full"):
        reprocess._stop_with_savepoint(Flink(["disk full"]), "job", tmp_path)
