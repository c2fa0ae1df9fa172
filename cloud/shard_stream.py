"""What the job does with one bundle: the messages of many vehicles of one shard, handed over in one Flink
record so that Flink's per-record cost is paid once per bundle (cloud/connector AmqpBundle).

Each message still goes through `vehicle_stream.on_message` with its own vehicle's state, so every decision
(validation, deduplication, order, analytics) is the per-vehicle one; this module only fans a bundle out to its
vehicles, loads and saves each touched vehicle's state once per bundle, gathers every write of the bundle so the
writer can overlap them, keeps the shard's one timer (the earliest of its vehicles' deadlines), and applies a
vehicle's changed profile (its class) before its next message.

The Flink operator (cloud/jobs/telemetry_ingest.py) keys the stream by shard and backs `ShardStore` with map
states; the tests use dicts.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from types import MappingProxyType
from typing import Protocol

from fleetsense.cloud import result_rows as rows
from fleetsense.cloud.profiles import Profile
from fleetsense.cloud.vehicle_stream import StepResult, StreamSettings, VehicleState, on_message, on_timer

from fleetsense.errors import ConfigError
from fleetsense.ids import vehicle_from_routing_key

log = logging.getLogger(__name__)

# Vehicles seen for the first time -> the profiles of those that have one (the job reads vehicle_profiles).
ProfileLookup = Callable[[Sequence[str]], Mapping[str, Profile]]
_NO_PROFILES: Mapping[str, Profile] = MappingProxyType({})


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
    profiles_of: ProfileLookup,
    known_profiles: Mapping[str, Profile] = _NO_PROFILES,
    resumed_ms: int = 0,
) -> StepResult:
    """Process `messages` (routing key, body) in order; `deadlines_ms` (vehicle -> when its on_timer is due) is
    updated in place, and the result's timer_ms is the shard's earliest deadline. A vehicle seen for the first
    time starts with `settings`, in its profile's class if it has one (`profiles_of`); a known vehicle whose
    profile in `known_profiles` (the job's latest reading of them all) was set after the one it has switches.
    `resumed_ms`: when this operator instance started (after a restore): see VehicleState.resume."""
    result = StepResult()
    states: dict[str, VehicleState | None] = {}
    for routing_key, _ in messages:
        vehicle = vehicle_of(routing_key)
        if vehicle not in states:
            states[vehicle] = _load(store, vehicle, resumed_ms)
    first_seen = profiles_of([vehicle for vehicle, state in states.items() if state is None and vehicle])
    changed: set[str] = set()
    for vehicle, state in states.items():
        if state is not None and _apply(known_profiles.get(vehicle), state):
            changed.add(vehicle)  # saved below even if none of its messages is accepted
    for routing_key, body in messages:
        vehicle = vehicle_of(routing_key)
        state = states[vehicle]
        profile = first_seen.get(vehicle) if state is None else None
        own = settings if profile is None else dataclasses.replace(settings, vehicle_class=profile.vehicle_class)
        try:
            new_state, step = on_message(state, store.waiting(vehicle), routing_key, body, now_ms=now_ms, settings=own)
        except Exception as exc:  # a fault of ours costs this one message (kept whole), never the job
            new_state, step = None, failed_step(routing_key, body, exc, now_ms=now_ms)
        _merge(result, step)
        if new_state is not None and "accepted" in step.counts:
            if profile is not None:
                new_state.profile_ms = profile.updated_ms
            states[vehicle] = new_state
            changed.add(vehicle)
    for vehicle in changed:
        state = states[vehicle]
        assert state is not None
        store.save(vehicle, state)
        _set_deadline(deadlines_ms, vehicle, state.next_timer_ms(now_ms))
    result.timer_ms = min(deadlines_ms.values(), default=None)
    return result


def failed_step(routing_key: str, body: bytes, exc: Exception, *, now_ms: int) -> StepResult:
    """A message whose processing raised: counted as rejected and as an error, and kept whole in its rejection
    row so it can be processed again once the fault is fixed. The vehicle's state is not saved for it."""
    log.exception("processing a message on %r failed; it is recorded as rejected", routing_key)
    step = StepResult()
    step.count("rejected")
    step.count("errors")
    reason = f"processing failed inside the job: {type(exc).__name__}: {exc}"
    step.writes.append(rows.rejected_write(routing_key, body, reason, now_ms=now_ms, whole=True))
    return step


def _apply(profile: Profile | None, state: VehicleState) -> bool:
    """Switch the vehicle to `profile`'s class if that profile was set after the one it has (a reading of all
    profiles can be older than the lookup made when the vehicle was first seen)."""
    if profile is None or profile.updated_ms <= state.profile_ms:
        return False
    state.analyzer.set_vehicle_class(profile.vehicle_class)
    state.profile_ms = profile.updated_ms
    return True


def _load(store: ShardStore, vehicle: str, resumed_ms: int) -> VehicleState | None:
    state = store.load(vehicle)
    if state is not None:
        state.resume(resumed_ms)
    return state


def on_shard_timer(store: ShardStore, deadlines_ms: dict[str, int], *, now_ms: int, resumed_ms: int = 0) -> StepResult:
    """Run on_timer for every vehicle of the shard whose deadline has come."""
    result = StepResult()
    for vehicle in [vehicle for vehicle, due in deadlines_ms.items() if due <= now_ms]:
        state = _load(store, vehicle, resumed_ms)
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
    into.analysed += step.analysed
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
