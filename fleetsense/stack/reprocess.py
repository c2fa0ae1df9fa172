"""Result versions on the local stack (docs/reprocessing.md): `job reprocess` replays the retained log into a new
version beside the live one, `job status` follows it, `job promote` makes it the live job and the readers' version.

A version N > 1 is a keyspace of the result tables (`fleetsense_r<N>`), a row in `result_versions`, a replay queue
(`fleet.replay.r<N>`), a reprocessing job (`fleetsense-reprocess-r<N>`: the live job's code with `writes=results`,
reading that queue) and a feeder process that moves the log into the queue (cloud/log_replay.py). Its files live in
<data dir>/flink/reprocess/: the job's settings, the feeder's progress, pid and log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.jobctl import JobError
from fleetsense.cloud.log_replay import FeedProgress
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.errors import ConfigError, FleetsenseError
from fleetsense.gateway.topology import FLEET_VHOST, replay_queue
from fleetsense.stack import cassandra_auth
from fleetsense.stack.jobs import INGEST_JOB_NAME, cluster, submit_settings
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.replay_feeder import (
    feed,
    feeder_pid,
    files_dir,
    load_progress,
    save_progress,
    start_feeder_process,
    stop_feeder,
)
from fleetsense.stack.version_rules import (
    catch_up,
    expired,
    job_name,
    progress_lines,
    replay_overrides,
    result_settings,
    since_ms_of,
)


def _settings_path(config: StackConfig, version: int) -> Path:
    return files_dir(config) / f"r{version}.settings.json"


@dataclass(frozen=True)
class Started:
    version: int
    keyspace: str
    job_id: str
    since_ms: int


def reprocess(config: StackConfig, *, since: str, overrides: dict[str, str], start_feeder: bool = True) -> Started:
    """Record version N, make its keyspace and queue, start its job and its feeder; the live job is untouched."""
    from fleetsense.cloud.result_versions import REPLAYING, add_version, keyspace_of, read_versions

    now_ms = int(time.time() * 1000)
    since_ms = since_ms_of(since, now_ms=now_ms)
    drop_expired(config)
    job_overrides = replay_overrides(overrides)
    writes = job_overrides.pop("writes")  # set with the version's keyspace below, which the command line cannot name

    # The live job's settings as submitted (the active version's among them) under these: a bad one is refused here.
    base = _live_base(config, job_overrides)
    with cassandra_auth.session_as(config, cassandra_auth.OPERATOR) as session:
        active, versions = read_versions(session, KEYSPACE)
        inherited = next((v.settings for v in versions if v.version == active), {})
        busy = [v.version for v in versions if v.state == REPLAYING]
        if busy:
            raise ConfigError(
                f"version {busy[0]} is still replaying: one replay at a time (they share the cluster's slots)",
                hint=f"promote it (`fleetsense job promote {busy[0]}`) or drop it (`fleetsense job drop {busy[0]}`)",
            )
        version = add_version(
            session,
            KEYSPACE,
            from_time=datetime.fromtimestamp(since_ms / 1000, tz=UTC),
            settings=result_settings({**{k: str(v) for k, v in inherited.items()}, **overrides}),
            job_name=INGEST_JOB_NAME,
        )
        keyspace = keyspace_of(KEYSPACE, version)
        _make_keyspace(config, session, keyspace)
    queue = _make_queue(config, version)
    settings = dataclasses.replace(
        base, writes=writes, amqp_queue=queue, results_keyspace=keyspace, job_name=job_name(version)
    )
    files_dir(config).mkdir(parents=True, exist_ok=True)
    save_progress(config, FeedProgress(version=version, since_ms=since_ms, started_ms=now_ms))
    job_id, _ = submit_settings(cluster(config), settings, _settings_path(config, version))
    if start_feeder:
        start_feeder_process(config, version)
    return Started(version, keyspace, job_id, since_ms)


def queued(config: StackConfig, version: int) -> int | None:
    """Batches in the version's replay queue, ready or unacknowledged (the job acks after its checkpoints: 0 means
    everything fed is in the job's checkpointed state and its writes); None if the broker cannot say."""
    from fleetsense.stack.manager import management_client

    try:
        queue = management_client(config).queue(FLEET_VHOST, replay_queue(version))
    except Exception:  # the broker down or the queue gone: unknown, never zero
        return None
    if queue is None or "messages" not in queue:
        return None
    return int(queue["messages"])


@dataclass(frozen=True)
class Promoted:
    version: int
    old_version: int
    job_id: str
    paused_s: float  # how long no job read the live queue
    reviews: str = ""  # what became of the managers' reviews of the replayed days (service/review_carry.py)


def promote(config: StackConfig, version: int, *, drain_timeout_s: float = 600.0, keep_days: float = 7.0) -> Promoted:
    """Make a caught-up version the live job and the readers' version (docs/reprocessing.md, "Promote"):
    1. refuse, with what is missing, unless it has caught up; 2. stop its feeder, then the live job with a savepoint
    (deliveries it has not checkpointed go back to the live queue); 3. feed the last of the log and let the replay
    drain it; 4. stop the replay with a savepoint; 5. flip the active version (one conditional write: readers switch
    together); 6. start the replay's state as the live job, reading the live queue, where its sequencer drops what
    the old job had already stored. Any failure before the flip restarts the old job from its savepoint."""
    from fleetsense.cloud.result_versions import REPLAYING, flip_active, read_versions, set_state

    with cassandra_auth.session_as(config, cassandra_auth.OPERATOR) as session:
        active, versions = read_versions(session, KEYSPACE)
    chosen = next((v for v in versions if v.version == version), None)
    if chosen is None or chosen.state != REPLAYING:
        state = "unknown" if chosen is None else chosen.state
        raise ConfigError(
            f"result version {version} is {state}: only a replaying version can be promoted",
            hint="`fleetsense job status` lists the versions",
        )
    flink = cluster(config)
    replay, live = flink.running(job_name(version)), flink.running(INGEST_JOB_NAME)
    now_ms = int(time.time() * 1000)
    check = catch_up(
        load_progress(config, version),
        queued=queued(config, version),
        job_running=replay is not None,
        feeder_alive=feeder_pid(config, version) is not None,
        now_ms=now_ms,
    )
    if not check.caught_up or replay is None:
        raise ConfigError(
            f"result version {version} has not caught up with live: " + "; ".join(check.missing),
            hint="follow it with `fleetsense job status` and promote once it has caught up",
        )
    stop_feeder(config, version)
    savepoints = config.component_dir("flink") / "savepoints"
    paused_at = time.monotonic()
    try:
        live_savepoint = _stop_with_savepoint(flink, live.job_id, savepoints) if live else None
    except BaseException:
        start_feeder_process(config, version)  # nothing else was touched
        raise
    try:
        asyncio.run(feed(config, version, passes=1))  # what the live job stored until it stopped
        _wait_drained(config, version, timeout_s=drain_timeout_s)
        replay_savepoint = _stop_with_savepoint(flink, replay.job_id, savepoints)
    except BaseException:
        _resume_live(config, live_savepoint)
        start_feeder_process(config, version)
        raise
    from datetime import timedelta

    keep_until = datetime.now(UTC) + timedelta(days=keep_days)
    with cassandra_auth.session_as(config, cassandra_auth.OPERATOR) as session:
        flipped = flip_active(session, KEYSPACE, active, version, retire_after=keep_until)
    if not flipped:
        _resume_live(config, live_savepoint)
        raise FleetsenseError(
            f"version {active} is no longer the active one: another promote ran meanwhile; the old live job is back",
            hint=f"version {version}'s replay stopped with savepoint {replay_savepoint}; see `fleetsense job status`",
        )
    from fleetsense.stack import jobs

    try:
        settings = _promoted_settings(config, chosen.settings, chosen.results_keyspace)
        job_id, _ = submit_settings(
            flink,
            settings,
            jobs._settings_path(config),
            savepoint=replay_savepoint,
            allow_non_restored=True,
            lineage_from=_settings_path(config, version),
        )
    except BaseException:
        # Readers back on the old version, the old live job back from its savepoint, the replay back from its own.
        with cassandra_auth.session_as(config, cassandra_auth.OPERATOR) as session:
            flip_active(session, KEYSPACE, version, active)
            set_state(session, KEYSPACE, version, REPLAYING, expected="retired")
        _resume_live(config, live_savepoint)
        submit_settings(
            flink, _replay_settings(config, version), _settings_path(config, version), savepoint=replay_savepoint
        )
        start_feeder_process(config, version)
        raise
    paused_s = time.monotonic() - paused_at
    reviews = _carry_reviews(config, chosen, old_keyspace=_keyspace(active))
    _remove_queue(config, version)
    drop_expired(config)
    return Promoted(version, active, job_id, paused_s, reviews)


# Flink refuses a savepoint while some of the job's tasks are (re)deploying, after a restart: try again meanwhile.
RESTARTING_TASKS = ("is not being executed at the moment", "Not all required tasks are currently running")
SAVEPOINT_RETRY_S = 180.0


def _stop_with_savepoint(flink: Any, job_id: str, savepoints: Path) -> str:
    deadline = time.monotonic() + SAVEPOINT_RETRY_S
    while True:
        try:
            return str(flink.stop_with_savepoint(job_id, savepoints))
        except JobError as exc:
            if not any(text in exc.message for text in RESTARTING_TASKS) or time.monotonic() > deadline:
                raise
        time.sleep(3.0)


def _keyspace(version: int) -> str:
    from fleetsense.cloud.result_versions import keyspace_of

    return keyspace_of(KEYSPACE, version)


def _carry_reviews(config: StackConfig, chosen: Any, *, old_keyspace: str) -> str:
    """Reviews of the replayed days moved to the new version's events: after the switch, with the live job running
    again (it adds to no pause). Never fails the promote, which is done: a failure is reported, and the reviews stay
    where they were."""
    from datetime import timedelta

    try:
        from fleetsense.service.review_carry import carry_reviews

        first = (chosen.from_time or datetime.now(UTC)).date()
        days = [first + timedelta(days=n) for n in range((datetime.now(UTC).date() - first).days + 1)]
        with cassandra_auth.session_as(config, cassandra_auth.OPERATOR) as session:
            report = carry_reviews(session, KEYSPACE, old_keyspace, chosen.results_keyspace, days=days)
    except Exception as exc:  # the promote itself is complete
        return f"reviews NOT carried over ({type(exc).__name__}: {exc}); they still name the old events"
    lost = f"; {len(report.lost)} match no event any more: {', '.join(report.lost[:5])}" if report.lost else ""
    return f"reviews: {report.moved} moved to their event's new start, {report.kept} unchanged{lost}"


def _live_base(config: StackConfig, overrides: dict[str, str]) -> IngestJobSettings:
    from fleetsense.stack import jobs

    try:
        return IngestJobSettings.from_file(jobs._settings_path(config)).with_overrides(overrides)
    except OSError:  # no live job was ever submitted here: the stack's defaults and the active version's
        return jobs.live_settings(config, overrides)


def _promoted_settings(config: StackConfig, version_settings: dict[str, Any], keyspace: str) -> IngestJobSettings:
    """The old live job's settings as submitted (its parallelism, refresh times...), with the promoted version's
    result settings and keyspace."""
    from fleetsense.stack import jobs

    try:
        old = IngestJobSettings.from_file(jobs._settings_path(config))
    except OSError:  # no live job was ever submitted here: the stack's defaults
        return jobs.live_settings(config)
    chosen = old.with_overrides({name: str(value) for name, value in version_settings.items()})
    return dataclasses.replace(chosen, results_keyspace=keyspace)


def _replay_settings(config: StackConfig, version: int) -> IngestJobSettings:
    """The settings version N's replay was submitted with (its own file)."""
    return IngestJobSettings.from_file(_settings_path(config, version))


def _wait_drained(config: StackConfig, version: int, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    zero_since: float | None = None
    while time.monotonic() < deadline:
        if queued(config, version) == 0:
            zero_since = zero_since or time.monotonic()
            if time.monotonic() - zero_since >= 2.0:  # the broker's counts lag its deliveries a little
                return
        else:
            zero_since = None
        time.sleep(0.5)
    raise FleetsenseError(
        f"the replay of version {version} did not drain its queue within {timeout_s:.0f} s",
        hint="the live job was restarted from its savepoint; look at the reprocessing job in Flink's UI",
    )


def _resume_live(config: StackConfig, savepoint: str | None) -> None:
    if savepoint is None:
        return
    from fleetsense.stack import jobs

    jobs.submit_ingest(config, savepoint=savepoint)


def _remove_queue(config: StackConfig, version: int) -> None:
    from fleetsense.gateway import topology
    from fleetsense.stack.manager import management_client

    topology.remove_replay_queue(management_client(config), version)


def drop(config: StackConfig, version: int) -> None:
    """Remove a version that is not active: its feeder, its job, its queue and its keyspace."""
    from fleetsense.cloud.result_versions import drop_version, read_versions

    with cassandra_auth.session_as(config, cassandra_auth.OPERATOR) as session:
        active, _ = read_versions(session, KEYSPACE)
        if version == active:
            raise ConfigError(f"result version {version} is the active one", hint="promote another version first")
        if version == 1:
            _drop_first(session)
            return
        stop_feeder(config, version)
        flink = cluster(config)
        running = flink.running(job_name(version))
        if running is not None:
            flink.cancel(running.job_id)
        _remove_queue(config, version)
        drop_version(session, KEYSPACE, version)


def _drop_first(session: Any) -> None:
    """Version 1's results are the main keyspace's own result tables, beside the ingest tables and the service's: they
    are emptied, not dropped. Recorded first (a conditional update), so an emptying cut off is finished by a rerun."""
    from fleetsense.cloud.result_versions import FLEET
    from fleetsense.cloud.tables import RESULT_TABLES, RESULT_VERSIONS

    row = session.execute(
        f"UPDATE {KEYSPACE}.{RESULT_VERSIONS.name} SET state = 'dropped' WHERE fleet = %s AND version = 1 "
        "IF state IN ('retired', 'dropped')",
        (FLEET,),
    ).one()
    if not row[0]:
        raise ConfigError("result version 1 cannot be dropped: it is not retired")
    for table in RESULT_TABLES:
        session.execute(f"TRUNCATE {KEYSPACE}.{table.name}")


def drop_expired(config: StackConfig) -> list[int]:
    from fleetsense.cloud.result_versions import read_versions

    with cassandra_auth.session_as(config, cassandra_auth.OPERATOR) as session:
        active, versions = read_versions(session, KEYSPACE)
    gone = expired(versions, active, datetime.now(UTC))
    for version in gone:
        drop(config, version)
    return gone


def status_lines(config: StackConfig) -> list[str]:
    """`job status`: every result version, and a replaying one's progress."""
    from fleetsense.cloud.result_versions import REPLAYING, read_versions

    try:
        with cassandra_auth.session_as(config, cassandra_auth.OPERATOR) as session:
            active, versions = read_versions(session, KEYSPACE)
    except Exception as exc:  # status must say what it can
        return [f"result versions: cannot be read ({exc})"]
    now_ms = int(time.time() * 1000)
    lines = []
    for v in sorted(versions, key=lambda v: v.version):
        since = v.from_time.strftime("%Y-%m-%d") if v.from_time else "the beginning"
        mark = "active" if v.version == active else v.state
        extra = f"  kept until {v.retire_after:%Y-%m-%d %H:%M}Z" if v.retire_after and v.version != active else ""
        settings = " ".join(f"{k}={val}" for k, val in v.settings.items()) or "the code's defaults"
        lines.append(f"result version {v.version} ({v.results_keyspace}): {mark}, from {since}, {settings}{extra}")
        if v.state == REPLAYING:
            progress = load_progress(config, v.version)
            depth = queued(config, v.version)
            if progress is not None:
                lines += ["    " + line for line in progress_lines(progress, queued=depth, now_ms=now_ms)]
            feeder = "running" if feeder_pid(config, v.version) else "NOT RUNNING"
            check = catch_up(
                progress,
                queued=depth,
                job_running=cluster(config).running(job_name(v.version)) is not None,
                feeder_alive=feeder != "NOT RUNNING",
                now_ms=now_ms,
            )
            verdict = "caught up: ready to promote" if check.caught_up else "not caught up: " + "; ".join(check.missing)
            lines.append(f"    feeder {feeder}; {verdict}")
    return lines


def _make_keyspace(config: StackConfig, session: Any, keyspace: str) -> None:
    """The version's result tables, readable by the job (which writes them), the reader and the service."""
    from fleetsense.cloud.schema import apply_result_schema

    apply_result_schema(session, keyspace)
    if not cassandra_auth.login_required(config):
        return
    for role, permissions in ((cassandra_auth.JOB, ("SELECT", "MODIFY")), (cassandra_auth.READER, ("SELECT",))):
        username = cassandra_auth.login(config, role).username  # type: ignore[union-attr]
        for permission in permissions:
            session.execute(f"GRANT {permission} ON KEYSPACE {keyspace} TO {username}")
    service = cassandra_auth.login(config, cassandra_auth.SERVICE)
    if service is not None:
        session.execute(f"GRANT SELECT ON KEYSPACE {keyspace} TO {service.username}")


def _make_queue(config: StackConfig, version: int) -> str:
    from fleetsense.gateway import topology
    from fleetsense.stack.manager import flink_job_credentials, management_client

    client = management_client(config)
    queue = topology.ensure_replay_queue(client, version)
    topology.ensure_flink_user(client, flink_job_credentials(config).password)  # may read replay queues
    return queue
