"""Kappa reprocessing on a real stack of its own (a promote changes the live job and the readers' version, which the
session's other tests must not see): a lower harsh-braking threshold for vans is replayed over the log into result
version 2 while the live job keeps ingesting; every TaskManager is killed mid-replay; version 2's events and scores
equal a pure-Python recomputation of the same batches with the new settings; version 1 does not change until the
promote; the vehicle streaming live through all of it loses and doubles nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud import tables
from fleetsense.cloud.query import blocks, events_between, sample_keys
from fleetsense.cloud.result_versions import keyspace_of, read_versions
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.cloud.shard_stream import DictShardStore, on_bundle, on_shard_timer
from fleetsense.cloud.stream_settings import StreamSettings
from fleetsense.edge.runtime import send_outbox

from fleetsense import wire
from fleetsense.errors import ConfigError, FleetsenseError
from fleetsense.stack import cassandra_auth, jobs, manager, replay_feeder, reprocess, version_rules
from fleetsense.stack.flink import Flink
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.prepare import prepare

from . import conftest
from .helpers import eventually, expected_keys, provision_vehicle, unique_vehicle
from .test_analytics_pipeline import drive_window_us, record_scripted_drive

NEW_THRESHOLDS = "van.harsh_brake_g=0.28"
# Held-back samples flushed after 2 s of silence instead of 15: the waits below are that much shorter. The flush is
# provisional (the segment's end rewrites it), so results do not depend on it.
QUICK = {"idle_flush_ms": "2000"}
FLUSHED_S = 6
DAY_US = 86_400_000_000


@pytest.fixture(scope="module")
def own_stack() -> Iterator[StackConfig]:
    base = StackConfig.for_tests(conftest.test_data_dir())
    config = dataclasses.replace(
        base,
        data_dir=base.data_dir.with_name(base.data_dir.name + "-reprocess"),
        ports=base.ports.offset(40),
        name=base.name + "-reprocess",
    )
    manager.down(config, say=lambda _: None)
    shutil.rmtree(config.data_dir, ignore_errors=True)
    try:
        prepare(config, say=lambda _: None)
        manager.up(config, say=lambda _: None)
        jobs.submit_ingest(config, QUICK)
    except FleetsenseError as exc:
        pytest.fail(f"the reprocessing test's stack did not come up:\n{exc.render()}", pytrace=False)
    yield config
    for version in (2, 3):
        replay_feeder.stop_feeder(config, version)
    manager.down(config, say=lambda _: None)


@pytest.fixture(scope="module")
def session(own_stack: StackConfig) -> Iterator[Any]:
    with cassandra_auth.session_as(own_stack, cassandra_auth.OPERATOR) as cql:
        yield cql


def recompute(cql: Any, vehicle_id: str, settings: StreamSettings) -> tuple[set[tuple[Any, ...]], dict[Any, float]]:
    """The job's own per-vehicle step, in this process: the vehicle's stored batches in (epoch, seq) order, then a
    flush. Its event rows (kind, start, end, peak) and daily scores, as the job would write them."""
    rows = sorted(blocks(cql, KEYSPACE, vehicle_id, with_message=True), key=lambda row: (row.epoch, row.seq))
    messages = [(f"fleet.{vehicle_id}.telemetry", bytes(row.message)) for row in rows]
    store, deadlines = DictShardStore(), {}
    now_ms = int(time.time() * 1000)
    writes = list(
        on_bundle(store, deadlines, messages, now_ms=now_ms, settings=settings, profiles_of=lambda ids: {}).writes
    )
    writes += on_shard_timer(store, deadlines, now_ms=now_ms + 10**9).writes
    events, scores = set(), {}
    for name, values in writes:
        if name == tables.EVENTS_BY_VEHICLE.write:
            get = lambda column, v=values: tables.EVENTS_BY_VEHICLE.value(v, column)  # noqa: E731
            events.add((get("kind"), get("start_time"), get("end_time"), _f32(get("peak"))))
        elif name == tables.DRIVER_SCORES.write:
            day = tables.DRIVER_SCORES.value(values, "day_bucket")
            scores[str(day)] = _f32(tables.DRIVER_SCORES.value(values, "score"))
    return events, scores


def stored(cql: Any, keyspace: str, vehicle_id: str, window: tuple[int, int]) -> tuple[set[tuple[Any, ...]], dict]:
    events = {
        (row.kind, _ms(row.start_time), _ms(row.end_time), _f32(row.peak))
        for row in events_between(cql, keyspace, vehicle_id, window[0] - DAY_US, window[1] + DAY_US)
    }
    scores = {
        str(row.day_bucket): _f32(row.score)
        for row in cql.execute(
            f"SELECT day_bucket, score FROM {keyspace}.daily_scores WHERE vehicle_id = %s", (vehicle_id,)
        )
    }
    return events, scores


def _f32(value: float) -> float:
    """As a CQL float stores it, to 4 decimals."""
    return round(struct.unpack("f", struct.pack("f", value))[0], 4)


def _ms(value: Any) -> int:
    from datetime import UTC

    return round(value.replace(tzinfo=UTC).timestamp() * 1000)


def moved_brake(before: dict[str, Any], after: dict[str, Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """A (vehicle, kind, start, end) of version 1 whose start version 2 moved, and the version-2 event it became."""
    for vid, (old_events, _) in before.items():
        new_events = after[vid][0]
        new_starts = {(kind, start) for kind, start, _, _ in new_events}
        for kind, start, end, _ in sorted(old_events):
            if kind != "harsh_brake" or (kind, start) in new_starts:
                continue
            overlapping = [e for e in new_events if e[0] == kind and e[1] <= end and e[2] >= start]
            if len(overlapping) == 1:
                return (vid, kind, start, end), (vid, kind, overlapping[0][1], overlapping[0][2])
    raise AssertionError("no harsh brake moved between the versions: the review test would prove nothing")


def review_event(cql: Any, event: tuple[Any, ...], state: str) -> None:
    vid, kind, start_ms, _ = event
    at = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    cql.execute(
        f"INSERT INTO {KEYSPACE}.{tables.EVENT_REVIEWS.name} (vehicle_id, day_bucket, start_time, kind, state, note,"
        " reviewed_by, reviewed_at, driver_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (vid, at.date(), at, kind, state, "ABS test on a wet road", "test-manager", datetime.now(UTC), None),
    )


def review_state(cql: Any, event: tuple[Any, ...]) -> str | None:
    vid, kind, start_ms, _ = event
    at = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    row = cql.execute(
        f"SELECT state FROM {KEYSPACE}.{tables.EVENT_REVIEWS.name} WHERE vehicle_id = %s AND day_bucket = %s"
        " AND start_time = %s AND kind = %s",
        (vid, at.date(), at, kind),
    ).one()
    return None if row is None else row.state


def wait_caught_up(config: StackConfig, version: int, timeout_s: float) -> version_rules.CatchUp:
    def probe() -> version_rules.CatchUp:
        return version_rules.catch_up(
            replay_feeder.load_progress(config, version),
            queued=reprocess.queued(config, version),
            job_running=jobs.cluster(config).running(version_rules.job_name(version)) is not None,
            feeder_alive=replay_feeder.feeder_pid(config, version) is not None,
            now_ms=int(time.time() * 1000),
        )

    return eventually(probe, lambda check: check.caught_up, timeout_s=timeout_s, interval_s=2.0)


def test_a_lower_threshold_replayed_across_a_taskmanager_kill_then_promoted(
    own_stack: StackConfig, session: Any, tmp_path: Path
) -> None:
    config, client = own_stack, manager.management_client(own_stack)
    # History: two vans' scripted drives, analysed by the live job with the code's thresholds (version 1).
    history = []
    for seed in (31, 32):
        drive = record_scripted_drive(provision_vehicle(client, config, unique_vehicle("past"), tmp_path), seed=seed)
        assert send_outbox(drive.config, timeout_s=120) == 0
        history.append(drive)
    for drive in history:
        eventually(
            lambda d=drive: stored(session, KEYSPACE, d.config.vehicle_id, drive_window_us(d))[0],
            lambda found, d=drive: len(found) >= len(d.expected_events),
            timeout_s=120,
        )
    time.sleep(FLUSHED_S)  # the idle flush closes what the live job held back
    before = {d.config.vehicle_id: stored(session, KEYSPACE, d.config.vehicle_id, drive_window_us(d)) for d in history}

    # A van driving live through the replay, the kill and the promote: slow, so it streams all along.
    live = record_scripted_drive(provision_vehicle(client, config, unique_vehicle("live"), tmp_path), seed=33)
    live_config = dataclasses.replace(
        live.config, outbox=dataclasses.replace(live.config.outbox, replay_rate_per_s=3.0)
    )
    left: list[int] = []
    sender = threading.Thread(target=lambda: left.append(send_outbox(live_config, timeout_s=600)))
    sender.start()
    try:
        started = reprocess.reprocess(config, since="1d", overrides={**QUICK, "thresholds": NEW_THRESHOLDS})
        assert started.version == 2 and started.keyspace == keyspace_of(KEYSPACE, 2)
        # Its feeder is still starting: a promote now is refused, saying what is missing, and changes nothing.
        with pytest.raises(ConfigError, match="version 2 has not caught up with live: the first pass") as refused:
            reprocess.promote(config, 2)
        assert "fleetsense job status" in (refused.value.hint or "")
        assert jobs.cluster(config).running(jobs.INGEST_JOB_NAME) is not None

        # Every TaskManager killed while the replay reads: both jobs restart from their checkpoints.
        time.sleep(5)
        flink = Flink(config)
        for victim in flink.taskmanager_pids():
            os.kill(victim, signal.SIGKILL)
        time.sleep(4)
        flink.start()
        check = wait_caught_up(config, 2, timeout_s=300)
        assert check.caught_up, check.missing
        # The kill really failed the replay (Flink's metric store refreshes when asked: ask until it has).
        restarts = eventually(
            lambda: jobs.cluster(config).restarts(started.job_id), lambda n: n >= 1, timeout_s=30, interval_s=2.0
        )
        assert restarts >= 1
        time.sleep(FLUSHED_S)  # the replay's idle flush

        new_settings = StreamSettings(thresholds=NEW_THRESHOLDS)
        changed = False
        for drive in history:
            vid, window = drive.config.vehicle_id, drive_window_us(drive)
            expected = recompute(session, vid, new_settings)
            assert stored(session, started.keyspace, vid, window) == expected
            # Version 1, what every reader sees, has not changed...
            assert stored(session, KEYSPACE, vid, window) == before[vid]
            changed |= expected[0] != before[vid][0]
        assert changed, "the lower threshold changed no event: the test would prove nothing"
        active, _ = read_versions(session, KEYSPACE)
        assert active == 1
        # A manager dismissed a harsh brake of version 1 that version 2 starts earlier: the review must follow it.
        dismissed, moved_to = moved_brake(
            before, {d.config.vehicle_id: recompute(session, d.config.vehicle_id, new_settings) for d in history}
        )
        review_event(session, dismissed, "dismissed")

        promoted = reprocess.promote(config, 2)
        assert promoted.old_version == 1
        # How long no job read the live queue, kept for docs/reprocessing.md (the data dir outlives the test).
        artifacts = config.data_dir / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        (artifacts / "promote.json").write_text(json.dumps({"paused_s": round(promoted.paused_s, 1)}))
    finally:
        sender.join()
    assert left == [0]
    active, versions = read_versions(session, KEYSPACE)
    assert active == 2 and {v.version: v.state for v in versions} == {1: "retired", 2: "active"}
    assert "reviews: 1 moved" in promoted.reviews, promoted.reviews
    assert review_state(session, moved_to) == "dismissed"

    # The live van: every sample stored once, contiguous; its events in version 2 are the recomputation's.
    vid = live.config.vehicle_id
    assert eventually(
        lambda: sample_keys(session, KEYSPACE, vid),
        lambda keys: len(keys) >= len(expected_keys(live.batches, wire.Kind.IMU)),
        timeout_s=120,
    ) == expected_keys(live.batches, wire.Kind.IMU)
    # Every batch, the non-IMU ones too (the wait above counts IMU samples only): contiguous, once each.
    every_seq = list(range(live.batches[0].seq, live.batches[-1].seq + 1))
    seqs = eventually(
        lambda: sorted(row.seq for row in blocks(session, KEYSPACE, vid)), lambda s: s == every_seq, timeout_s=60
    )
    assert seqs == every_seq
    time.sleep(FLUSHED_S)  # the new live job's idle flush
    expected = recompute(session, vid, StreamSettings(thresholds=NEW_THRESHOLDS))
    assert stored(session, keyspace_of(KEYSPACE, 2), vid, drive_window_us(live)) == expected
    # The promoted job runs with the version's settings, writing version 2.
    settings = jobs.live_settings(config)
    assert settings.results_keyspace == keyspace_of(KEYSPACE, 2) and settings.stream.thresholds == NEW_THRESHOLDS
