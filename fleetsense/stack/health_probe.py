"""Takes the readings the health rules need (Flink REST, RabbitMQ's management API) and applies the rules: the
I/O edge of fleetsense.stack.health."""

from __future__ import annotations

from typing import Any

from fleetsense.errors import FleetsenseError
from fleetsense.stack.health import (
    Check,
    HealthThresholds,
    checkpoint_check,
    queue_growth_check,
    restarts_check,
    subtasks_check,
    unknown,
)
from fleetsense.stack.layout import StackConfig

READ_TIMEOUT_S = 5.0  # a status probe must answer even when a component hangs


def ingest_job_checks(config: StackConfig, thresholds: HealthThresholds) -> tuple[str, list[Check]]:
    """(what the job is, its checks). No running ingest job is itself a failed check: telemetry is not stored."""
    from fleetsense.stack.jobs import INGEST_JOB_NAME, cluster

    try:
        flink = cluster(config)
        job = flink.running(INGEST_JOB_NAME)
        if job is None:
            return INGEST_JOB_NAME, [Check(name="job", ok=False, detail="not running (`fleetsense job submit`)")]
        detail = flink.job_detail(job.job_id)
        checks = [
            subtasks_check(detail),
            checkpoint_check(detail, flink.checkpoints(job.job_id), flink.checkpoint_config(job.job_id), thresholds),
            restarts_check(detail, flink.exception_history(job.job_id), thresholds),
        ]
    except FleetsenseError as exc:
        return INGEST_JOB_NAME, [unknown("job", exc.message)]
    return f"{INGEST_JOB_NAME} {job.job_id}", checks


def telemetry_queue_check(config: StackConfig, thresholds: HealthThresholds) -> Check:
    from fleetsense.gateway.management import ManagementClient, q
    from fleetsense.gateway.topology import FLEET_VHOST, TELEMETRY_QUEUE
    from fleetsense.stack.rabbitmq import RabbitMQ

    rabbit = RabbitMQ(config)
    operator = rabbit.operator
    client = ManagementClient(rabbit.management_url, operator.username, operator.password, timeout_s=READ_TIMEOUT_S)
    window = f"lengths_age={thresholds.queue_window_s}&lengths_incr={thresholds.queue_sample_s}"
    path = f"queues/{q(FLEET_VHOST)}/{q(TELEMETRY_QUEUE)}?{window}&columns=name,messages,messages_details"
    try:
        reply: Any = client.request("GET", path, ok_missing=True)
    except FleetsenseError as exc:
        return unknown(f"queue {TELEMETRY_QUEUE}", exc.message)
    if reply is None:
        return unknown(f"queue {TELEMETRY_QUEUE}", "the queue does not exist (`fleetsense gateway apply`)")
    return queue_growth_check(reply, thresholds)


def pipeline_checks(config: StackConfig, thresholds: HealthThresholds | None = None) -> tuple[str, list[Check]]:
    """Every check of the telemetry path (the queue, then the job that drains it), titled by the job."""
    thresholds = thresholds or HealthThresholds()
    title, checks = ingest_job_checks(config, thresholds)
    return title, [telemetry_queue_check(config, thresholds), *checks]
