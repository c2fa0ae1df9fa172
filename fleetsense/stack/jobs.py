"""The ingest job on the local stack's Flink cluster: its settings, submission and cancellation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleetsense.cloud.cassandra_session import Login
from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.jobctl import FlinkCluster, JobError
from fleetsense.cloud.schema import KEYSPACE
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
    settings = ingest_settings(config, overrides)  # a bad setting is an error even when the job already runs
    return submit_settings(cluster(config), settings, _settings_path(config), savepoint=savepoint)


def submit_settings(
    flink: FlinkCluster, settings: IngestJobSettings, settings_path: Path, *, savepoint: str | None = None
) -> tuple[str, bool]:
    """Submit the ingest job with `settings` to `flink` unless it already runs there, and wait until it runs."""
    running = flink.running(settings.job_name)
    if running:
        return running.job_id, False
    # The settings hold the job's broker and Cassandra secrets: a 0600 file, never a command-line argument.
    write_private(settings_path, settings.to_json())
    from fleetsense.cloud.jobs import telemetry_ingest_path

    job_id = flink.submit_python(
        telemetry_ingest_path(),
        ["--settings", str(settings_path)],
        jar=Path(settings.connector_jar),
        savepoint=savepoint,
    )
    flink.wait_running(job_id)
    return job_id, True


def _settings_path(config: StackConfig) -> Path:
    return config.component_dir("flink") / "jobs" / "telemetry-ingest.json"


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


def upgrade_ingest(config: StackConfig, overrides: dict[str, str] | None = None) -> tuple[str, str, str]:
    """Stop the running job with a savepoint and start the current code (and settings) from it: no message is
    lost (unacked deliveries go back to the queue) and no state is reset. Returns (old id, savepoint, new id)."""
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
    savepoint = flink.stop_with_savepoint(running.job_id, config.component_dir("flink") / "savepoints")
    # The migrations the new code brings run while no job writes: a copy into a renamed column (migration 7) must
    # not race the old job, which still writes the old column.
    from fleetsense.stack.cassandra import Cassandra

    Cassandra(config).apply_schema()
    new_id, _ = submit_ingest(config, overrides, savepoint=savepoint)
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
