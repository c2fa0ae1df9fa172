"""The ingest job on the local stack's Flink cluster: its settings, submission and cancellation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal, overload

from fleetsense.cloud.analytics import state_manifest
from fleetsense.cloud.cassandra_session import Login
from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.jobctl import FlinkCluster, JobError
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.errors import ConfigError
from fleetsense.gateway.topology import FLEET_VHOST, TELEMETRY_QUEUE
from fleetsense.stack import cassandra_auth
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.manager import flink_job_credentials
from fleetsense.stack.prepare import connector_jar
from fleetsense.stack.secrets import write_private

INGEST_JOB_NAME = "fleetsense-telemetry-ingest"


def cluster(config: StackConfig) -> FlinkCluster:
    """The stack's Flink cluster; in the secure profile reached over TLS with the operator's client certificate."""
    from fleetsense.stack.flink import Flink

    tls = Flink(config).rest_tls()
    return FlinkCluster(LOOPBACK, config.ports.flink_rest, log_dir=config.log_dir("flink-client"), tls=tls)


def ingest_settings(config: StackConfig, overrides: dict[str, str] | None = None) -> IngestJobSettings:
    creds = flink_job_credentials(config)
    cql_host, cql_port = config.cql_contact
    return build_ingest_settings(
        amqp_host=LOOPBACK,
        amqp_port=config.ports.amqp,
        amqp_login=creds,
        cassandra_host=cql_host,
        cassandra_port=cql_port,
        cql_login=cassandra_auth.login(config, cassandra_auth.JOB),  # None: a cluster without logins
        connector_jar=connector_jar(config),
        overrides=overrides,
    )


def live_settings(config: StackConfig, overrides: dict[str, str] | None = None) -> IngestJobSettings:
    """The live job's settings: the active result version's keyspace and result settings (docs/reprocessing.md),
    under the operator's `--set`s. Version 1 (nothing ever promoted) writes the main keyspace, as always."""
    from fleetsense.cloud.result_versions import read_versions

    with cassandra_auth.session_as(config, cassandra_auth.OPERATOR) as session:
        try:
            active, versions = read_versions(session, KEYSPACE)
        except Exception as exc:  # before the schema's migration 10 there are no versions: version 1
            if "result_versions" not in str(exc):
                raise
            return ingest_settings(config, overrides)
    chosen = next((v for v in versions if v.version == active), None)
    if chosen is None or chosen.results_keyspace == KEYSPACE:
        return ingest_settings(config, overrides)
    merged = {**{name: str(value) for name, value in chosen.settings.items()}, **(overrides or {})}
    return dataclasses.replace(ingest_settings(config, merged), results_keyspace=chosen.results_keyspace)


def build_ingest_settings(
    *,
    amqp_host: str,
    amqp_port: int,
    amqp_login: Login,
    cassandra_host: str,
    cassandra_port: int,
    cql_login: Login | None,
    connector_jar: Path,
    overrides: dict[str, str] | None = None,
) -> IngestJobSettings:
    """The ingest job's settings for a place it runs: the single-node stack, or `fleetsense cluster` (whose hosts
    are comma-separated lists: every broker, every Cassandra node)."""
    settings = IngestJobSettings(
        amqp_host=amqp_host,
        amqp_port=amqp_port,
        amqp_vhost=FLEET_VHOST,
        amqp_username=amqp_login.username,
        amqp_password=amqp_login.password,
        amqp_queue=TELEMETRY_QUEUE,
        cassandra_host=cassandra_host,
        cassandra_port=cassandra_port,
        cassandra_username=cql_login.username if cql_login else "",
        cassandra_password=cql_login.password if cql_login else "",
        keyspace=KEYSPACE,
        connector_jar=str(connector_jar),
        job_name=INGEST_JOB_NAME,
    )
    return settings.with_overrides(overrides or {})


def submit_ingest(
    config: StackConfig, overrides: dict[str, str] | None = None, *, savepoint: str | None = None
) -> tuple[str, bool]:
    """Submit the ingest job unless it already runs; returns (job id, whether it was submitted now)."""
    settings = live_settings(config, overrides)  # a bad setting is an error even when the job already runs
    return submit_settings(cluster(config), settings, _settings_path(config), savepoint=savepoint)


def submit_settings(
    flink: FlinkCluster,
    settings: IngestJobSettings,
    settings_path: Path,
    *,
    savepoint: str | None = None,
    lineage_from: Path | None = None,
    allow_non_restored: bool = False,
) -> tuple[str, bool]:
    """Submit the ingest job with `settings` to `flink` unless it already runs there, and wait until it runs.
    `lineage_from`: the settings file of the job whose savepoint this is, when it is not `settings_path` (a
    replay's savepoint promoted to be the live job): its state record is the lineage the new one continues."""
    running = flink.running(settings.job_name)
    if running:
        return running.job_id, False
    # The settings hold the job's broker and Cassandra secrets: a 0600 file, never a command-line argument.
    write_private(settings_path, settings.to_json())
    # Recorded before the job starts: should the submit fail, the record still covers what the savepoint holds.
    record_state(settings_path, settings, savepoint=savepoint, lineage_from=lineage_from)
    from fleetsense.cloud.jobs import telemetry_ingest_path

    job_id = flink.submit_python(
        telemetry_ingest_path(),
        ["--settings", str(settings_path)],
        jar=Path(settings.connector_jar),
        savepoint=savepoint,
        allow_non_restored=allow_non_restored,
    )
    flink.wait_running(job_id)
    return job_id, True


def _settings_path(config: StackConfig) -> Path:
    return config.component_dir("flink") / "jobs" / "telemetry-ingest.json"


def state_record_path(settings_path: Path) -> Path:
    """Where a job's state record (state_manifest.JobRecord) sits: beside its settings file."""
    return settings_path.with_name(f"{settings_path.stem}.state.json")


def record_state(
    settings_path: Path, settings: IngestJobSettings, *, savepoint: str | None, lineage_from: Path | None = None
) -> state_manifest.JobRecord:
    """Record what the job about to start from `savepoint` (None: fresh) may hold and its results fingerprint:
    a fresh job only this code's versions; one from a savepoint also every version its lineage recorded (the
    record beside `lineage_from`, another job's settings file, else beside `settings_path`)."""
    current = state_manifest.Current.of(settings.stream)
    if savepoint is None:
        record = state_manifest.fresh_record(current)
    else:
        source = state_record_path(lineage_from or settings_path)
        try:
            previous = read_state_record(source)
        except ConfigError:
            previous = None  # unreadable: assumed as for a job without one (upgrade_ingest refused it before)
        record = state_manifest.lineage_record(previous, current)
    write_private(state_record_path(settings_path), state_manifest.record_json(record))
    return record


def read_state_record(path: Path) -> state_manifest.JobRecord | None:
    """The state record at `path`, None when there is none; ConfigError when it cannot be read."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the job's state record {path}: {exc}") from exc
    return state_manifest.parse_record(text, source=str(path))


def recorded_job(settings_path: Path, current: state_manifest.Current) -> state_manifest.JobRecord | None:
    """What the running job recorded; for a job submitted by a release before records, what its settings file
    says (state_manifest.legacy_record); None when neither is there."""
    record = read_state_record(state_record_path(settings_path))
    if record is not None:
        return record
    try:
        submitted = json.loads(settings_path.read_text())
    except (OSError, ValueError):
        return None
    return state_manifest.legacy_record(submitted if isinstance(submitted, dict) else {}, current)


def submitted_setting(config: StackConfig, name: str) -> str | None:
    """A setting the running job was submitted with (its settings file), if known."""
    try:
        return str(json.loads(_settings_path(config).read_text())[name])
    except (OSError, ValueError, KeyError):
        return None


def cancel_ingest(config: StackConfig) -> str | None:
    flink = cluster(config)
    running = flink.running(INGEST_JOB_NAME)
    if running is None:
        return None
    flink.cancel(running.job_id)
    return running.job_id


@overload
def upgrade_ingest(
    config: StackConfig,
    overrides: dict[str, str] | None = None,
    *,
    same_version: bool = False,
    dry_run: Literal[False] = False,
) -> tuple[str, str, str]: ...
@overload
def upgrade_ingest(
    config: StackConfig, overrides: dict[str, str] | None = None, *, same_version: bool = False, dry_run: bool
) -> tuple[str, str, str] | None: ...
def upgrade_ingest(
    config: StackConfig,
    overrides: dict[str, str] | None = None,
    *,
    same_version: bool = False,
    dry_run: bool = False,
) -> tuple[str, str, str] | None:
    """Stop the running job with a savepoint and start the current code (and settings) from it: no message is
    lost (unacked deliveries go back to the queue) and no state is reset. Returns (old id, savepoint, new id).

    First it prints the verdict (state_manifest.upgrade_verdict): per piece of keyed state whether the new code
    reads it as is, migrates it or cannot read it, and whether the code and settings change the results. A refusal
    is a ConfigError raised while the running job is untouched; `same_version` accepts a change of results from now
    on. `dry_run`: the verdict only (still a ConfigError if refused), nothing stopped; returns None."""
    if overrides and "shards" in overrides:
        raise JobError(
            "the shard count cannot change in an upgrade: the vehicles' state is keyed by shard",
            hint="cancel the job and submit a new one with --set shards=N (its vehicles start afresh)",
        )
    flink = cluster(config)
    running = flink.running(INGEST_JOB_NAME)
    if running is None:
        raise JobError("no running ingest job to upgrade", hint="start one with `fleetsense job submit`")
    overrides = dict(overrides or {})
    shards = submitted_setting(config, "shards")
    if shards is not None:
        overrides["shards"] = shards
    settings = live_settings(config, overrides)  # a bad setting is refused before the job is stopped
    settings_path = _settings_path(config)
    current = state_manifest.Current.of(settings.stream)
    verdict = state_manifest.upgrade_verdict(recorded_job(settings_path, current), current, same_version=same_version)
    print("\n".join(verdict.lines()))
    refusal = verdict.error()
    if refusal is not None:
        raise refusal
    if dry_run:
        return None
    savepoint = flink.stop_with_savepoint(running.job_id, config.component_dir("flink") / "savepoints")
    # The migrations the new code brings run while no job writes: a copy into a renamed column (migration 7) must
    # not race the old job, which still writes the old column.
    from fleetsense.stack.cassandra import Cassandra

    Cassandra(config).apply_schema()
    new_id, _ = submit_settings(flink, settings, settings_path, savepoint=savepoint)
    return running.job_id, savepoint, new_id


def status_report(config: StackConfig) -> list[str]:
    """One line per job, and for the running ingest job its counters and checkpoints."""
    from fleetsense.cloud.vehicle_stream import COUNTERS

    flink = cluster(config)
    lines: list[str] = []
    for job in flink.jobs():
        lines.append(f"{job.job_id}  {job.state:<10}  {job.name}")
        if job.name == INGEST_JOB_NAME and job.state == "RUNNING":
            counters = flink.counters(job.job_id, COUNTERS)
            lines.append("    " + "  ".join(f"{name} {value}" for name, value in counters.items()))
            lines += checkpoint_lines(flink.last_checkpoint(job.job_id))
    return lines


def checkpoint_lines(summary: dict[str, Any]) -> list[str]:
    """The checkpoint counts, saying whether any failure was more than a trigger refused while tasks were down."""
    failure = summary.get("latest_failure")
    counts = "  ".join(f"{k} {v}" for k, v in summary.items() if k != "latest_failure")
    if failure:
        return [f"    checkpoints {counts}", f"    latest failed checkpoint: {str(failure)[:300]}"]
    if summary.get("failed"):
        counts += "  (each failed one was only triggered while tasks were not running: starting or restarting)"
    return [f"    checkpoints {counts}"]
