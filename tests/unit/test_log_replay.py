"""The replay feeder (cloud/log_replay.py) over an in-memory log and broker. Seeded simulations (thousands per run;
FLEETSENSE_SIM_SEED=N replays one): vehicles keep driving while passes run, offline vehicles upload old hours late,
the broker refuses a publish half-way through a vehicle-day, and the feeder restarts from its saved progress. Whatever
happens, every batch stored reaches the queue, and a vehicle's batches reach it in (epoch, seq) order the first time."""

from __future__ import annotations

import asyncio
import os
import random

from fleetsense.cloud.history import HOUR_MS, START, LogRow, Position, hour_of
from fleetsense.cloud.log_replay import FeedProgress, ReplayFeeder, VehicleCursor, plan_pass

CASES = int(os.environ.get("FLEETSENSE_SIM_CASES", "1500"))
SEED_ENV = os.environ.get("FLEETSENSE_SIM_SEED")
SEEDS = [int(SEED_ENV)] if SEED_ENV else list(range(CASES))
T0 = 1_780_000_000_000 - 1_780_000_000_000 % (24 * HOUR_MS)


class MemoryLog:
    """The log as the reader sees it: vehicles, their hours, an hour's rows (in Cassandra's order)."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, int], list[LogRow]] = {}

    def add(self, row: LogRow) -> None:
        self.data.setdefault((row.vehicle_id, row.hour_ms), []).append(row)

    def vehicles(self) -> list[str]:
        return sorted({vehicle for vehicle, _ in self.data})

    def hours(self, vehicle_id: str, from_ms: int) -> list[int]:
        return sorted((h for v, h in self.data if v == vehicle_id and h >= from_ms), reverse=True)

    def rows(self, vehicle_id: str, hour_ms: int, after: Position = START) -> list[LogRow]:
        """As LogReader's two queries: the rest of `after`'s epoch, then the later epochs."""
        rows = sorted(self.data.get((vehicle_id, hour_ms), []), key=lambda r: (r.epoch, -r.seq))
        return [r for r in rows if r.epoch == after.epoch and r.seq > after.seq] + [
            r for r in rows if r.epoch > after.epoch
        ]

    def all(self) -> list[LogRow]:
        return [row for rows in self.data.values() for row in rows]


class Broker:
    """Confirms what it takes; refuses a publish when told to (the rows before it in the call were taken)."""

    def __init__(self, rng: random.Random, refuse_rate: float) -> None:
        self.rng, self.refuse_rate = rng, refuse_rate
        self.queue: list[LogRow] = []

    async def publish(self, rows: list[LogRow]) -> None:
        for row in rows:
            if self.rng.random() < self.refuse_rate:
                raise ConnectionError("broker refused")
            self.queue.append(row)


class Vehicle:
    def __init__(self, name: str, rng: random.Random) -> None:
        self.name, self.rng = name, rng
        self.clock = T0 + rng.randrange(24 * HOUR_MS)
        self.epoch, self.seq = 0, 0
        self.outbox: list[LogRow] = []  # sent while offline: stored late, in old hours

    def drive(self, log: MemoryLog, batches: int, *, offline: bool | None = None) -> None:
        offline = self.rng.random() < 0.2 if offline is None else offline
        for _ in range(batches):
            if self.rng.random() < 0.03:
                self.epoch, self.seq = self.epoch + 1, 0
            row = LogRow(self.name, hour_of(self.clock), self.epoch, self.seq, b"x", self.clock, 100)
            (self.outbox.append if offline else log.add)(row)
            self.seq += 1
            self.clock += self.rng.choice((1_000, 1_000, 1_000, 40 * 60_000, 7 * HOUR_MS))
        if not offline:
            for row in self.outbox:
                log.add(row)
            self.outbox.clear()


def simulate(seed: int) -> tuple[MemoryLog, Broker, FeedProgress]:
    rng = random.Random(seed)
    log = MemoryLog()
    vehicles = [Vehicle(f"van-{i}", rng) for i in range(rng.randrange(1, 5))]
    broker = Broker(rng, refuse_rate=rng.choice((0.0, 0.002, 0.02)))
    saved = [FeedProgress(version=2, since_ms=T0, started_ms=T0).to_json()]
    for _ in range(rng.randrange(2, 8)):
        for vehicle in vehicles:
            vehicle.drive(log, rng.randrange(0, 40))
        # A feeder started from the last saved progress (as a restart would), running a pass.
        progress = FeedProgress.from_json(saved[-1])
        feeder = ReplayFeeder(log, broker.publish, progress, save=lambda p: saved.append(p.to_json()))  # type: ignore[arg-type]
        try:
            asyncio.run(feeder.run_pass())
        except ConnectionError:
            pass
    for vehicle in vehicles:  # everyone back online: the outboxes are stored
        vehicle.drive(log, 0, offline=False)
    broker.refuse_rate = 0.0
    progress = FeedProgress.from_json(saved[-1])
    feeder = ReplayFeeder(log, broker.publish, progress, save=lambda p: saved.append(p.to_json()))  # type: ignore[arg-type]
    asyncio.run(feeder.run_pass())
    return log, broker, FeedProgress.from_json(saved[-1])


def test_every_stored_batch_reaches_the_queue_in_order_whatever_fails() -> None:
    for seed in SEEDS:
        log, broker, progress = simulate(seed)
        assert set(log.all()) <= set(broker.queue), seed
        assert progress.passes >= 1 and progress.fed_through_ms is not None, seed
        seen: set[LogRow] = set()
        high: dict[str, tuple[int, int]] = {}
        out_of_order = 0
        for row in broker.queue:
            if row in seen:
                continue  # a redelivery after a refused publish: the job's sequencer drops it
            seen.add(row)
            key = (row.epoch, row.seq)
            if key < high.get(row.vehicle_id, (-1, -1)):
                out_of_order += 1
            high[row.vehicle_id] = max(high.get(row.vehicle_id, (-1, -1)), key)
        # Uploads of old hours after a vehicle was offline continue its seqs: they follow what was fed, in order.
        assert out_of_order == progress.counts.late_rows == 0, seed


def test_a_pass_with_nothing_new_feeds_nothing_and_moves_fed_through() -> None:
    log = MemoryLog()
    vehicle = Vehicle("van-1", random.Random(1))
    vehicle.drive(log, 30, offline=False)
    broker = Broker(random.Random(2), 0.0)
    progress = FeedProgress(version=2, since_ms=T0, started_ms=T0)
    clock = iter(range(10**9, 10**10, 1000))
    feeder = ReplayFeeder(log, broker.publish, progress, save=lambda p: None, clock_ms=lambda: next(clock))  # type: ignore[arg-type]
    first = asyncio.run(feeder.run_pass())
    queued = len(broker.queue)
    assert first == queued == len(log.all())
    before = progress.fed_through_ms
    assert asyncio.run(feeder.run_pass()) == 0
    assert len(broker.queue) == queued and progress.fed_through_ms is not None and progress.fed_through_ms > before
    assert progress.vehicle_days_done == progress.vehicle_days_total >= 1


def test_the_plan_reads_each_vehicle_from_an_hour_before_its_cursor() -> None:
    hours = {"a": [T0 + i * HOUR_MS for i in range(30)], "b": [T0 + 25 * HOUR_MS]}
    cursors = {"a": VehicleCursor(0, 10, T0 + 26 * HOUR_MS)}
    plan = plan_pass(hours, cursors, since_ms=T0)
    assert [(day, [v for v, _ in vs]) for day, vs in plan.days] == [(T0 + 24 * HOUR_MS, ["a", "b"])]
    assert plan.days[0][1][0][1] == [T0 + i * HOUR_MS for i in range(25, 30)]


def test_progress_round_trips_and_refuses_another_layout() -> None:
    progress = FeedProgress(version=3, since_ms=T0, started_ms=T0 + 5, cursors={"a": VehicleCursor(1, 2, T0)})
    assert FeedProgress.from_json(progress.to_json()) == progress
    text = progress.to_json().replace('"layout": 1', '"layout": 99')
    try:
        FeedProgress.from_json(text)
    except ValueError as exc:
        assert "layout 99" in str(exc)
    else:
        raise AssertionError("another layout was read")
