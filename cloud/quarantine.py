"""The time quarantine's readers: what is held (per vehicle and day of arrival), and re-admission.

The job keeps every telemetry message it rejects for its sample times whole in `quarantined_messages`
(cloud/result_rows.quarantine_writes). `readmit` publishes such messages again, to the exchange and routing key
the MQTT plugin uses, re-timed by a shift (and flagged CLOCK_STEPPED) or as they were, and deletes each from the
quarantine only once the broker has confirmed it. The job then treats it like any batch: stored and analysed if
its times are plausible now, quarantined again with the reason if not (under the new bytes' id, or, as-is, under
the same id but written after the delete's timestamp, so the delete never removes it). Nothing re-admits on its
own, so there is no loop: every readmission is one operator command. A second readmission of a batch (a command
cut off between a confirm and its delete) is a duplicate by (epoch, seq) and dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetsense.cloud.cassandra_session import statement
from fleetsense.cloud.table_model import Read
from fleetsense.cloud.tables import QUARANTINE_DAYS, TIME_QUARANTINE
from fleetsense.cloud.validate import clock_rule

from fleetsense import wire
from fleetsense.errors import ConfigError, FleetsenseError

# The readers' statements, checked against the declarations (cloud/tables.py) when this module is imported.
_HELD = TIME_QUARANTINE.read(*TIME_QUARANTINE.written_columns, "writetime(message)", where=("vehicle_id", "day_bucket"))
_ANY_HELD = TIME_QUARANTINE.select("message_id", where=("vehicle_id", "day_bucket"))
_DAYS = QUARANTINE_DAYS.read("vehicle_id", "writetime(last_at)", where=("day_bucket",))
_DAY_OF = QUARANTINE_DAYS.read("vehicle_id", "writetime(last_at)", where=("day_bucket", "vehicle_id"))
PAGE_ROWS = 500  # a day of a vehicle's quarantine may hold thousands of whole messages: read a page at a time


def _rows(session: Any, keyspace: str, read: Read, params: Sequence[Any]) -> Any:
    cql = read.cql.format(ks=keyspace)
    return session.execute(statement(cql, consistency=read.consistency, fetch_size=PAGE_ROWS), params)


@dataclass(frozen=True, kw_only=True)
class Quarantined:
    """One quarantined message. `written_us`: the row's write timestamp, which its delete is issued at."""

    vehicle_id: str
    day: str
    message_id: str
    received_at: datetime
    routing_key: str
    reason: str
    epoch: int
    seq: int
    kind: int
    start_time_us: int
    end_time_us: int
    message: bytes
    written_us: int


@dataclass(kw_only=True)
class DaySummary:
    """What one vehicle has in quarantine from one day of arrival."""

    vehicle_id: str
    day: str
    count: int = 0
    first_start_us: int = 2**63 - 1  # the batches' own (implausible) sample times
    last_end_us: int = -(2**63)
    first_received: datetime | None = None
    last_received: datetime | None = None
    reasons: dict[str, int] = field(default_factory=dict)  # clock rule -> messages


def check_day(day: str) -> str:
    try:
        if datetime.strptime(day, "%Y-%m-%d").strftime("%Y-%m-%d") != day:  # "2026-12-6" names no day bucket
            raise ValueError(day)
    except ValueError:
        raise ConfigError(f"--day {day!r} is not a UTC day", hint="give it as YYYY-MM-DD, e.g. 2026-12-06") from None
    return day


def recent_days(today_us: int, ttl_s: int) -> list[str]:
    """Every UTC day a quarantined row can still be from (its TTL), newest first."""
    today = datetime.fromtimestamp(today_us / 1e6, UTC)
    return [(today - timedelta(days=back)).strftime("%Y-%m-%d") for back in range(ttl_s // 86_400 + 1)]


def held_days(
    session: Any, keyspace: str, *, days: Sequence[str], vehicle_id: str | None = None
) -> list[tuple[str, str, int]]:
    """(day, vehicle, index row's write time) for each vehicle and day with quarantined messages, newest day first."""
    found: list[tuple[str, str, int]] = []
    for day in days:
        if vehicle_id is None:
            rows = _rows(session, keyspace, _DAYS, (day,))
        else:
            rows = _rows(session, keyspace, _DAY_OF, (day, vehicle_id))
        found += [(day, row[0], row[1]) for row in rows]
    return found


def quarantined(session: Any, keyspace: str, vehicle_id: str, day: str) -> list[Quarantined]:
    """The vehicle's messages quarantined on `day`, in (epoch, seq) order."""
    rows = _rows(session, keyspace, _HELD, (vehicle_id, day))
    held = [
        Quarantined(
            vehicle_id=row.vehicle_id,
            day=str(row.day_bucket),  # a cassandra.util.Date: its text is YYYY-MM-DD, which binds back to a date
            message_id=row.message_id,
            received_at=row.received_at,
            routing_key=row.routing_key,
            reason=row.reason,
            epoch=row.epoch,
            seq=row.seq,
            kind=row.kind,
            start_time_us=row.start_time_us,
            end_time_us=row.end_time_us,
            message=bytes(row.message),
            written_us=row[-1],  # writetime(message)
        )
        for row in rows
    ]
    return sorted(held, key=lambda q: (q.epoch, q.seq))


def summarise(held: Iterable[Quarantined]) -> list[DaySummary]:
    """Per vehicle and day: how many, the range of their sample times and of their arrival, and the clock rules
    they broke."""
    summaries: dict[tuple[str, str], DaySummary] = {}
    for q in held:
        s = summaries.setdefault((q.vehicle_id, q.day), DaySummary(vehicle_id=q.vehicle_id, day=q.day))
        s.count += 1
        s.first_start_us = min(s.first_start_us, q.start_time_us)
        s.last_end_us = max(s.last_end_us, q.end_time_us)
        s.first_received = min(s.first_received or q.received_at, q.received_at)
        s.last_received = max(s.last_received or q.received_at, q.received_at)
        rule = clock_rule(q.reason)
        s.reasons[rule] = s.reasons.get(rule, 0) + 1
    return sorted(summaries.values(), key=lambda s: (s.vehicle_id, s.day))


def readmission(message: bytes, shift_us: int | None) -> bytes:
    """The bytes to publish: the message as it was (`shift_us` None), or re-timed by `shift_us` and flagged
    CLOCK_STEPPED (the analysis starts a new segment at it; wire v1 has no such flag and is only re-timed)."""
    if shift_us is None:
        return message
    header = wire.decode_header(message)
    stepped = wire.Flags.CLOCK_STEPPED & wire.KNOWN_FLAGS[header.version]
    return wire.retimed(message, shift_us, set_flags=stepped)


@dataclass(kw_only=True)
class ReadmitResult:
    published: int = 0
    failed: list[tuple[Quarantined, str]] = field(default_factory=list)  # left in quarantine, with why


Publish = Callable[[str, bytes], None]  # routing key, body; returns once the broker confirmed, raises if it did not


DELETES_IN_FLIGHT = 64


def readmit(
    session: Any, keyspace: str, held: Sequence[Quarantined], *, shift_us: int | None, publish: Publish
) -> ReadmitResult:
    """Publish each message (re-timed or as-is) and delete it from the quarantine once confirmed; one that cannot
    be re-timed or published stays, with the reason. The deletes run while the next messages are published (a
    confirm and a delete each cost a round trip); all have finished when this returns."""
    result = ReadmitResult()
    # At the row's own write time: a copy quarantined again meanwhile (written later) survives the delete.
    delete = session.prepare(
        f"DELETE FROM {keyspace}.{TIME_QUARANTINE.name} USING TIMESTAMP ? "
        "WHERE vehicle_id = ? AND day_bucket = ? AND message_id = ?"
    )
    deleting: list[Any] = []
    for q in held:
        try:
            body = readmission(q.message, shift_us)
        except FleetsenseError as exc:
            result.failed.append((q, f"cannot be re-timed: {exc.message}"))
            continue
        try:
            publish(q.routing_key, body)
        except Exception as exc:  # the broker refused or the connection broke: it stays in quarantine
            result.failed.append((q, f"not confirmed by the broker: {type(exc).__name__}: {exc}"))
            continue
        deleting.append(session.execute_async(delete, (q.written_us, q.vehicle_id, q.day, q.message_id)))
        result.published += 1
        if len(deleting) >= DELETES_IN_FLIGHT:
            deleting.pop(0).result()
    for future in deleting:
        # A delete that fails raises: its message was published, so readmitting it again is a harmless duplicate.
        future.result()
    return result


def forget_empty_day(session: Any, keyspace: str, vehicle_id: str, day: str, index_written_us: int) -> bool:
    """Drop the day's index row once its partition is empty (at the index row's write time, so a message
    quarantined again meanwhile keeps it); returns whether the day is empty."""
    left = session.execute(f"{_ANY_HELD.format(ks=keyspace)} LIMIT 1", (vehicle_id, day)).one()
    if left is not None:
        return False
    session.execute(
        f"DELETE FROM {keyspace}.{QUARANTINE_DAYS.name} USING TIMESTAMP %s WHERE day_bucket = %s AND vehicle_id = %s",
        (index_written_us, day, vehicle_id),
    )
    return True


class ConfirmedPublisher:
    """Publishes to the MQTT plugin's exchange over AMQP with publisher confirms: `publish` returns once the broker
    has taken responsibility for the message (routed to its queues), and raises if it refused it (a full
    telemetry queue rejects publishes)."""

    def __init__(self, *, host: str, port: int, virtual_host: str, username: str, password: str, exchange: str):
        import pika

        params = pika.ConnectionParameters(
            host=host,
            port=port,
            virtual_host=virtual_host,
            credentials=pika.PlainCredentials(username, password),
            connection_attempts=3,
            retry_delay=1.0,
        )
        try:
            self._connection = pika.BlockingConnection(params)
        except pika.exceptions.AMQPError as exc:
            raise ConfigError(
                f"cannot reach RabbitMQ at {host}:{port} as {username!r}: {type(exc).__name__} {exc}",
                hint="is the stack up (`fleetsense stack status`), with the same --data-dir and ports offset?",
            ) from exc
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        self._exchange = exchange
        self._properties = pika.BasicProperties(delivery_mode=2)  # persistent, like the plugin's QoS 1

    def publish(self, routing_key: str, body: bytes) -> None:
        self._channel.basic_publish(self._exchange, routing_key, body, self._properties, mandatory=True)

    def close(self) -> None:
        if self._connection.is_open:
            self._connection.close()

    def __enter__(self) -> ConfirmedPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
