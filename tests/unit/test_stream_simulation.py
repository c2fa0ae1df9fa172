"""The job's stream logic under generated adversity (tests/unit/stream_sim.py): thousands of seeded fleets per run.

Each case prints nothing when it passes; a failure names its seed. Replay one with
    FLEETSENSE_SIM_SEED=<seed> python -m pytest tests/unit/test_stream_simulation.py
and run more with FLEETSENSE_SIM_CASES=<n> (CI runs the default).
"""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict

import pytest

from fleetsense import wire
from tests.unit.stream_sim import (
    SETTINGS,
    SHARDS,
    TIMER_SLACK_MS,
    Delivery,
    Fleet,
    Run,
    Simulation,
    generate_fleet,
)

CASES = int(os.environ.get("FLEETSENSE_SIM_CASES", "1500"))
SEED_ENV = os.environ.get("FLEETSENSE_SIM_SEED")
SEEDS = [int(SEED_ENV)] if SEED_ENV else list(range(CASES))


def check_stored_and_accounted(fleet: Fleet, run: Run, *, exactly_once: bool) -> None:
    delivered = {(d.vehicle, d.seq) for d in fleet.deliveries}
    stored = {(key[0], key[3]) for key in run.db.named("block")}  # (vehicle, hour, epoch, seq)
    assert stored == delivered, f"stored {sorted(stored ^ delivered)[:5]} differently from what was delivered"
    late = {(vehicle, seq) for vehicle, _, seq in run.db.named("late")}
    analysed = [(vehicle, seq) for vehicle, _, seq, _ in run.analysed]
    assert set(analysed) | late == delivered, (
        f"neither analysed nor late: {sorted(delivered - set(analysed) - late)[:5]}"
    )
    if exactly_once:
        assert len(analysed) == len(set(analysed)), "a batch was analysed twice"
        assert not set(analysed) & late, f"analysed and recorded late: {sorted(set(analysed) & late)[:5]}"
        assert run.counts["accepted"] == len(delivered), "the accepted counter is not one per distinct batch"
        assert run.counts["duplicate"] == len(fleet.deliveries) - len(delivered)
    per_vehicle: dict[str, list[int]] = defaultdict(list)
    for vehicle, seq in analysed:
        per_vehicle[vehicle].append(seq)
    if exactly_once:
        for vehicle, seqs in per_vehicle.items():
            assert seqs == sorted(seqs), f"{vehicle} analysed out of order: {seqs}"


def check_gaps_recorded(run: Run) -> None:
    """Every seq between a vehicle's first and last analysed batch that was not analysed is in a recorded gap or
    late: nothing vanishes without a row saying so."""
    gaps: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (vehicle, _, first), values in run.db.named("gap").items():
        gaps[vehicle].append((first, values[3]))
    late = {(vehicle, seq) for vehicle, _, seq in run.db.named("late")}
    analysed: dict[str, set[int]] = defaultdict(set)
    for vehicle, _, seq, _ in run.analysed:
        analysed[vehicle].add(seq)
    for vehicle, seqs in analysed.items():
        for seq in range(min(seqs), max(seqs)):
            if seq in seqs or (vehicle, seq) in late:
                continue
            assert any(a <= seq <= b for a, b in gaps[vehicle]), f"{vehicle} seq {seq} vanished without a gap row"


def check_bounded_wait(run: Run) -> None:
    bound = SETTINGS.gap_wait_ms + TIMER_SLACK_MS
    for vehicle, _, seq, at_ms in run.analysed:  # fleets without replaced devices: (vehicle, seq) is one batch
        waited = at_ms - run.arrived[(vehicle, seq)]
        assert waited <= bound, f"{vehicle} seq {seq} waited {waited} ms (bound {bound})"


def check_progress_and_quiet_end(fleet: Fleet, run: Run) -> None:
    span_s = (run.now_ms - fleet.deliveries[0].at_ms) // 1000 + 2 if fleet.deliveries else 2
    assert run.firings <= SHARDS * span_s, f"{run.firings} timer firings in {span_s} virtual seconds"
    for store in run.state.stores.values():
        assert not store.waiting_bodies, "batches still waiting after every timer fired"
        for vehicle, state in store.states.items():
            assert state.flushed, f"{vehicle} never flushed although it went silent"
    assert not any(run.state.deadlines.values()) and not run.state.timers


@pytest.mark.parametrize("seed", SEEDS[:1])  # one case through pytest's own machinery; the rest below in a loop
def test_one_seeded_fleet_is_stored_ordered_and_accounted(seed: int) -> None:
    fleet = generate_fleet(random.Random(seed))
    run = Simulation(fleet).run()
    check_stored_and_accounted(fleet, run, exactly_once=True)


def _each_seed(check: object, seeds: list[int]) -> None:
    started = time.monotonic()
    for seed in seeds:
        try:
            check(seed)  # type: ignore[operator]
        except Exception as exc:  # an exception in the job's code fails the case too, with its seed
            raise AssertionError(f"seed {seed} fails (replay: FLEETSENSE_SIM_SEED={seed}): {exc}") from exc
    print(f"{len(seeds)} seeds in {time.monotonic() - started:.1f} s")


def test_generated_fleets_are_stored_once_analysed_in_order_and_never_stall() -> None:
    def one(seed: int) -> None:
        fleet = generate_fleet(random.Random(seed))
        run = Simulation(fleet).run()
        check_stored_and_accounted(fleet, run, exactly_once=True)
        check_gaps_recorded(run)
        check_bounded_wait(run)
        check_progress_and_quiet_end(fleet, run)

    _each_seed(one, SEEDS)


def _crash_plan(seed: int, fleet: Fleet) -> tuple[int, int]:
    rng = random.Random(seed * 7919 + 1)
    deliveries: list[Delivery] = fleet.deliveries
    checkpoint = rng.randrange(len(deliveries))
    crash = rng.randrange(checkpoint, len(deliveries))
    return deliveries[checkpoint].at_ms, crash


def test_a_restore_and_replay_at_the_same_times_reproduces_every_row() -> None:
    """Flink restores the last checkpoint and the broker redelivers: with the same inputs at the same times the
    job must write exactly what it would have without the crash (so nothing of its state lives outside the
    checkpoint, and every output is a deterministic function of its input)."""

    def one(seed: int) -> None:
        fleet = generate_fleet(random.Random(seed))
        if not fleet.deliveries:
            return
        checkpoint_ms, crash = _crash_plan(seed, fleet)
        plain = Simulation(fleet).run()
        replayed = Simulation(fleet).run(checkpoint_ms=checkpoint_ms, crash_index=crash, rewind=True)
        assert replayed.db.rows == plain.db.rows, "the replay wrote different rows"

    _each_seed(one, SEEDS[: max(1, len(SEEDS) // 3)])


def test_a_restore_with_redelivery_later_loses_nothing_and_never_stalls() -> None:
    def one(seed: int) -> None:
        fleet = generate_fleet(random.Random(seed))
        if not fleet.deliveries:
            return
        checkpoint_ms, crash = _crash_plan(seed, fleet)
        run = Simulation(fleet).run(checkpoint_ms=checkpoint_ms, crash_index=crash)
        check_stored_and_accounted(fleet, run, exactly_once=False)
        check_gaps_recorded(run)
        check_progress_and_quiet_end(fleet, run)

    _each_seed(one, SEEDS[: max(1, len(SEEDS) // 3)])


def check_nothing_vanishes_across_reflashes_and_reused_seqs(fleet: Fleet, run: Run) -> None:
    """Devices replaced under the same vehicle id (their sequence starts again) and faulty devices re-sending a
    recent seq with other content: every message the network delivered is kept, as a stored batch or whole in a
    conflict row, and every batch of every sequence is analysed, recorded late, or kept as a conflict."""
    blocks = run.db.named("block")
    conflict_rows = run.db.named("conflict")
    kept = {(key[0], values[9]) for key, values in blocks.items()} | {
        (key[0], values[6]) for key, values in conflict_rows.items()
    }
    for d in fleet.deliveries:
        if (d.vehicle, d.body) in kept:
            continue
        # A v1/v2 device cannot name its sequence: when the cloud cannot tell a replaced device's batch from the
        # old sequence's, both are keyed under one epoch and meet in the same (vehicle, hour, epoch, seq) row.
        # Only that may explain a missing message (never for v3, which names its epoch).
        header = wire.decode_header(d.body)
        start_ms = header.start_time_us // 1000
        hour = start_ms - start_ms % 3_600_000
        stored = [values[9] for key, values in blocks.items() if key[:2] == (d.vehicle, hour) and key[3] == d.seq]
        assert stored and not d.reused and not header.epoch, f"{d} vanished: neither stored nor kept as a conflict"
        assert any(o.vehicle == d.vehicle and o.body in stored and o.epoch != d.epoch for o in fleet.deliveries)
    # Each (vehicle, seq) is needed once per sequence that sent it; the cloud numbers sequences by the restarts it
    # can see, so count rather than match epochs.
    # A v1/v2 batch of a replaced device that overtakes the batch announcing the restart is filed under the old
    # sequence (kept, and late), where it may share a late row with the old sequence's batch of the same number:
    # only devices that name their epoch (v3) get the full count.
    replaced = {d.vehicle for d in fleet.deliveries if d.epoch}
    needed: dict[tuple[str, int], set[int]] = defaultdict(set)
    for d in fleet.deliveries:
        if not d.reused and (d.vehicle not in replaced or wire.decode_header(d.body).version == 3):
            needed[(d.vehicle, d.seq)].add(d.epoch)
    had: dict[tuple[str, int], int] = defaultdict(int)
    for vehicle, _epoch, seq in {(v, e, s) for v, e, s, _ in run.analysed}:
        had[(vehicle, seq)] += 1
    for vehicle, _epoch, seq in run.db.named("late"):
        had[(vehicle, seq)] += 1
    for vehicle, seq, _ in conflict_rows:
        had[(vehicle, seq)] += 1
    for key, epochs in needed.items():
        assert had[key] >= len(epochs), f"{key} of sequences {sorted(epochs)} neither analysed, late nor a conflict"


def test_reflashed_devices_and_reused_seqs_lose_nothing_and_never_stall() -> None:
    def one(seed: int) -> None:
        fleet = generate_fleet(random.Random(seed), reflash=0.03, reuse=0.02)
        run = Simulation(fleet).run()
        check_nothing_vanishes_across_reflashes_and_reused_seqs(fleet, run)
        check_progress_and_quiet_end(fleet, run)

    _each_seed(one, SEEDS[: max(1, len(SEEDS) // 3)])
