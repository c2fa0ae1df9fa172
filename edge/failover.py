"""Broker failover: which endpoint to try next, and after how long, from how the last connection went. Pure logic
(no sockets, no clock): the link and the load generator feed it each ConnectionOutcome and get the next Attempt.

The rules (docs/edge-agent.md, "Failover"):
- Each vehicle walks the endpoints round-robin in an order of its own (a permutation seeded by its vehicle id,
  or the order listed): when a node dies, its vehicles spread over the survivors instead of stampeding the next
  one in a shared list, and a restarted agent starts where it always does, so nothing needs persisting.
- A connection that proved healthy (edge/backoff.py `healthy`: up stable_connection_s, or telemetry acknowledged
  with nothing left in flight) earns one more try of the same endpoint: a working broker is kept through a blip.
  Any other outcome moves on to the next endpoint.
- The backoff (full jitter) grows per round over all endpoints, not per attempt: a dead node costs one attempt and
  a short jittered pause before the next node is tried, while a cluster that refuses everything is still retried
  no faster than the single-broker backoff allows.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from fleetsense.edge.backoff import Backoff, ConnectionOutcome, ReconnectPacer, healthy

from fleetsense.device_config import BrokerConfig
from fleetsense.endpoints import Endpoint


def vehicle_order(endpoints: tuple[Endpoint, ...], order: str, vehicle_id: str) -> tuple[Endpoint, ...]:
    """The order a vehicle tries its endpoints in: as listed, or a permutation that depends only on the vehicle id
    (stable across restarts and machines: a digest, not Python's salted hash)."""
    if order == "listed" or len(endpoints) < 2:
        return endpoints
    seed = int.from_bytes(hashlib.sha256(vehicle_id.encode()).digest()[:8], "big")
    shuffled = list(endpoints)
    random.Random(seed).shuffle(shuffled)
    return tuple(shuffled)


@dataclass(frozen=True)
class Attempt:
    endpoint: Endpoint
    delay_s: float  # wait this long, then connect to endpoint


@dataclass
class Failover:
    """Where the next connection attempt goes. `current` is the endpoint of the attempt in progress (or of the
    first one); `after(outcome)` moves on and says where to go next and when."""

    order: tuple[Endpoint, ...]  # this vehicle's, from vehicle_order
    pacer: ReconnectPacer  # the delays; its backoff counts failures across all endpoints
    position: int = 0
    switches: int = 0  # moves to another endpoint, for status and tests

    def __post_init__(self) -> None:
        if not self.order:
            raise ValueError("a failover needs at least one endpoint")
        # The exponent grows once per round: n failures in a row on n endpoints are one step of the backoff.
        self.pacer.backoff.failures_per_step = len(self.order)

    @classmethod
    def from_config(cls, broker: BrokerConfig, vehicle_id: str, rng: random.Random | None = None) -> Failover:
        order = vehicle_order(broker.connect_to, broker.endpoint_order, vehicle_id)
        return cls(order, ReconnectPacer.from_config(broker, rng))

    @classmethod
    def for_endpoints(
        cls,
        endpoints: tuple[Endpoint, ...],
        vehicle_id: str,
        *,
        base_s: float,
        cap_s: float,
        stable_s: float,
        order: str = "shuffled",
        rng: random.Random | None = None,
    ) -> Failover:
        """The same rules for a client without a device config (the load generator's simulated vehicles)."""
        backoff = Backoff(base_s=base_s, cap_s=cap_s, rng=rng or random.Random())
        return cls(vehicle_order(endpoints, order, vehicle_id), ReconnectPacer(backoff, stable_s))

    @property
    def current(self) -> Endpoint:
        return self.order[self.position]

    def after(self, outcome: ConnectionOutcome) -> Attempt:
        """The next attempt, after one that ended with `outcome`."""
        # A healthy connection's endpoint is kept: a working broker gets one more try before the vehicle moves.
        if not healthy(outcome, stable_s=self.pacer.stable_s) and len(self.order) > 1:
            self.position = (self.position + 1) % len(self.order)
            self.switches += 1
        return Attempt(self.current, self.pacer.delay_after_s(outcome))

    @property
    def backoff(self) -> Backoff:
        return self.pacer.backoff
