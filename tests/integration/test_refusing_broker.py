"""The real link (edge/link.py, with real outboxes) against the test stack's RabbitMQ when the telemetry queue
refuses publishes, and when it takes them again; callbacks that fail; the prepare hook's held entries.

What RabbitMQ 3.10.8's MQTT plugin does with a refused QoS-1 publish (a quorum queue over its max-length with
overflow reject-publish), found here: the channel's basic.nack reaches the MQTT connection process, which does not
expect it and exits (`{mqtt_unexpected_msg,{'basic.nack',Tag,true,true}}` in the broker's log). The vehicle sees
its connection closed a few milliseconds after the publish, with no PUBACK and no reason; statuses published
before it were acknowledged (their queue drops its oldest instead of refusing)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from fleetsense.edge.backoff import healthy
from fleetsense.edge.link import Link
from fleetsense.edge.outbox import Entry, Gap, Outbox
from fleetsense.gateway.management import q
from fleetsense.gateway.topology import FLEET_VHOST, MQTT_EXCHANGE

from fleetsense import wire
from fleetsense.device_config import EdgeConfig
from fleetsense.ids import telemetry_topic
from fleetsense.stack.layout import StackConfig
from fleetsense.status import VehicleStatus

from .helpers import Tap, eventually, provision_vehicle, tap, unique_vehicle

CAP_S = 8.0  # reconnect_cap_s for these vehicles: the storm test reaches its steady state in ~20 s
VEHICLES = 8
BACKLOG = 25  # batches in each vehicle's outbox when the test starts
WARM_UP_S = 25.0  # the delays grow 1, 2, 4, 8 s: after ~4 failures every vehicle draws from [0, cap]
WINDOW_S = 60.0


def imu_batch(vehicle_id: str, seq: int) -> bytes:
    return wire.encode(
        wire.Batch(
            vehicle_id=vehicle_id,
            seq=seq,
            start_time_us=time.time_ns() // 1000,
            sample_period_us=10_000,
            kind=wire.Kind.IMU,
            scales=(0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001),
            samples=[(0, 0, 9807, 0, 0, 0)] * 100,
        )
    )


@dataclasses.dataclass
class Vehicle:
    config: EdgeConfig
    outbox: Outbox
    link: Link
    tap: Tap

    @property
    def vid(self) -> str:
        return self.config.vehicle_id


def make_vehicle(
    stack: StackConfig,
    client: Any,
    tmp_path: Path,
    exits: ExitStack,
    prefix: str,
    *,
    backlog: int = BACKLOG,
    prepare: Callable[[Entry], bytes | None] | None = None,
) -> Vehicle:
    vid = unique_vehicle(prefix)
    provisioned = provision_vehicle(client, stack, vid, tmp_path)
    broker = dataclasses.replace(provisioned.broker, reconnect_cap_s=CAP_S)
    config = dataclasses.replace(provisioned, broker=broker)
    box = Outbox(config.state_dir / "outbox", max_bytes=config.outbox.max_bytes)
    exits.callback(box.close)
    for _ in range(backlog):
        box.append(telemetry_topic(vid), lambda seq: imu_batch(vid, seq))

    def status(reason: str, gaps: list[Gap]) -> VehicleStatus:
        return VehicleStatus(vehicle_id=vid, online=True, reason=reason)

    link = Link(config, box, status, prepare=prepare)
    exits.callback(link.stop, drain_timeout_s=1.0)  # runs before box.close (LIFO)
    the_tap = exits.enter_context(tap(stack, client, vid))
    return Vehicle(config, box, link, the_tap)


@contextmanager
def telemetry_refused(client: Any, vehicle_ids: set[str]) -> Iterator[None]:
    """The broker refuses these vehicles' telemetry: a queue of their own, bound beside the telemetry queue, with
    max-length 0 and reject-publish. A publish routed to several queues is confirmed only if every queue takes it,
    so each of their publishes gets a basic.nack, as from a full telemetry queue. (Refusing through the telemetry
    queue's own length does not hold while the ingest job consumes it: the job empties it faster than it fills,
    which is how the full suite, with the job running, saw no refusal at all.)"""
    name = f"test.refuse.{unique_vehicle('q')}"
    client.put_queue(FLEET_VHOST, name, {"x-max-length": 0, "x-overflow": "reject-publish"})
    try:
        for vid in vehicle_ids:
            client.bind(FLEET_VHOST, MQTT_EXCHANGE, name, telemetry_topic(vid).replace("/", "."))
        yield
    finally:
        client.request("DELETE", f"queues/{q(FLEET_VHOST)}/{q(name)}", ok_missing=True)


def connections_created(client: Any) -> int:
    """Connections the broker opened since it started (MQTT ones included): counted on the broker's side."""
    return int(client.request("GET", "overview")["churn_rates"]["connection_created"])


def close_connections_once(client: Any, usernames: set[str], *, timeout_s: float = 15.0) -> None:
    """Close each user's current connection exactly once (the API lists a connection only after its first
    statistics tick, so wait until all are listed)."""
    listed = eventually(
        lambda: [c for c in client.request("GET", "connections") or [] if c.get("user") in usernames],
        lambda found: {c["user"] for c in found} == usernames,
        timeout_s=timeout_s,
        interval_s=0.5,
    )
    assert {c["user"] for c in listed} == usernames, listed
    for connection in listed:
        client.request("DELETE", f"connections/{q(connection['name'])}", ok_missing=True)


def telemetry_bodies(t: Tap) -> list[bytes]:
    return [body for key, body in t.drain() if key.endswith(".telemetry")]


def delivered_seqs(t: Tap) -> list[int]:
    return [batch.seq for batch in t.telemetry()]


def test_a_refusing_broker_gets_connects_at_the_cap_rate_then_the_backlog_and_the_backoff_resets(
    stack: StackConfig, operator_client: Any, ingest_job: str, tmp_path: Path
) -> None:
    # With the ingest job consuming the telemetry queue, as in production (and as in the full suite).
    with ExitStack() as exits:
        fleet = [make_vehicle(stack, operator_client, tmp_path, exits, "refused") for _ in range(VEHICLES)]
        with telemetry_refused(operator_client, {v.vid for v in fleet}):
            for vehicle in fleet:
                vehicle.link.start()
            time.sleep(WARM_UP_S)
            links_before = sum(v.link.connects for v in fleet)
            broker_before = connections_created(operator_client)
            time.sleep(WINDOW_S)
            links_per_min = (sum(v.link.connects for v in fleet) - links_before) * 60 / WINDOW_S
            broker_per_min = (connections_created(operator_client) - broker_before) * 60 / WINDOW_S

            # Each vehicle: a login the broker accepts, a refused publish that gets the connection killed within
            # milliseconds, then uniform(0, cap) of waiting: one connection per cap/2 s, 15/min at an 8 s cap.
            expected_per_min = VEHICLES * 60 / (CAP_S / 2)
            print(f"connects/min: links {links_per_min:.0f}, broker {broker_per_min:.0f}, cap rate {expected_per_min}")
            assert 0.8 * expected_per_min <= links_per_min <= 1.2 * expected_per_min
            # The broker counted the same connections (its statistics lag a few seconds behind).
            assert abs(broker_per_min - links_per_min) <= 0.15 * links_per_min + 3
            # The old link reset its backoff on every login: ~1 connect per 0.5-1.5 s per vehicle, 320-960/min.
            for vehicle in fleet:
                outcome = vehicle.link.last_outcome
                assert outcome is not None and outcome.connected and outcome.acknowledged == 0, outcome
                assert outcome.in_flight_at_close >= 1 and outcome.up_s < 2.0, outcome  # killed on the refusal
                assert vehicle.link.failover.backoff.ceiling_s() == CAP_S
                assert vehicle.outbox.stats().depth == BACKLOG  # nothing was lost meanwhile

        # The queue takes publishes again: within one cap every vehicle is back and its backlog drains ...
        drained = eventually(
            lambda: [v.outbox.stats().depth for v in fleet], lambda depths: not any(depths), timeout_s=CAP_S + 20
        )
        assert not any(drained), drained
        for vehicle in fleet:
            assert set(delivered_seqs(vehicle.tap)) == set(range(BACKLOG))
        # ... and that connection proved healthy (telemetry acknowledged, nothing left in flight), so when the
        # broker drops them all, they are back within the base delay (1 s), not the cap.
        connects = [v.link.connects for v in fleet]
        close_connections_once(operator_client, {v.vid for v in fleet})
        dropped_at = time.monotonic()
        back = eventually(
            lambda: [v.link.connects - before for v, before in zip(fleet, connects, strict=True)],
            lambda counts: all(n >= 1 for n in counts),
            timeout_s=10,
            interval_s=0.1,
        )
        assert all(n == 1 for n in back), back
        assert time.monotonic() - dropped_at < 3.0
        for vehicle in fleet:
            outcome = vehicle.link.last_outcome
            assert outcome is not None and healthy(outcome, stable_s=vehicle.config.broker.stable_connection_s)
            assert vehicle.link.failover.backoff.attempts == 1  # reset, then one draw from [0, base]


def test_an_acknowledge_that_raises_does_not_stop_the_link_and_its_batch_is_resent_on_the_next_connection(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    with ExitStack() as exits:
        vehicle = make_vehicle(stack, operator_client, tmp_path, exits, "ackfail", backlog=10)
        real_acknowledge = vehicle.outbox.acknowledge
        victim = vehicle.outbox.pending()[2]
        failures = []

        def acknowledge(entry_id: int) -> None:
            if entry_id == victim.id and not failures:
                failures.append(entry_id)
                raise OSError(5, "Input/output error")  # what a dying SD card gives
            real_acknowledge(entry_id)

        vehicle.outbox.acknowledge = acknowledge  # type: ignore[method-assign]
        vehicle.link.start()
        # Every other batch is acknowledged, those after the failure too: paho's network thread carried on.
        left = eventually(lambda: vehicle.outbox.pending(), lambda rows: len(rows) <= 1, timeout_s=30)
        assert [e.seq for e in left] == [victim.seq] and failures == [victim.id]
        assert vehicle.link.connected.is_set() and vehicle.link.connects == 1

        close_connections_once(operator_client, {vehicle.vid})  # the next connection resends it
        assert eventually(lambda: vehicle.outbox.pending(), lambda rows: not rows, timeout_s=30) == []
        copies = [body for body in telemetry_bodies(vehicle.tap) if wire.decode_header(body).seq == victim.seq]
        assert len(copies) == 2 and copies[0] == copies[1]  # the same bytes twice: the cloud keeps one


def test_held_entries_do_not_block_the_ones_behind_and_go_out_retimed_when_released(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    shift_us = 3_600_000_000  # a stub policy: odd batches wait for "the clock", then go out an hour later
    released = [False]
    prepared: list[int] = []

    def prepare(entry: Entry) -> bytes | None:
        prepared.append(entry.seq)
        if entry.seq % 2 == 0:
            return entry.payload
        if not released[0]:
            return None
        return wire.retimed(entry.payload, shift_us, clear_flags=wire.Flags.CLOCK_UNSYNCED)

    with ExitStack() as exits:
        vehicle = make_vehicle(stack, operator_client, tmp_path, exits, "held", backlog=12, prepare=prepare)
        original = {e.seq: wire.decode_header(e.payload).start_time_us for e in vehicle.outbox.pending()}
        vehicle.link.start()
        rows = eventually(lambda: vehicle.outbox.pending(), lambda r: len(r) <= 6, timeout_s=30)
        assert [e.seq for e in rows] == [1, 3, 5, 7, 9, 11]  # held, and the even ones behind them went out
        time.sleep(1.0)
        offers = len(prepared)
        time.sleep(1.0)
        assert len(prepared) == offers  # held entries are not looked at again until released

        released[0] = True
        vehicle.link.release_held()
        assert eventually(lambda: vehicle.outbox.pending(), lambda r: not r, timeout_s=30) == []
        got = {b.seq: b.start_time_us for b in vehicle.tap.telemetry()}
        assert set(got) == set(range(12))
        assert all(got[s] == original[s] + (shift_us if s % 2 else 0) for s in got)  # acknowledged by id
