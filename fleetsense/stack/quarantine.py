"""`fleetsense quarantine`: the time quarantine on the local stack (cloud/quarantine.py), as its operator: a
listing per vehicle and day, and re-admission through the broker with the operator's AMQP credentials."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from fleetsense.cloud import quarantine as q
from fleetsense.cloud.schema import KEYSPACE, QUARANTINE_TTL_S
from fleetsense.gateway.topology import FLEET_VHOST, MQTT_EXCHANGE
from fleetsense.stack.cassandra_auth import OPERATOR, session_as
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.rabbitmq import RabbitMQ


def days_to_search(day: str | None) -> list[str]:
    """The one day asked for (checked), else every day a quarantined row can still be from."""
    return [q.check_day(day)] if day else q.recent_days(time.time_ns() // 1000, QUARANTINE_TTL_S)


def summaries(config: StackConfig, *, vehicle_id: str | None, day: str | None) -> list[q.DaySummary]:
    days = days_to_search(day)  # a wrong --day is refused before anything connects
    with session_as(config, OPERATOR) as session:
        found = q.held_days(session, KEYSPACE, days=days, vehicle_id=vehicle_id)
        return q.summarise(m for d, vid, _ in found for m in q.quarantined(session, KEYSPACE, vid, d))


def summary_lines(found: Sequence[q.DaySummary]) -> list[str]:
    lines = []
    for s in found:
        reasons = ", ".join(f"{rule}: {n}" for rule, n in sorted(s.reasons.items()))
        received = f"{s.first_received:%H:%M:%S} .. {s.last_received:%H:%M:%S}" if s.first_received else "-"
        lines.append(
            f"{s.vehicle_id} {s.day}: {s.count} message(s); sample times {_iso(s.first_start_us)} .. "
            f"{_iso(s.last_end_us)}; received {received} UTC; {reasons}"
        )
    return lines


def readmit(config: StackConfig, *, vehicle_id: str, day: str | None, shift_us: int | None) -> q.ReadmitResult:
    """Publish the vehicle's quarantined messages again (re-timed by `shift_us`, or as-is when None) with publisher
    confirms, each deleted from the quarantine once confirmed; a day left empty loses its index row."""
    total = q.ReadmitResult()
    days = days_to_search(day)
    with session_as(config, OPERATOR) as session:
        found = q.held_days(session, KEYSPACE, days=days, vehicle_id=vehicle_id)
        if not found:
            return total
        operator = RabbitMQ(config).operator
        with q.ConfirmedPublisher(
            host=LOOPBACK,
            port=config.ports.amqp,
            virtual_host=FLEET_VHOST,
            username=operator.username,
            password=operator.password,
            exchange=MQTT_EXCHANGE,
        ) as publisher:
            for held_day, vehicle, index_written_us in found:
                held = q.quarantined(session, KEYSPACE, vehicle, held_day)
                result = q.readmit(session, KEYSPACE, held, shift_us=shift_us, publish=publisher.publish)
                total.published += result.published
                total.failed += result.failed
                q.forget_empty_day(session, KEYSPACE, vehicle, held_day, index_written_us)
    return total


def _iso(time_us: int) -> str:
    try:
        return datetime.fromtimestamp(time_us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):  # a clock far off claims years no datetime holds
        return f"{time_us} µs"
