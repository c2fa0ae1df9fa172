"""Feeding a reprocessing job from the retained log (docs/reprocessing.md).

The log is the `batches` table: every accepted telemetry message once, as received, per vehicle and hour. A replay
reads it vehicle by vehicle, day by day, puts each vehicle's batches back in (epoch, seq) order (cloud/history.py) and
publishes them, with their original routing key, to the version's own exchange and quorum queue
(`fleet.replay.r<N>`). The reprocessing job is the live job's code reading that queue: the same validation, sequencing
and analysis, so a version's results differ from the live ones only by its settings and code.

Nothing here is lost when something stops: a vehicle's cursor moves only once the broker has confirmed every batch
fed before it, so a feeder restarted from its last progress re-feeds at most what was unconfirmed, and the job's
sequencer drops what it has already seen. Passes repeat: each one feeds everything stored before it began, so the
start of the last finished pass is how far the version has caught up with live.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any

from fleetsense.cloud import tables
from fleetsense.cloud.history import (
    DAY_MS,
    START,
    LogRow,
    Position,
    ReplayCounts,
    day_of,
    hour_of,
    hours_to_read,
    replay_order,
)

from fleetsense.ids import TELEMETRY_KIND

PROGRESS_VERSION = 1  # the layout of FeedProgress as saved (to_json); bump with a reader for the old one


def routing_key(vehicle_id: str) -> str:
    return f"fleet.{vehicle_id}.{TELEMETRY_KIND}"


@dataclass
class VehicleCursor:
    """The last batch of a vehicle fed and confirmed, and the hour it was stored in."""

    epoch: int = START.epoch
    seq: int = START.seq
    hour_ms: int | None = None

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.seq)


@dataclass
class FeedProgress:
    """A replay's progress, saved after every vehicle-day fed; named, versioned fields (PROGRESS_VERSION)."""

    version: int
    since_ms: int
    started_ms: int
    cursors: dict[str, VehicleCursor] = field(default_factory=dict)
    counts: ReplayCounts = field(default_factory=ReplayCounts)
    vehicle_days_total: int = 0  # (vehicle, day) pairs with batches since `since_ms`, at the last pass's start
    vehicle_days_done: int = 0
    passes: int = 0  # finished
    fed_through_ms: int | None = None  # the start of the last finished pass: everything stored before it is fed
    feeding_ms: float = 0.0  # time spent feeding (reading and publishing), for samples/s
    # Result rows of the days before `since_ms` copied from the parent version (None: not yet): a version is whole.
    copied_rows: int | None = None
    updated_ms: int = 0

    def to_json(self) -> str:
        return json.dumps({"layout": PROGRESS_VERSION, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeedProgress:
        raw = json.loads(text)
        layout = raw.pop("layout", None)
        if layout != PROGRESS_VERSION:
            raise ValueError(f"replay progress layout {layout!r}, this code reads {PROGRESS_VERSION}")
        raw["cursors"] = {vehicle: VehicleCursor(**cursor) for vehicle, cursor in raw["cursors"].items()}
        raw["counts"] = ReplayCounts(**raw["counts"])
        return cls(**raw)

    def samples_per_s(self) -> float:
        return self.counts.samples / (self.feeding_ms / 1000) if self.feeding_ms > 0 else 0.0


class LogReader:
    """The log's reads: which vehicles, which hours, and an hour's batches with their write times."""

    def __init__(self, session: Any, keyspace: str) -> None:
        self._session = session
        self._vehicles = session.prepare(tables.VEHICLES.select("vehicle_id").format(ks=keyspace))
        hours = tables.VEHICLE_HOURS.select("hour_bucket", where=("vehicle_id",), marker="?").format(ks=keyspace)
        self._hours = session.prepare(hours + " AND hour_bucket >= ?")
        columns = ("epoch", "seq", "sample_count", "message", "writetime(message)")
        where = ("vehicle_id", "hour_bucket")
        select = tables.BATCHES.select(*columns, where=where, marker="?").format(ks=keyspace)
        # Only what follows a position: a pass re-reads a vehicle's last hours, and those rows were fed already.
        # (epoch ASC, seq DESC) clustering: the rest of the cursor's epoch, then every later epoch.
        self._rows_after = (
            session.prepare(select + " AND epoch = ? AND seq > ?"),
            session.prepare(select + " AND epoch > ?"),
        )
        for prepared in self._rows_after:
            prepared.fetch_size = 2000

    def vehicles(self) -> list[str]:
        return sorted(row.vehicle_id for row in self._session.execute(self._vehicles))

    def hours(self, vehicle_id: str, from_ms: int) -> list[int]:
        return [_ms(row.hour_bucket) for row in self._session.execute(self._hours, (vehicle_id, _at(from_ms)))]

    def rows(self, vehicle_id: str, hour_ms: int, after: Position = START) -> list[LogRow]:
        """An hour's batches after `after` (its (epoch, seq)), in no particular order."""
        same_epoch, later_epochs = self._rows_after
        hour = _at(hour_ms)
        found = [
            *self._session.execute(same_epoch, (vehicle_id, hour, after.epoch, after.seq)),
            *self._session.execute(later_epochs, (vehicle_id, hour, after.epoch)),
        ]
        return [
            LogRow(
                vehicle_id,
                hour_ms,
                row.epoch,
                row.seq,
                row.message,
                row.writetime_message // 1000,
                row.sample_count or 0,
            )
            for row in found
        ]


Publish = Callable[[list[LogRow]], Awaitable[None]]


@dataclass(frozen=True)
class Plan:
    """One pass's work: for each day, ascending, the vehicles with batches to read in it and those hours."""

    days: list[tuple[int, list[tuple[str, list[int]]]]]

    @property
    def vehicle_days(self) -> int:
        return sum(len(vehicles) for _, vehicles in self.days)


def plan_pass(hours_of: dict[str, list[int]], cursors: dict[str, VehicleCursor], *, since_ms: int) -> Plan:
    """Pure: the hours each vehicle has left to read (from its cursor's hour less the look-ahead), by day."""
    by_day: dict[int, list[tuple[str, list[int]]]] = {}
    for vehicle in sorted(hours_of):
        cursor = cursors.get(vehicle)
        wanted = hours_to_read(hours_of[vehicle], since_ms=since_ms, after_hour_ms=cursor.hour_ms if cursor else None)
        days: dict[int, list[int]] = {}
        for hour in wanted:
            days.setdefault(day_of(hour), []).append(hour)
        for day, hours in days.items():
            by_day.setdefault(day, []).append((vehicle, hours))
    return Plan(sorted(by_day.items()))


class ReplayFeeder:
    """Passes over the log: `run_pass` feeds everything stored before it began, vehicle-day by vehicle-day, and
    saves the progress after each."""

    def __init__(
        self,
        reader: LogReader,
        publish: Publish,
        progress: FeedProgress,
        *,
        save: Callable[[FeedProgress], None],
        queued: Callable[[], Awaitable[int]] | None = None,
        max_queued: int = 50_000,
        stopping: Callable[[], bool] | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.reader, self.publish, self.progress, self.save = reader, publish, progress, save
        self.queued, self.max_queued, self.clock_ms = queued, max_queued, clock_ms
        self.stopping = stopping or (lambda: False)

    async def run_pass(self) -> int:
        """Returns the batches fed. When `stopping` says so, returns after the vehicle-day it is feeding, the pass
        unfinished (its progress saved: the next pass takes over where it stopped)."""
        began_ms = self.clock_ms()
        progress = self.progress
        from_ms = hour_of(progress.since_ms)
        hours_of = {vehicle: self.reader.hours(vehicle, from_ms) for vehicle in self.reader.vehicles()}
        plan = plan_pass(hours_of, progress.cursors, since_ms=progress.since_ms)
        if progress.passes == 0:
            progress.vehicle_days_total = plan.vehicle_days
        fed = 0
        for day, vehicles in plan.days:
            for vehicle, hours in vehicles:
                await self._wait_for_room()
                fed += await self._feed(vehicle, [hour for hour in hours if hour < day + DAY_MS])
                if progress.passes == 0:
                    progress.vehicle_days_done += 1
                progress.updated_ms = self.clock_ms()
                self.save(progress)
                if self.stopping():
                    return fed
        progress.passes += 1
        progress.fed_through_ms = began_ms
        progress.vehicle_days_done = progress.vehicle_days_total
        progress.updated_ms = self.clock_ms()
        self.save(progress)
        return fed

    async def _feed(self, vehicle: str, hours: list[int]) -> int:
        started = time.monotonic()
        cursor = self.progress.cursors.setdefault(vehicle, VehicleCursor())
        counts = ReplayCounts()
        hour_rows = (self.reader.rows(vehicle, hour, cursor.position) for hour in hours)
        rows = list(replay_order(hour_rows, after=cursor.position, counts=counts))
        if rows:
            await self.publish(rows)  # returns once the broker confirmed every one
            newest = max(rows, key=lambda row: row.position)
            cursor.epoch, cursor.seq = newest.epoch, newest.seq
            cursor.hour_ms = max(cursor.hour_ms or newest.hour_ms, newest.hour_ms)
        total = self.progress.counts
        total.rows += counts.rows
        total.samples += counts.samples
        total.late_rows += counts.late_rows
        total.skipped_rows += counts.skipped_rows
        self.progress.feeding_ms += (time.monotonic() - started) * 1000
        return len(rows)

    async def _wait_for_room(self) -> None:
        """Bounded in the broker: the job drains the queue at its own pace, the log waits in Cassandra."""
        if self.queued is None:
            return
        while await self.queued() > self.max_queued:
            await asyncio.sleep(0.5)


class ConfirmingPublisher:
    """Publishes a vehicle-day's batches to the version's exchange with publisher confirms, many in flight at once
    (one round trip per message would cap a replay at a few hundred batches a second on a quorum queue), and
    returns once the broker has confirmed them all; a refused one raises, and the cursor does not move."""

    def __init__(self, url: str, exchange: str, queue: str, *, in_flight: int = 2000) -> None:
        self.url, self.exchange_name, self.queue_name, self.in_flight = url, exchange, queue, in_flight
        self._connection: Any = None

    async def open(self) -> None:
        import aio_pika

        self._connection = await aio_pika.connect(
            self.url, timeout=10, client_properties={"connection_name": f"fleetsense replay: {self.queue_name}"}
        )
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.get_exchange(self.exchange_name, ensure=True)
        self._queue = await self._channel.get_queue(self.queue_name, ensure=True)

    async def publish(self, rows: list[LogRow]) -> None:
        import aio_pika

        for start in range(0, len(rows), self.in_flight):
            await asyncio.gather(
                *(
                    self._exchange.publish(
                        aio_pika.Message(row.message, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=routing_key(row.vehicle_id),
                        mandatory=True,
                    )
                    for row in rows[start : start + self.in_flight]
                )
            )

    async def queued(self) -> int:
        """Messages in the queue, ready or unacknowledged (the job acks after its checkpoint)."""
        declared = await self._channel.declare_queue(self.queue_name, passive=True)
        return int(declared.declaration_result.message_count)

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()


def _ms(value: Any) -> int:
    """A timestamp column as ms since 1970 (the driver returns naive UTC datetimes)."""

    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


def _at(time_ms: int) -> Any:
    from datetime import datetime

    return datetime.fromtimestamp(time_ms / 1000, tz=UTC)
