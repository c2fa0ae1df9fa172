"""What a broker failover does to one vehicle's events (issue 16's rolling restart and broker partition: every
sample stored once, yet events differ from the ground truth).

Each case is one vehicle driving with hard stops that span several batches. The ground truth is the events the job
finds when every batch arrives once, in order, on time. A failover is then played on the same batches with one of
the delivery patterns a broker change produces, through the job's own code on the virtual clock
(tests/unit/stream_sim.py):

- `redelivery`: the connection drops at a random instant; the broker redelivers the last unacked batches and the
  device resends what it sent while reconnecting (a silence shorter than `idle_flush_ms`), all once more later;
- `reorder`: besides that, one batch overtaken by its successor, by less than `gap_wait_ms`;
- `straggler`: one batch reaches the job more than `gap_wait_ms` after its successor (the sequencer skips its
  gap; it is stored late, not analysed): hypothesis (a) of the defect;
- `outage`: the device cannot reach any broker for longer than `idle_flush_ms` (a partitioned node, reconnect
  backoff) and then sends its whole outbox in order: no batch is late, none reordered.

Samples must be exact in every pattern. Events must equal the ground truth (the cluster verdict's own matching,
fleetsense.cluster.verdict.match_events) where the system promises it. Seeded: a failure names the seed that
replays it (FLEETSENSE_SIM_SEED), FLEETSENSE_SIM_CASES sets how many.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable

import pytest

from fleetsense import wire
from fleetsense.cluster.verdict import event_tolerance_s, match_events
from tests.unit.stream_sim import (
    BATCH_MS,
    SETTINGS,
    START_MS,
    TIMER_SLACK_MS,
    Delivery,
    Fleet,
    Run,
    Simulation,
    imu_body,
)

# Each case plays its drive twice (ground truth and failover), about 50 ms: a fifth of the simulation's cases per
# pattern (300 each, 1,200 in all by default) keeps this file near a minute in CI.
CASES = int(os.environ.get("FLEETSENSE_SIM_CASES", "1500")) // 5
SEED_ENV = os.environ.get("FLEETSENSE_SIM_SEED")
SEEDS = [int(SEED_ENV)] if SEED_ENV else list(range(max(1, CASES)))
VEHICLE = "van-0"
NETWORK_MS = 150  # at most this long from the device to the job when nothing fails

Event = tuple[str, float]


def drive(rng: random.Random) -> list[bytes]:
    """One v3 vehicle's batches from seq 0, one a second: cruising with hard stops of 2-5 batches."""
    bodies: list[bytes] = []
    braking_left = 0
    epoch = rng.randint(1, 2**32 - 1)
    for seq in range(rng.randint(30, 80)):
        if braking_left == 0 and seq > 3 and rng.random() < 0.15:
            braking_left = rng.randint(2, 5)
        braking = braking_left > 0
        braking_left = max(0, braking_left - 1)
        start_ms = START_MS + seq * BATCH_MS
        bodies.append(imu_body(rng, VEHICLE, seq, start_ms, wire.Flags(0), 3, epoch, braking=braking))
    return bodies


def on_time(rng: random.Random, bodies: list[bytes]) -> list[Delivery]:
    return [
        Delivery(START_MS + seq * BATCH_MS + rng.randint(0, NETWORK_MS), seq, VEHICLE, seq, body)
        for seq, body in enumerate(bodies)
    ]


def failover(rng: random.Random, bodies: list[bytes], pattern: str) -> list[Delivery]:
    """The batches as a broker change delivers them (see the module's docstring for the patterns)."""
    deliveries = on_time(rng, bodies)
    n = len(bodies)
    drop = rng.randrange(2, n - 1)  # the first seq sent while the device has no broker
    if pattern == "outage":
        silence_ms = rng.randint(SETTINGS.idle_flush_ms + TIMER_SLACK_MS + 500, 60_000)
    else:
        silence_ms = rng.randint(0, SETTINGS.idle_flush_ms - TIMER_SLACK_MS - 500)
    back_ms = START_MS + drop * BATCH_MS + silence_ms  # reconnected: the outbox goes out in order
    order = n
    for seq in range(drop, n):
        sent_ms = START_MS + seq * BATCH_MS
        if sent_ms < back_ms:
            deliveries[seq] = Delivery(back_ms + (seq - drop) * 5, seq, VEHICLE, seq, bodies[seq])
    # Unacked batches redelivered by the broker, and the device's own resends of batches it saw no PUBACK for.
    for seq in range(max(0, drop - rng.randint(1, 10)), min(n, drop + rng.randint(0, 3))):
        for _ in range(rng.randint(1, 2)):
            at_ms = back_ms + rng.randint(0, SETTINGS.gap_wait_ms * 3)
            deliveries.append(Delivery(at_ms, order, VEHICLE, seq, bodies[seq]))
            order += 1
    if pattern in ("reorder", "straggler"):
        seq = rng.randrange(max(1, drop - 3), n - 1)  # overtaken by seq + 1
        after_ms = deliveries[seq + 1].at_ms
        if pattern == "reorder":
            held_ms = after_ms + rng.randint(1, SETTINGS.gap_wait_ms - TIMER_SLACK_MS)
        else:
            held_ms = after_ms + rng.randint(SETTINGS.gap_wait_ms + TIMER_SLACK_MS, 40_000)
        deliveries[seq] = Delivery(max(held_ms, deliveries[seq].at_ms), seq, VEHICLE, seq, bodies[seq])
    deliveries.sort(key=lambda d: (d.at_ms, d.order))
    return deliveries


def events_of(run: Run) -> list[Event]:
    return [(kind, start_ms / 1000) for (_, _, start_ms, kind) in run.db.named("event_by_vehicle")]


def play(bodies: list[bytes], deliveries: list[Delivery]) -> Run:
    sent = {VEHICLE: dict(enumerate(bodies))}
    return Simulation(Fleet(deliveries, sent, max(d.at_ms for d in deliveries))).run()


def case(seed: int, pattern: str) -> tuple[int, int]:
    """(missing, extra) events of one seeded failover against its ground truth; samples checked exact."""
    rng = random.Random(seed)
    bodies = drive(rng)
    truth = events_of(play(bodies, on_time(rng, bodies)))
    run = play(bodies, failover(rng, bodies, pattern))
    stored = {key[3] for key in run.db.named("block")}  # (vehicle, hour, epoch, seq)
    assert stored == set(range(len(bodies))), f"stored seqs {sorted(stored ^ set(range(len(bodies))))} differ"
    return match_events(events_of(run), truth, event_tolerance_s)


def each_seed(pattern: str, check: Callable[[int, tuple[int, int]], None]) -> Counter[tuple[int, int]]:
    """Every seed's (missing, extra), tallied (printed with -s: the signatures a pattern produces)."""
    tally: Counter[tuple[int, int]] = Counter()
    for seed in SEEDS:
        try:
            result = case(seed, pattern)
            tally[result] += 1
            check(seed, result)
        except AssertionError as exc:
            raise AssertionError(f"{pattern} seed {seed} (replay: FLEETSENSE_SIM_SEED={seed}): {exc}") from exc
    print(f"{pattern}: (missing, extra) -> cases: {dict(sorted(tally.items()))}")
    return tally


def exact(seed: int, result: tuple[int, int]) -> None:
    assert result == (0, 0), f"events differ from the ground truth: {result[0]} missing, {result[1]} extra"


def test_redelivered_and_resent_batches_change_no_event() -> None:
    """Hypothesis (b): duplicates are dropped by the sequencer before the analyser sees them, so no redelivery or
    resend (before or after its original) can change an event."""
    each_seed("redelivery", exact)


def test_a_batch_overtaken_within_the_gap_wait_changes_no_event() -> None:
    each_seed("reorder", exact)


@pytest.mark.xfail(
    strict=True,
    reason="issue 16, hypothesis (a): a batch arriving more than gap_wait_ms after its successor is stored late and "
    "never analysed; the analyser saw a hole there, so an event in or across it is missed or found at another time",
)
def test_a_batch_later_than_the_gap_wait_changes_no_event() -> None:
    each_seed("straggler", exact)


def test_an_outage_longer_than_the_idle_flush_changes_no_event() -> None:
    """The broker partition's defect (issue 16): a vehicle silent longer than idle_flush_ms while it had no broker
    was flushed (open events closed, the stop detector reset) although its outbox then delivered the missing
    seconds in order: an event open at the failover became two, or started late. Before the fix 33 of 200 seeds
    differed, with the signatures the cluster saw: (1 missing, 1 extra) and (2 missing, 3 extra)."""
    each_seed("outage", exact)
