"""The load generator's simulated vehicles: each re-stamps its share of a pooled drive under its own id and
sequence (wire.Restamper), keeps what it could not send yet, and tracks its QoS 1 publishes in flight."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from fleetsense import wire
from fleetsense.edge.failover import Failover
from fleetsense.ids import telemetry_topic
from fleetsense.load.mqtt_link import Login, MqttLink
from fleetsense.load.mqtt_packets import utf8_field
from fleetsense.sim.pool import render_pool


@dataclass
class Pending:
    seq: int
    payload: bytes
    samples: int
    sent_at: float = 0.0  # monotonic time of the last send


class SimVehicle:
    def __init__(self, vehicle_id: str, password: str, pool: Sequence[wire.StampTemplate], first_block: int) -> None:
        self.stamper = wire.Restamper(vehicle_id)
        self.vehicle_id = vehicle_id
        self.login = Login(vehicle_id, vehicle_id, password)  # the client id is the user name (gateway/identity.py)
        self.topic_field = utf8_field(telemetry_topic(vehicle_id))
        self.pool, self.first_block = pool, first_block
        self.next_seq = 0
        self.outbox: deque[Pending] = deque()  # made, not yet sent (disconnected or too many in flight)
        self.inflight: dict[int, Pending] = {}  # packet id -> batch, sent and waiting for its PUBACK
        self.link: MqttLink | None = None
        self.connected = False
        self.failover: Failover | None = None  # which endpoint next, and when (set by the run: runner.py)
        self.connected_at = 0.0  # monotonic time of the last CONNACK
        self.acked_here = 0  # PUBACKs on the current connection (does it count as healthy: edge/backoff.py)
        self._packet_id = 0

    def make_batches(self, window: int, start_time_us: int, blocks_per_window: int) -> None:
        for k in range(blocks_per_window):
            template = self.pool[(self.first_block + window * blocks_per_window + k) % len(self.pool)]
            payload = self.stamper.stamp(template, self.next_seq, start_time_us)
            self.outbox.append(Pending(self.next_seq, payload, template.sample_count))
            self.next_seq += 1

    def next_packet_id(self) -> int:
        self._packet_id = self._packet_id % 65535 + 1
        while self._packet_id in self.inflight:
            self._packet_id = self._packet_id % 65535 + 1
        return self._packet_id


def build_fleet(
    credentials: dict[str, str], *, pool_seeds: int, pool_seconds: int, baro: bool, seed: int = 0
) -> list[SimVehicle]:
    """Vehicle i drives seed i mod `pool_seeds`'s pooled drive, each from its own second of the pool."""
    pools = [render_pool(seed * 1000 + s, seconds=pool_seconds, baro=baro) for s in range(pool_seeds)]
    per_window = 2 if baro else 1
    return [
        SimVehicle(vid, credentials[vid], pools[i % pool_seeds], (i // pool_seeds * 7 % pool_seconds) * per_window)
        for i, vid in enumerate(sorted(credentials))
    ]
