"""Broker failover (edge/failover.py) in virtual time: thousands of seeded random histories of endpoints going up
and down, with the agent's attempts, connections and backoff delays played against them, and the rules checked
on every step: never stuck on dead endpoints while a live one exists (beyond a bound derived from the settings),
every delay within the backoff's bounds, no endpoint starved, a healthy broker kept, a fleet spread over the
survivors of a dead node."""

from __future__ import annotations

import bisect
import random
from collections import Counter
from dataclasses import dataclass

import pytest
from fleetsense.edge.backoff import Backoff, ConnectionOutcome, ReconnectPacer, healthy
from fleetsense.edge.failover import Failover, vehicle_order

from fleetsense.device_config import BrokerConfig
from fleetsense.endpoints import Endpoint

CASES = 2500
HORIZON_S = 1500.0


@dataclass
class History:
    """When one endpoint is up: it starts up or down and toggles at `toggles` (sorted times)."""

    up_at_start: bool
    toggles: list[float]

    def up(self, t: float) -> bool:
        return self.up_at_start != (bisect.bisect_right(self.toggles, t) % 2 == 1)

    def next_toggle(self, t: float) -> float:
        i = bisect.bisect_right(self.toggles, t)
        return self.toggles[i] if i < len(self.toggles) else float("inf")

    def up_throughout(self, start: float, end: float) -> bool:
        return self.up(start) and self.next_toggle(start) > end


def random_history(rng: random.Random, mean_up_s: float, mean_down_s: float) -> History:
    up = rng.random() < 0.6
    toggles, t, state = [], 0.0, up
    while t < HORIZON_S:
        t += rng.expovariate(1.0 / (mean_up_s if state else mean_down_s))
        toggles.append(t)
        state = not state
    return History(up, toggles)


@dataclass
class Step:
    at_s: float  # when the attempt started
    endpoint: int
    connected: bool
    outcome: ConnectionOutcome
    delay_s: float  # drawn after it
    ceiling_s: float  # the independent model's bound for that delay


def simulate(seed: int) -> tuple[list[Step], list[History], dict[str, float]]:
    rng = random.Random(seed)
    n = rng.randint(1, 5)
    base_s = rng.choice([0.5, 1.0, 2.0])
    cap_s = base_s * rng.choice([1, 4, 16, 64])
    stable_s = rng.choice([5.0, 30.0, 60.0])
    timeout_s = rng.choice([0.5, 2.0, 10.0])
    silent = rng.random() < 0.5  # a dead endpoint drops SYNs (costs the timeout) or refuses at once
    histories = [random_history(rng, rng.uniform(5, 600), rng.uniform(5, 600)) for _ in range(n)]
    endpoints = tuple(Endpoint(f"10.77.0.{11 + i}", 1883) for i in range(n))
    pacer = ReconnectPacer(Backoff(base_s=base_s, cap_s=cap_s, rng=random.Random(seed + 1)), stable_s)
    failover = Failover(endpoints, pacer)
    steps: list[Step] = []
    draws_since_healthy, t = 0, 0.0
    while t < HORIZON_S:
        index = endpoints.index(failover.current)
        history = histories[index]
        if history.up(t):
            # Up until the node dies, or a network blip ends it sooner; killed with publishes in flight or not.
            up_s = min(history.next_toggle(t) - t, rng.expovariate(1 / 300))
            outcome = ConnectionOutcome(
                connected=True, up_s=up_s, acknowledged=int(up_s > 0.2), in_flight_at_close=rng.randint(0, 1)
            )
            spent_s = up_s
        else:
            outcome = ConnectionOutcome(connected=False)
            spent_s = timeout_s if silent else 0.01
        if healthy(outcome, stable_s=stable_s):
            draws_since_healthy = 0
        # The model's own bound: the k-th delay since a healthy connection is at most base * 2^(k // n), the cap.
        ceiling = min(cap_s, base_s * 2.0 ** min(draws_since_healthy // n, 30))
        draws_since_healthy += 1
        attempt = failover.after(outcome)
        steps.append(Step(t, index, outcome.connected, outcome, attempt.delay_s, ceiling))
        t += spent_s + attempt.delay_s
    return steps, histories, {"n": n, "cap_s": cap_s, "timeout_s": timeout_s, "stable_s": stable_s}


@pytest.mark.parametrize("block", range(5))
def test_failover_invariants_over_random_endpoint_histories(block: int) -> None:
    checked = Counter[str]()
    for seed in range(block * CASES // 5, (block + 1) * CASES // 5):
        steps, histories, p = simulate(seed)
        n = int(p["n"])
        # One attempt plus its delay lasts at most timeout + cap; n of them reach every endpoint.
        bound_s = (n + 1) * (p["timeout_s"] + p["cap_s"])
        last_connected_end = 0.0
        run: list[int] = []  # endpoints of the failed attempts since the last connection
        for before, step in zip([None, *steps], steps, strict=False):
            assert 0.0 <= step.delay_s <= step.ceiling_s + 1e-9, (seed, step)
            if before is not None:
                if healthy(before.outcome, stable_s=p["stable_s"]):
                    assert step.endpoint == before.endpoint, f"seed {seed}: left a healthy broker"
                    checked["kept"] += 1
                elif n > 1:
                    assert step.endpoint != before.endpoint, f"seed {seed}: retried a failed endpoint at once"
            if step.connected:
                last_connected_end = step.at_s + step.outcome.up_s
                run = []
                continue
            run.append(step.endpoint)
            # No endpoint starved: any n failed attempts in a row went to n different endpoints.
            window = run[-n:]
            assert len(set(window)) == len(window), f"seed {seed}: {window} repeats before all were tried"
            # Never stuck: no endpoint was up throughout the last bound_s while this one failed again.
            if step.at_s - last_connected_end > bound_s:
                live = [i for i, h in enumerate(histories) if h.up_throughout(step.at_s - bound_s, step.at_s)]
                assert not live, f"seed {seed}: at {step.at_s:.1f} s still failing while {live} were up"
                checked["stuck checks"] += 1
            checked["failed attempts"] += 1
    assert checked["failed attempts"] > 10_000 and checked["kept"] > 1_000 and checked["stuck checks"] > 100


def test_a_fleet_spreads_over_the_nodes_and_over_the_survivors_of_a_dead_one() -> None:
    endpoints = tuple(Endpoint(f"10.77.0.{11 + i}", 1883) for i in range(3))
    vehicles = [f"van-{i:05d}" for i in range(3000)]
    orders = {vid: vehicle_order(endpoints, "shuffled", vid) for vid in vehicles}
    first = Counter(order[0] for order in orders.values())
    assert all(900 <= first[e] <= 1100 for e in endpoints), first
    # Node 1 dies: its vehicles move to their next endpoint, half to each survivor (no stampede on one node).
    moved = Counter(order[1] for order in orders.values() if order[0] == endpoints[0])
    assert (
        set(moved) == set(endpoints[1:]) and abs(moved[endpoints[1]] - moved[endpoints[2]]) < 0.2 * first[endpoints[0]]
    )
    # The order is the vehicle's own: the same on every run (a digest of the id, not a salted hash).
    assert vehicle_order(endpoints, "shuffled", "van-00042") == orders["van-00042"]
    assert all(vehicle_order(endpoints, "listed", vid) == endpoints for vid in vehicles[:50])


def test_a_dead_node_costs_one_short_pause_and_a_dead_cluster_backs_off_to_the_cap() -> None:
    broker = BrokerConfig(
        endpoints=tuple(Endpoint(f"rmq{i}", 1883) for i in (1, 2, 3)),
        username="van-1",
        reconnect_base_s=1.0,
        reconnect_cap_s=16.0,
    )
    failover = Failover.from_config(broker, "van-1", random.Random(5))
    start = failover.current
    # Long-lived connection lost: one more try of the same broker, after at most base.
    again = failover.after(ConnectionOutcome(connected=True, up_s=3600.0))
    assert again.endpoint == start and again.delay_s <= 1.0
    # It is dead: the next two endpoints each after at most base (one round of the backoff).
    tried = [start]
    for _ in range(2):
        step = failover.after(ConnectionOutcome(connected=False))
        assert step.delay_s <= 1.0
        tried.append(step.endpoint)
    assert sorted(tried) == sorted(broker.connect_to)
    # All three dead, round after round: the ceiling doubles once per round up to the cap.
    ceilings = []
    for _ in range(18):
        ceilings.append(failover.backoff.ceiling_s())
        failover.after(ConnectionOutcome(connected=False))
    assert ceilings[::3] == [2.0, 4.0, 8.0, 16.0, 16.0, 16.0]


def test_one_endpoint_fails_over_to_itself_with_the_old_backoff() -> None:
    broker = BrokerConfig(host="127.0.0.1", username="van-1", reconnect_base_s=1.0, reconnect_cap_s=8.0)
    failover = Failover.from_config(broker, "van-1", random.Random(1))
    ceilings = []
    for _ in range(6):
        ceilings.append(failover.backoff.ceiling_s())
        assert failover.after(ConnectionOutcome(connected=False)).endpoint == Endpoint("127.0.0.1", 1883)
    assert ceilings == [1, 2, 4, 8, 8, 8] and failover.switches == 0
