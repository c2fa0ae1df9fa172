"""A deterministic simulation of the job's stream logic: the job's own per-shard code (cloud/shard_stream.py) run
with Flink's processing-time timer semantics on a virtual clock, fed by generated fleets whose devices and network
misbehave (gaps, duplicates, reorders, late arrivals, idle spells, restarts, declared gaps, v1/v2 batches, first
seqs other than 0), with checkpoints taken and restored at random points as Flink restores them.

Everything random comes from one seed: a failing case is replayed by its seed alone.

Flink's semantics modelled (KeyedProcessFunction, processing time):
- a bundle's shard is its key; timers are per key and deduplicated by timestamp;
- a timer registered for a time at or before now fires at once, and fires again if registered again;
- the job's on_timer reads the current processing time (the fix of issue 12's first bug);
- a checkpoint holds the keyed state (vehicles, waiting batches, deadlines) and the registered timers; a restore
  puts them back and the broker redelivers every message not acknowledged by a completed checkpoint.
"""

from __future__ import annotations

import dataclasses
import heapq
import pickle
import random
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetsense.cloud.shard_stream import DictShardStore, on_bundle, on_shard_timer
from fleetsense.cloud.store import KEY_VALUES, OWN_TIMESTAMP, Write
from fleetsense.cloud.vehicle_stream import StepResult, StreamSettings

from fleetsense import wire

START_MS = 1_790_000_000_000
BATCH_MS = 1_000  # one batch per second per vehicle, as the agent sends
SAMPLES = 10  # samples per batch: small, so thousands of cases run in CI's time
SHARDS = 2
SETTINGS = StreamSettings(gap_wait_ms=3_000, max_waiting=20, idle_flush_ms=5_000)
# Rounding deadlines up to whole seconds and a timer firing at its second: a batch is released at most this long
# after the wait the settings promise.
TIMER_SLACK_MS = 1_000


@dataclass(frozen=True)
class Delivery:
    at_ms: int
    order: int  # ties broken by the order the network produced them: deterministic
    vehicle: str
    seq: int
    body: bytes = field(repr=False)
    epoch: int = 0  # how many times the device had started its sequence again (reflashed) when it sent this
    reused: bool = False  # a seq the device sent before with other content (a faulty device)


@dataclass
class Fleet:
    """What the devices sent and what the network delivered (one seed's world)."""

    deliveries: list[Delivery]
    sent: dict[str, dict[int, bytes]]  # vehicle -> seq -> body of every batch the device created
    end_ms: int


def imu_body(
    rng: random.Random,
    vehicle: str,
    seq: int,
    start_ms: int,
    flags: wire.Flags,
    version: int,
    epoch: int = 0,
    *,
    braking: bool | None = None,
) -> bytes:
    """One IMU batch; `braking` None: now and then a hard stop, so events open and close across gaps."""
    braking = rng.random() < 0.2 if braking is None else braking
    ax = -6000 if braking else rng.randint(-300, 300)
    samples = tuple(
        (ax + rng.randint(-50, 50), rng.randint(-100, 100), 9807 + rng.randint(-40, 40), 0, 0, 0)
        for _ in range(SAMPLES)
    )
    batch = wire.Batch(
        vehicle_id=vehicle,
        seq=seq,
        start_time_us=start_ms * 1000,
        sample_period_us=BATCH_MS * 1000 // SAMPLES,
        kind=wire.Kind.IMU,
        scales=(0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001),
        samples=samples,
        flags=flags if version >= 2 else flags & wire.Flags.CLOCK_UNSYNCED,
        epoch=epoch if version == 3 else 0,
    )
    return wire.encode_v1(batch) if version == 1 else wire.encode(batch)


def generate_fleet(rng: random.Random, *, reflash: float = 0.0, reuse: float = 0.0) -> Fleet:
    """A fleet of 1-4 vehicles; `reflash` and `reuse` are the chances per batch of a device starting its sequence
    again (a new Pi under the same vehicle id) and of a faulty device re-sending a recent seq with other content."""
    deliveries: list[Delivery] = []
    sent: dict[str, dict[int, bytes]] = {}
    order = 0
    end_ms = START_MS
    for index in range(rng.randint(1, 4)):
        vehicle = f"van-{index}"
        version = rng.choice((1, 2, 2, 3, 3))
        seq = rng.choice((0, 0, rng.randint(1, 5000), 2**40 + rng.randint(0, 99)))
        now = START_MS + rng.randint(0, 5_000)
        sent[vehicle] = {}
        flags = wire.Flags(0)
        epoch = 0  # how many times this vehicle's device was replaced
        epoch_id = rng.randint(1, 2**32 - 1)  # what a v3 device states
        recent: list[tuple[int, int]] = []  # (seq, start ms) of the last batches, for a faulty device to reuse
        for _ in range(rng.randint(3, 40)):
            body = imu_body(rng, vehicle, seq, now, flags, version, epoch_id)
            sent[vehicle][seq] = body
            recent = [*recent[-8:], (seq, now)]
            flags = wire.Flags(0)
            fate = rng.random()
            if fate < 0.06:
                pass  # lost on the way and never resent
            else:
                delay = rng.randint(0, 200)
                if fate < 0.16:
                    delay += rng.randint(1_000, 40_000)  # held back: late, or filling its gap in time
                deliveries.append(Delivery(now + delay, order, vehicle, seq, body, epoch))
                order += 1
                while rng.random() < 0.1:  # QoS 1 resends and broker redeliveries
                    deliveries.append(Delivery(now + delay + rng.randint(0, 60_000), order, vehicle, seq, body, epoch))
                    order += 1
            if version >= 2 and rng.random() < reuse and len(recent) > 1:
                old_seq, old_start = rng.choice(recent[:-1])  # the same seq and time, other samples
                other = imu_body(rng, vehicle, old_seq, old_start, wire.Flags(0), version, epoch_id)
                deliveries.append(Delivery(now + rng.randint(0, 200), order, vehicle, old_seq, other, epoch, True))
                order += 1
            now += BATCH_MS
            seq += 1
            event = rng.random()
            if version >= 2 and rng.random() < reflash:
                epoch += 1  # a new Pi: its own outbox, counting from 0 (or a little above) again
                epoch_id = rng.randint(1, 2**32 - 1)
                seq = rng.choice((0, 0, 1, rng.randint(0, 50)))
                flags = wire.Flags.RESTARTED | wire.Flags.GAP_BEFORE
                now += rng.randint(5_000, 7_200_000)
                recent = []
            elif event < 0.05:
                now += rng.randint(6_000, 120_000)  # an idle spell: parked
            elif event < 0.08 and version >= 2:
                seq += rng.randint(1, 30)  # the device dropped batches from a full outbox and says so
                flags = wire.Flags.GAP_BEFORE
            elif event < 0.10 and version >= 2:
                seq += rng.randint(0, 3)  # the agent restarted (a crash may lose a few numbers)
                flags = wire.Flags.RESTARTED
            elif event < 0.12:
                seq += rng.randint(1, 5)  # numbers lost without a word (a crash before the outbox commit)
        end_ms = max(end_ms, now)
    deliveries.sort(key=lambda d: (d.at_ms, d.order))
    return Fleet(deliveries, sent, max([end_ms, *(d.at_ms for d in deliveries)]))


def shard_of(vehicle: str) -> int:
    return zlib.crc32(vehicle.encode()) % SHARDS


class Database:
    """Cassandra as the job sees it: every write an upsert of its row's primary key; a row written with its own
    timestamp keeps the newest."""

    def __init__(self) -> None:
        self.rows: dict[tuple[Any, ...], Sequence[Any]] = {}

    def apply(self, writes: Sequence[Write]) -> None:
        for name, values in writes:
            key = (name, *values[: KEY_VALUES[name]])
            kept = self.rows.get(key)
            if name in OWN_TIMESTAMP and kept is not None and kept[-1] > values[-1]:
                continue
            self.rows[key] = values

    def named(self, name: str) -> dict[tuple[Any, ...], Sequence[Any]]:
        return {key[1:]: values for key, values in self.rows.items() if key[0] == name}


class TimerSpin(AssertionError):
    pass


@dataclass
class JobState:
    """What a Flink checkpoint holds: per shard key, the keyed state and the registered timers."""

    stores: dict[int, DictShardStore] = field(default_factory=lambda: defaultdict(DictShardStore))
    deadlines: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    timers: list[tuple[int, int]] = field(default_factory=list)  # heap of (timestamp, shard)


@dataclass
class Run:
    """What one simulated run observed."""

    db: Database = field(default_factory=Database)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    analysed: list[tuple[str, int, int, int]] = field(default_factory=list)  # (vehicle, epoch, seq, at ms)
    arrived: dict[tuple[str, int], int] = field(default_factory=dict)  # first arrival of each (vehicle, seq)
    firings: int = 0
    now_ms: int = 0  # the virtual processing time
    resumed_ms: int = 0  # when the job last (re)started, as the operator tells the stream code
    state: JobState = field(default_factory=JobState)


class Simulation:
    def __init__(self, fleet: Fleet, *, spin_limit: int = 50) -> None:
        self.fleet = fleet
        self.spin_limit = spin_limit  # firings of one shard's timer at one virtual instant

    def run(self, *, checkpoint_ms: int | None = None, crash_index: int | None = None, rewind: bool = False) -> Run:
        """Feed every delivery at its time. At `checkpoint_ms` the job state is checkpointed; just before the
        delivery at `crash_index` the job crashes, restores that checkpoint, and the broker delivers again every
        message since the checkpoint: from the crash on (`rewind` False, as in life) or at their original times
        (`rewind` True: a deterministic replay, which must reproduce exactly the rows of a run without a crash)."""
        run = Run()
        pending = list(self.fleet.deliveries)
        snapshot: tuple[bytes, int] | None = None
        index = 0
        while index < len(pending):
            delivery = pending[index]
            if checkpoint_ms is not None and snapshot is None and checkpoint_ms <= delivery.at_ms:
                self._fire_timers(run, checkpoint_ms)
                snapshot = (pickle.dumps(run.state), index)
            if index == crash_index and snapshot is not None:
                crash_index = None
                state_bytes, replay_from = snapshot
                crash_ms = run.now_ms
                run.state = pickle.loads(state_bytes)
                if rewind:
                    run.now_ms = checkpoint_ms or 0
                    # A replay as if the job never stopped: nothing to resume from (the state holds everything).
                else:
                    run.resumed_ms = crash_ms + 1
                    pending[replay_from:] = [
                        dataclasses.replace(d, at_ms=max(d.at_ms, crash_ms + 1)) for d in pending[replay_from:]
                    ]
                index = replay_from
                continue
            self._fire_timers(run, delivery.at_ms)
            # Deliveries of one instant travel in one bundle per shard, as the source groups them.
            bundle = [delivery]
            while index + len(bundle) < len(pending) and pending[index + len(bundle)].at_ms == delivery.at_ms:
                bundle.append(pending[index + len(bundle)])
            index += len(bundle)
            run.now_ms = delivery.at_ms
            for d in bundle:
                run.arrived.setdefault((d.vehicle, d.seq), d.at_ms)
            for shard in sorted({shard_of(d.vehicle) for d in bundle}):
                messages = [(f"fleet.{d.vehicle}.telemetry", d.body) for d in bundle if shard_of(d.vehicle) == shard]
                result = on_bundle(
                    run.state.stores[shard],
                    run.state.deadlines[shard],
                    messages,
                    now_ms=run.now_ms,
                    settings=SETTINGS,
                    profiles_of=lambda vehicles: {},
                    resumed_ms=run.resumed_ms,
                )
                self._finish(run, shard, result)
        # Time runs on until every timer has fired.
        self._fire_timers(run, self.fleet.end_ms + 10 * (SETTINGS.gap_wait_ms + SETTINGS.idle_flush_ms))
        return run

    def _finish(self, run: Run, shard: int, result: StepResult) -> None:
        run.db.apply(result.writes)
        for name, n in result.counts.items():
            run.counts[name] += n
        run.analysed += [(vehicle, epoch, seq, run.now_ms) for vehicle, epoch, seq in result.analysed]
        if result.timer_ms is not None and (result.timer_ms, shard) not in run.state.timers:
            heapq.heappush(run.state.timers, (result.timer_ms, shard))

    def _fire_timers(self, run: Run, until_ms: int) -> None:
        """Fire every timer due by `until_ms` in time order; one registered in the past fires now."""
        same_instant: dict[tuple[int, int], int] = defaultdict(int)
        while run.state.timers and run.state.timers[0][0] <= until_ms:
            timestamp, shard = heapq.heappop(run.state.timers)
            run.now_ms = max(run.now_ms, timestamp)
            run.firings += 1
            same_instant[(run.now_ms, shard)] += 1
            if same_instant[(run.now_ms, shard)] > self.spin_limit:
                raise TimerSpin(f"shard {shard}'s timer fired {self.spin_limit} times at {run.now_ms - START_MS} ms")
            deadlines = run.state.deadlines[shard]
            if deadlines:
                result = on_shard_timer(
                    run.state.stores[shard], deadlines, now_ms=run.now_ms, resumed_ms=run.resumed_ms
                )
                self._finish(run, shard, result)
        run.now_ms = max(run.now_ms, until_ms)
