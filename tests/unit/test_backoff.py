"""Reconnect pacing (edge/backoff.py): when a connection counts as healthy, and a seeded fleet simulation in
virtual time against a broker that takes logins but refuses publishes, then recovers."""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections import Counter
from dataclasses import dataclass

import pytest
from fleetsense.edge.backoff import Backoff, ConnectionOutcome, ReconnectPacer, healthy

from fleetsense.device_config import BrokerConfig

STABLE_S = 60.0
REFUSED = ConnectionOutcome(connected=True, up_s=0.01, acknowledged=0, in_flight_at_close=1)


def pacer(*, cap_s: float = 60.0, seed: int = 1) -> ReconnectPacer:
    return ReconnectPacer(Backoff(base_s=1.0, cap_s=cap_s, rng=random.Random(seed)), STABLE_S)


def test_the_pacer_takes_its_numbers_from_the_broker_config() -> None:
    broker = BrokerConfig(host="h", username="u", reconnect_base_s=0.5, reconnect_cap_s=8.0, stable_connection_s=20.0)
    made = ReconnectPacer.from_config(broker, random.Random(3))
    assert (made.backoff.base_s, made.backoff.cap_s, made.stable_s) == (0.5, 8.0, 20.0)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (ConnectionOutcome(connected=False), False),  # refused login, unreachable, or no CONNACK in time
        (REFUSED, False),  # RabbitMQ 3.10 kills the connection on a refused publish: it is still in flight
        (ConnectionOutcome(connected=True, up_s=5.0), False),  # closed before anything was acknowledged
        (ConnectionOutcome(connected=True, up_s=2.0, acknowledged=3, in_flight_at_close=1), False),  # a trickle
        (ConnectionOutcome(connected=True, up_s=2.0, acknowledged=3, in_flight_at_close=0), True),
        (ConnectionOutcome(connected=True, up_s=STABLE_S, in_flight_at_close=5), True),  # long-lived, then lost
    ],
)
def test_a_connection_is_healthy_only_once_it_proved_the_broker_usable(
    outcome: ConnectionOutcome, expected: bool
) -> None:
    assert healthy(outcome, stable_s=STABLE_S) is expected


def test_failures_grow_the_delay_to_the_cap_and_a_healthy_connection_resets_it() -> None:
    p = pacer(cap_s=8.0)
    ceilings = []
    for _ in range(6):
        ceilings.append(p.backoff.ceiling_s())
        assert 0 <= p.delay_after_s(REFUSED) <= ceilings[-1]
    assert ceilings == [1, 2, 4, 8, 8, 8]
    p.delay_after_s(ConnectionOutcome(connected=True, up_s=1.0, acknowledged=1))
    assert p.backoff.attempts == 1  # reset, then this delay was drawn from [0, base]
    assert p.backoff.ceiling_s() == 2.0


def test_a_login_alone_no_longer_resets_the_backoff() -> None:
    """The old link reset on every CONNACK: against a refusing broker the delay never grew past the base."""
    p = pacer()
    for _ in range(10):
        p.delay_after_s(REFUSED)
    assert p.backoff.ceiling_s() == 60.0


# -- the fleet in virtual time ---------------------------------------------------------------------------------

CONNECT_S = 0.05  # TCP + MQTT handshake until the CONNACK
REFUSED_UP_S = 0.01  # from the CONNACK to the broker killing the connection over the refused publish
BACKLOG = 500  # batches each vehicle has waiting (8 minutes of them): more than any one connection gets in


@dataclass(frozen=True)
class Scenario:
    fleet: int = 2000
    cap_s: float = 60.0
    recovers_at_s: float = 15 * 60.0  # the broker accepts publishes from here on
    restarts_at_s: float = 20 * 60.0  # ... and then drops every connection once (a broker restart)
    end_s: float = 22 * 60.0
    reset_on_login: bool = False  # the old rule, for comparison
    reset_on_any_ack: bool = False  # the rule without "nothing in flight at the close", for comparison
    drain_per_s: float = 0.0  # while refusing: a consumer frees this many places a second in the full queue


@dataclass
class FleetRun:
    connects_per_minute: Counter[int]
    connected_by_s: float  # when the last vehicle got a lasting connection after the recovery
    reconnected_by_s: float  # when the last vehicle was back after the restart
    accepted_per_minute: Counter[int]  # batches a slowly drained full queue took while refusing the rest


def simulate(s: Scenario, *, seed: int = 13) -> FleetRun:
    """Every vehicle runs the link's pacing: attempt, and when the connection ends, wait
    pacer.delay_after_s(outcome). Events are (time_s, vehicle)."""
    master = random.Random(seed)
    pacers = [
        ReconnectPacer(Backoff(base_s=1.0, cap_s=s.cap_s, rng=random.Random(master.random())), STABLE_S)
        for _ in range(s.fleet)
    ]
    attempts = [(master.uniform(0, 1.0), v) for v in range(s.fleet)]  # they lost the broker within a second
    heapq.heapify(attempts)
    per_minute: Counter[int] = Counter()
    connected_by_s = reconnected_by_s = 0.0
    room, room_at_s = 0.0, 0.0  # free places in the full queue, made by the consumer
    accepted: Counter[int] = Counter()  # batches the queue took, per minute
    while attempts:
        t, v = heapq.heappop(attempts)
        if t >= s.end_s:
            continue
        up_at = t + CONNECT_S
        per_minute[int(up_at // 60)] += 1
        if up_at < s.recovers_at_s:
            room, room_at_s = room + (up_at - room_at_s) * s.drain_per_s, up_at
            taken = min(int(room), BACKLOG)  # what gets in before a publish is refused and the connection killed
            room -= taken
            accepted[int(up_at // 60)] += taken
            outcome = dataclasses.replace(REFUSED, acknowledged=taken)
            closed_at = up_at + REFUSED_UP_S
        elif up_at < s.restarts_at_s:
            connected_by_s = max(connected_by_s, up_at)
            outcome = ConnectionOutcome(connected=True, up_s=s.restarts_at_s - up_at, acknowledged=100)
            closed_at = s.restarts_at_s
        else:
            reconnected_by_s = max(reconnected_by_s, up_at)
            continue  # stays up to the end
        if s.reset_on_login or (s.reset_on_any_ack and outcome.acknowledged):
            pacers[v].backoff.reset()
        heapq.heappush(attempts, (closed_at + pacers[v].delay_after_s(outcome), v))
    return FleetRun(per_minute, connected_by_s, reconnected_by_s, accepted)


def test_a_refusing_broker_sees_the_fleet_converge_to_one_connect_per_half_cap_per_vehicle() -> None:
    s = Scenario()
    run = simulate(s)
    # Each vehicle's cycle: CONNECT_S + REFUSED_UP_S + uniform(0, cap), i.e. cap/2 + 0.06 s on average.
    expected = s.fleet * 60 / (s.cap_s / 2 + CONNECT_S + REFUSED_UP_S)  # 3,993 a minute (66.6/s) for 2,000
    steady = [run.connects_per_minute[m] for m in range(4, 15)]
    assert all(abs(n - expected) < 0.05 * expected for n in steady), (expected, steady)
    # The first minutes are higher (the delays are still growing) but already far below the old storm.
    old = simulate(Scenario(reset_on_login=True, end_s=5 * 60.0))
    old_rate = old.connects_per_minute[2]
    assert old_rate > 150_000  # ~1 per 0.56 s per vehicle: uniform(0, 1 s) + the attempt itself
    assert max(run.connects_per_minute[m] for m in range(15)) < old_rate / 10


def test_once_the_broker_acknowledges_again_every_vehicle_connects_within_the_cap_and_its_delay_resets() -> None:
    s = Scenario()
    run = simulate(s)
    # After the recovery each vehicle's next attempt (at most one cap away) gets a lasting connection ...
    assert s.recovers_at_s < run.connected_by_s <= s.recovers_at_s + s.cap_s + CONNECT_S + REFUSED_UP_S
    quiet = [run.connects_per_minute[m] for m in range(int(run.connected_by_s // 60) + 1, int(s.restarts_at_s // 60))]
    assert quiet and all(n == 0 for n in quiet)
    # ... and those connections proved healthy, so after the broker's restart they are all back within the base
    # delay (1 s), not the cap.
    assert run.reconnected_by_s <= s.restarts_at_s + 1.0 + CONNECT_S
    assert run.connects_per_minute[int(s.restarts_at_s // 60)] == s.fleet


def test_a_full_queue_that_a_consumer_drains_slowly_does_not_bring_the_storm_back() -> None:
    """The places the consumer frees go to whichever vehicle connects next, until a publish is refused and its
    connection killed. Resetting on any acknowledgement would send every such vehicle back within a second;
    requiring nothing in flight at the close keeps the fleet at the cap's rate, and the queue still gets all the
    consumer can take (each connection brings many batches)."""
    trickle = Scenario(drain_per_s=200.0, end_s=10 * 60.0)
    ours = simulate(trickle)
    any_ack = simulate(dataclasses.replace(trickle, reset_on_any_ack=True))
    cap_rate = trickle.fleet * 60 / (trickle.cap_s / 2 + CONNECT_S + REFUSED_UP_S)
    steady = range(4, 10)
    assert all(abs(ours.connects_per_minute[m] - cap_rate) < 0.05 * cap_rate for m in steady)
    assert all(any_ack.connects_per_minute[m] > 3 * cap_rate for m in steady), [
        any_ack.connects_per_minute[m] for m in steady
    ]
    drained_per_minute = trickle.drain_per_s * 60
    assert all(ours.accepted_per_minute[m] > 0.95 * drained_per_minute for m in steady)
