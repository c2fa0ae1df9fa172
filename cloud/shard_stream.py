"""What the job does with one bundle: the messages of many vehicles of one shard, handed over in one Flink
record so that Flink's per-record cost is paid once per bundle (cloud/connector AmqpBundle).

Each message still goes through `vehicle_stream.on_message` with its own vehicle's state, so every decision
(validation, deduplication, order, analytics) is the per-vehicle one; this module only fans a bundle out to its
vehicles, loads and saves each touched vehicle's state once per bundle, gathers every write of the bundle so the
writer can overlap them, and keeps the shard's one timer: the earliest of its vehicles' deadlines.

The Flink operator (cloud/jobs/telemetry_ingest.py) keys the stream by shard and backs `ShardStore` with map
states; the tests use dicts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Protocol

from fleetsense.cloud.vehicle_stream import StepResult, StreamSettings, VehicleState, on_message, on_timer

from fleetsense.errors import ConfigError
from fleetsense.ids import vehicle_from_routing_key

# Vehicles seen for the first time -> the class of those that have a profile (the job reads vehicle_profiles).
ClassLookup = Callable[[Sequence[str]], Mapping[str, str]]


class ShardStore(Protocol):
    """One shard's per-vehicle state."""

    def load(self, vehicle_id: str) -> VehicleState | None: ...

    def save(self, vehicle_id: str, state: VehicleState) -> None: ...

    def waiting(self, vehicle_id: str) -> MutableMapping[int, bytes]: ...


def vehicle_of(routing_key: str) -> str:
    """The vehicle named by an authenticated routing key `fleet.<vehicle>.<stream>` ("" if it names none:
    on_message then rejects the message with the reason)."""
    try:
        return vehicle_from_routing_key(routing_key)
    except (ValueError, ConfigError):
        return ""


def on_bundle(
    store: ShardStore,
    deadlines_ms: dict[str, int],
    messages: Sequence[tuple[str, bytes]],
    *,
    now_ms: int,
    settings: StreamSettings,
    classes_of: ClassLookup,
) -> StepResult:
    """Process `messages` (routing key, body) in order; `deadlines_ms` (vehicle -> when its on_timer is due) is
    updated in place, and the result's timer_ms is the shard's earliest deadline. A vehicle seen for the first
    time starts with `settings`, in its profile's class if it has one."""
    result = StepResult()
    states: dict[str, VehicleState | None] = {}
    for routing_key, _ in messages:
        vehicle = vehicle_of(routing_key)
        if vehicle not in states:
            states[vehicle] = store.load(vehicle)
    classes = classes_of([vehicle for vehicle, state in states.items() if state is None and vehicle])
    changed: set[str] = set()
    for routing_key, body in messages:
        vehicle = vehicle_of(routing_key)
        state = states[vehicle]
        own = settings if vehicle not in classes else dataclasses.replace(settings, vehicle_class=classes[vehicle])
        state, step = on_message(state, store.waiting(vehicle), routing_key, body, now_ms=now_ms, settings=own)
        _merge(result, step)
        if state is not None and "accepted" in step.counts:
            states[vehicle] = state
            changed.add(vehicle)
    for vehicle in changed:
        state = states[vehicle]
        assert state is not None
        store.save(vehicle, state)
        _set_deadline(deadlines_ms, vehicle, state.next_timer_ms())
    result.timer_ms = min(deadlines_ms.values(), default=None)
    return result


def on_shard_timer(store: ShardStore, deadlines_ms: dict[str, int], *, now_ms: int) -> StepResult:
    """Run on_timer for every vehicle of the shard whose deadline has come."""
    result = StepResult()
    for vehicle in [vehicle for vehicle, due in deadlines_ms.items() if due <= now_ms]:
        state = store.load(vehicle)
        if state is None:
            del deadlines_ms[vehicle]
            continue
        step = on_timer(state, store.waiting(vehicle), vehicle, now_ms=now_ms)
        _merge(result, step)
        store.save(vehicle, state)
        _set_deadline(deadlines_ms, vehicle, step.timer_ms)
    result.timer_ms = min(deadlines_ms.values(), default=None)
    return result


def _merge(into: StepResult, step: StepResult) -> None:
    into.writes += step.writes
    for name, n in step.counts.items():
        into.count(name, n)


def _set_deadline(deadlines_ms: dict[str, int], vehicle: str, due_ms: int | None) -> None:
    if due_ms is None:
        deadlines_ms.pop(vehicle, None)
    else:
        deadlines_ms[vehicle] = due_ms


class PrefixedWaiting(MutableMapping[int, bytes]):
    """One vehicle's waiting batches inside a shard-wide mapping keyed "<vehicle>/<seq>" (vehicle ids hold no
    "/", fleetsense.ids). Iteration scans the whole shard: only tests and diagnostics iterate."""

    def __init__(self, shard_waiting: MutableMapping[str, bytes], vehicle_id: str) -> None:
        self._all = shard_waiting
        self._prefix = vehicle_id + "/"

    def __getitem__(self, seq: int) -> bytes:
        return self._all[self._prefix + str(seq)]

    def __setitem__(self, seq: int, body: bytes) -> None:
        self._all[self._prefix + str(seq)] = body

    def __delitem__(self, seq: int) -> None:
        del self._all[self._prefix + str(seq)]

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(int(key[len(self._prefix) :]) for key in list(self._all) if key.startswith(self._prefix)))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class DictShardStore:
    """A ShardStore on plain dicts: the tests' store, and the shape the Flink operator's store follows."""

    def __init__(self) -> None:
        self.states: dict[str, VehicleState] = {}
        self.waiting_bodies: dict[str, bytes] = {}

    def load(self, vehicle_id: str) -> VehicleState | None:
        return self.states.get(vehicle_id)

    def save(self, vehicle_id: str, state: VehicleState) -> None:
        self.states[vehicle_id] = state

    def waiting(self, vehicle_id: str) -> MutableMapping[int, bytes]:
        return PrefixedWaiting(self.waiting_bodies, vehicle_id)
