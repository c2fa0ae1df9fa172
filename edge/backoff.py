"""Reconnect pacing: exponential backoff with full jitter that grows until a connection proves healthy, and a
token bucket for replaying a backlog, so a fleet facing a broker that is down, or up but refusing what it is
sent, spreads out instead of storming it. Pure logic: the link feeds it what it observed on each connection."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from fleetsense.device_config import BrokerConfig


@dataclass
class Backoff:
    """Delay after the n-th failure in a row: uniform(0, min(cap, base * 2**n)) ("full jitter"). Against a
    broker that fails every attempt, an agent's attempts settle one per cap/2 seconds on average (plus however
    long each attempt itself takes), so a fleet of N opens about N / (cap/2) connections a second."""

    base_s: float = 1.0
    cap_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0  # failures since the last healthy connection
    # Failures that make one doubling: 1 for one broker; n for n endpoints (edge/failover.py), so the ceiling
    # doubles once per round over all of them and a dead node costs the fleet one short pause, not a long one.
    failures_per_step: int = 1

    @classmethod
    def from_config(cls, broker: BrokerConfig, rng: random.Random | None = None) -> Backoff:
        return cls(base_s=broker.reconnect_base_s, cap_s=broker.reconnect_cap_s, rng=rng or random.Random())

    def ceiling_s(self) -> float:
        return min(self.cap_s, self.base_s * float(2 ** min(self.attempts // self.failures_per_step, 30)))

    def next_delay_s(self) -> float:
        ceiling = self.ceiling_s()
        self.attempts += 1
        return self.rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempts = 0


@dataclass(frozen=True)
class ConnectionOutcome:
    """What the link saw of one connection attempt, from the attempt to the close."""

    connected: bool  # a CONNACK accepted the login
    up_s: float = 0.0  # from the CONNACK to the close
    acknowledged: int = 0  # telemetry PUBACKs received on it (statuses do not count: see healthy())
    in_flight_at_close: int = 0  # publishes (telemetry or status) still unacknowledged when it closed


def healthy(outcome: ConnectionOutcome, *, stable_s: float) -> bool:
    """Did this connection prove the broker usable, so the next reconnect may come quickly?

    - Up for stable_s: yes, whatever happened on it (a long-lived link lost to a network fault).
    - Otherwise only if the broker acknowledged telemetry AND nothing was left unacknowledged at the close.
      RabbitMQ 3.10's MQTT plugin answers a refused publish (a full queue with reject-publish) by killing the
      connection, without a PUBACK (tests/integration/test_refusing_broker.py): the refused publish is in flight
      when it closes. Counting any ack as success would let a full queue that a consumer drains slowly reset
      the backoff of every vehicle that got one batch in before the next was refused.
    - Statuses never prove anything: their queue drops its oldest instead of refusing, so the broker
      acknowledges them while refusing all telemetry (the storm of issue 13).
    """
    if not outcome.connected:
        return False
    if outcome.up_s >= stable_s:
        return True
    return outcome.acknowledged > 0 and outcome.in_flight_at_close == 0


@dataclass
class ReconnectPacer:
    """The delay before the next connection attempt, from how the last one went."""

    backoff: Backoff
    stable_s: float

    @classmethod
    def from_config(cls, broker: BrokerConfig, rng: random.Random | None = None) -> ReconnectPacer:
        return cls(Backoff.from_config(broker, rng), broker.stable_connection_s)

    def delay_after_s(self, outcome: ConnectionOutcome) -> float:
        if healthy(outcome, stable_s=self.stable_s):
            self.backoff.reset()
        return self.backoff.next_delay_s()


@dataclass
class TokenBucket:
    rate_per_s: float
    burst: float
    _tokens: float = 0.0
    _last_s: float | None = None

    def ready(self, now_s: float) -> bool:
        """Is a token available now (without taking it)?"""
        if self._last_s is None:
            self._tokens = self.burst
        else:
            self._tokens = min(self.burst, self._tokens + (now_s - self._last_s) * self.rate_per_s)
        self._last_s = now_s
        return self._tokens >= 1.0

    def take(self, now_s: float) -> bool:
        if self.ready(now_s):
            self._tokens -= 1.0
            return True
        return False

    def wait_s(self) -> float:
        """How long until the next token (0 if one is available)."""
        return max(0.0, (1.0 - self._tokens) / self.rate_per_s)
