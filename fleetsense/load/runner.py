"""The load generator's run: connect the fleet at a steady rate, publish every vehicle's batch when its window
ends (schedule.py), keep at most `max_inflight` QoS 1 publishes in flight per vehicle, resend what a lost
connection left unacknowledged, fail over between broker endpoints as the agent does (edge/failover.py), and
report. Prints JSON lines to stdout (`publishing`, `stats`, `summary`);
progress and errors go to stderr."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from fleetsense.edge.backoff import ConnectionOutcome
from fleetsense.edge.failover import Failover
from fleetsense.endpoints import Endpoint
from fleetsense.load.mqtt_link import MqttLink
from fleetsense.load.mqtt_packets import CONNACK_REASONS, DISCONNECT_PACKET, PINGREQ_PACKET, publish_packet
from fleetsense.load.schedule import Schedule
from fleetsense.load.stats import Counters, percentiles
from fleetsense.load.vehicles import SimVehicle


@dataclass(frozen=True, kw_only=True)
class LoadSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    endpoints: tuple[Endpoint, ...] = ()  # several brokers (a cluster's nodes) instead of host and port
    reconnect_base_s: float = 1.0  # the agent's [broker] backoff: full jitter up to base x 2^rounds, the cap
    reconnect_cap_s: float = 30.0
    stable_connection_s: float = 60.0
    seconds: float = 60.0  # the measured window
    warmup_s: float = 10.0  # publishing before the window opens
    connect_rate_per_s: float = 100.0
    connect_timeout_s: float = 15.0
    keepalive_s: int = 60
    max_inflight: int = 20  # the agent's [outbox] max_inflight
    ack_timeout_s: float = 30.0  # the agent's: a PUBACK later than this means a broken connection
    outbox_limit: int = 3600  # batches a vehicle keeps while it cannot send (oldest dropped beyond)
    stats_interval_s: float = 5.0
    drain_s: float = 30.0  # after the last batch, how long to wait for outstanding PUBACKs
    baro: bool = False
    tolerate_refused: bool = False

    @property
    def connect_to(self) -> tuple[Endpoint, ...]:
        return self.endpoints or (Endpoint(self.host, self.port),)


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": round(time.time(), 3), **fields}), flush=True)


def say(text: str) -> None:
    print(f"[load] {text}", file=sys.stderr, flush=True)


class FleetLoad:
    def __init__(self, settings: LoadSettings, vehicles: list[SimVehicle]) -> None:
        self.settings = settings
        self.vehicles = vehicles
        self.keepalive_s = settings.keepalive_s
        self.schedule = Schedule(len(vehicles))
        self.blocks_per_window = 2 if settings.baro else 1
        self.total = Counters()
        self.window = Counters()  # only what happens inside the measured window
        self.interval = Counters()  # since the last stats line
        self.errors: dict[str, int] = {}
        self.stopping = False
        self.in_window = False
        self.window_due = 0  # publish events due inside the window (the offered load)
        self._reconnecting: set[asyncio.Task[None]] = set()
        for vehicle in vehicles:
            vehicle.failover = Failover.for_endpoints(
                settings.connect_to,
                vehicle.vehicle_id,
                base_s=settings.reconnect_base_s,
                cap_s=settings.reconnect_cap_s,
                stable_s=settings.stable_connection_s,
            )

    # -- events from the links ------------------------------------------------------------------

    def note_error(self, text: str) -> None:
        self.errors[text] = self.errors.get(text, 0) + 1

    def on_puback(self, vehicle: SimVehicle, packet_id: int) -> None:
        pending = vehicle.inflight.pop(packet_id, None)
        if pending is None:
            return
        vehicle.acked_here += 1
        latency_ms = (time.monotonic() - pending.sent_at) * 1000.0
        for counters in self._active():
            counters.acked += 1
            counters.samples_acked += pending.samples
            counters.puback_ms.append(latency_ms)
        self._send_queued(vehicle)

    def on_disconnect(self, vehicle: SimVehicle, link: MqttLink) -> None:
        if vehicle.link is not link:
            return
        was_connected, vehicle.connected, vehicle.link = vehicle.connected, False, None
        outcome = ConnectionOutcome(
            connected=True,
            up_s=time.monotonic() - vehicle.connected_at,
            acknowledged=vehicle.acked_here,
            in_flight_at_close=len(vehicle.inflight),
        )
        # Clean session: the broker forgets unacknowledged publishes, so they go out again after reconnecting
        # (to whichever endpoint is next: a duplicate the cloud drops by seq, never a loss).
        for pending in sorted(vehicle.inflight.values(), key=lambda p: p.seq, reverse=True):
            vehicle.outbox.appendleft(pending)
        vehicle.inflight.clear()
        if was_connected and not self.stopping:
            for counters in self._active():
                counters.reconnects += 1
            self._start_reconnect(vehicle, outcome)

    def _start_reconnect(self, vehicle: SimVehicle, outcome: ConnectionOutcome) -> None:
        task = asyncio.get_running_loop().create_task(self._reconnect(vehicle, outcome))
        self._reconnecting.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._reconnecting.discard)

    def _active(self) -> list[Counters]:
        return [self.total, self.interval, self.window] if self.in_window else [self.total, self.interval]

    def _refused(self, reason: str) -> None:
        for counters in self._active():
            counters.refused[reason] = counters.refused.get(reason, 0) + 1

    # -- connecting -----------------------------------------------------------------------------

    async def connect(self, vehicle: SimVehicle) -> str | None:
        """Connect to the vehicle's current endpoint and log in; None on success, else the reason."""
        loop = asyncio.get_running_loop()
        link: MqttLink | None = None
        assert vehicle.failover is not None
        endpoint = vehicle.failover.current
        try:
            _, opened = await asyncio.wait_for(
                loop.create_connection(partial(self._link, vehicle), endpoint.host, endpoint.port),
                self.settings.connect_timeout_s,
            )
            link = vehicle.link = opened
            code = await asyncio.wait_for(asyncio.shield(opened.connack), self.settings.connect_timeout_s)
        except TimeoutError:
            step = "no CONNACK" if link is not None else "no TCP connection"
            reason = f"{step} within {self.settings.connect_timeout_s:g} s (broker overloaded or not listening)"
        except (OSError, ConnectionError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        else:
            if code == 0:
                vehicle.connected, vehicle.connected_at, vehicle.acked_here = True, time.monotonic(), 0
                self._send_queued(vehicle)
                return None
            reason = f"CONNACK {code}: {CONNACK_REASONS.get(code, 'unknown return code')}"
        if link is not None:
            link.abort()
        return reason

    async def connect_first(self, vehicle: SimVehicle) -> str | None:
        """The first connection: each endpoint in the vehicle's order until one takes it (paced by the ramp, not
        by the backoff); the last reason, counted as refused, when none does."""
        assert vehicle.failover is not None
        reasons = []
        for _ in vehicle.failover.order:
            reason = await self.connect(vehicle)
            if reason is None:
                return None
            reasons.append(reason)
            vehicle.failover.after(ConnectionOutcome(connected=False))
        self._refused(reasons[-1])
        return reasons[-1]

    def _link(self, vehicle: SimVehicle) -> MqttLink:
        return MqttLink(vehicle.login, keepalive_s=self.keepalive_s, on_puback=partial(self.on_puback, vehicle),
                        on_lost=partial(self.on_disconnect, vehicle), on_error=self.note_error)  # fmt: skip

    async def _reconnect(self, vehicle: SimVehicle, outcome: ConnectionOutcome) -> None:
        """The agent's failover: the next endpoint (or the same, after a healthy connection) after the backoff."""
        assert vehicle.failover is not None
        while not self.stopping and not vehicle.connected:
            attempt = vehicle.failover.after(outcome)
            await asyncio.sleep(attempt.delay_s)
            if self.stopping or vehicle.connected:
                return
            reason = await self.connect(vehicle)
            if reason is None:
                return
            self._refused(reason)
            outcome = ConnectionOutcome(connected=False)

    async def ramp_up(self) -> dict[str, Any]:
        """Connect every vehicle at `connect_rate_per_s`; returns what happened, refused logins by reason."""
        started = time.monotonic()
        tasks = []
        for index, vehicle in enumerate(self.vehicles):
            await _sleep_until(started + index / self.settings.connect_rate_per_s)
            tasks.append(asyncio.create_task(self.connect_first(vehicle)))
            if index and index % 500 == 0:
                say(f"connecting: {index} of {len(self.vehicles)} started")
        outcomes = await asyncio.gather(*tasks)
        failed: dict[str, list[str]] = {}
        for vehicle, reason in zip(self.vehicles, outcomes, strict=True):
            if reason is not None:
                failed.setdefault(reason, []).append(vehicle.vehicle_id)
                if self.settings.tolerate_refused:
                    self._start_reconnect(vehicle, ConnectionOutcome(connected=False))  # keeps trying
        return {
            "connected": sum(v.connected for v in self.vehicles),
            "ramp_s": round(time.monotonic() - started, 2),
            "refused": {reason: {"count": len(ids), "first": ids[:5]} for reason, ids in failed.items()},
        }

    # -- publishing -----------------------------------------------------------------------------

    def _send_queued(self, vehicle: SimVehicle) -> None:
        link = vehicle.link
        if link is None or not vehicle.connected:
            return
        now = time.monotonic()
        while vehicle.outbox and len(vehicle.inflight) < self.settings.max_inflight:
            pending = vehicle.outbox.popleft()
            resend = pending.sent_at > 0.0
            packet_id = vehicle.next_packet_id()
            pending.sent_at = now
            vehicle.inflight[packet_id] = pending
            link.write(publish_packet(vehicle.topic_field, packet_id, pending.payload, dup=resend))
            for counters in self._active():
                if resend:
                    counters.resent += 1
                else:
                    counters.published += 1

    async def publish(self, anchor_mono: float, anchor_wall_us: int, duration_s: float) -> None:
        """Every vehicle's batches from the anchor for `duration_s`, each sent when its window ends."""
        schedule, settings = self.schedule, self.settings
        window_open_us, window_close_us = int(settings.warmup_s * 1e6), int(duration_s * 1e6)
        total_events = schedule.events_due_by(window_close_us)
        event = 0
        while event < total_events:
            elapsed_us = int((time.monotonic() - anchor_mono) * 1e6)
            self.in_window = window_open_us <= elapsed_us < window_close_us
            due = min(schedule.events_due_by(elapsed_us), total_events)
            while event < due:
                vehicle_index, window = schedule.vehicle_and_window(event)
                due_us = schedule.due_us(event)
                lag_ms = (elapsed_us - due_us) / 1000.0
                if window_open_us <= due_us < window_close_us:
                    self.window_due += self.blocks_per_window
                for counters in self._active():
                    counters.schedule_lag_ms.append(lag_ms)
                vehicle = self.vehicles[vehicle_index]
                vehicle.make_batches(window, anchor_wall_us + schedule.window_start_us(event), self.blocks_per_window)
                while len(vehicle.outbox) > settings.outbox_limit:
                    vehicle.outbox.popleft()
                    self.note_error("outbox full: oldest batch dropped")
                self._send_queued(vehicle)
                event += 1
            if event < total_events:
                await _sleep_until(anchor_mono + max(schedule.due_us(event) / 1e6, elapsed_us / 1e6 + 0.002))
        self.in_window = False

    async def housekeeping(self) -> None:
        """Keepalive pings for quiet connections, and a reconnect for PUBACKs older than the ack time-out."""
        while not self.stopping:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for vehicle in self.vehicles:
                link = vehicle.link
                if link is None or not vehicle.connected:
                    continue
                if (
                    vehicle.inflight
                    and now - min(p.sent_at for p in vehicle.inflight.values()) > self.settings.ack_timeout_s
                ):
                    self.note_error("PUBACK time-out: reconnecting")
                    link.abort()
                elif now - link.last_write > self.keepalive_s / 2:
                    link.write(PINGREQ_PACKET)

    async def report(self, started_mono: float) -> None:
        while not self.stopping:
            await asyncio.sleep(self.settings.stats_interval_s)
            interval, self.interval = self.interval, Counters()
            emit("stats", elapsed_s=round(time.monotonic() - started_mono, 1), **self.snapshot(),
                 interval_published=interval.published, interval_acked=interval.acked,
                 interval_puback_ms=percentiles(interval.puback_ms),
                 interval_schedule_lag_ms=percentiles(interval.schedule_lag_ms))  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        return {
            "connected": sum(v.connected for v in self.vehicles),
            "published": self.total.published,
            "acked": self.total.acked,
            "resent": self.total.resent,
            "inflight": sum(len(v.inflight) for v in self.vehicles),
            "outbox": sum(len(v.outbox) for v in self.vehicles),
            "reconnects": self.total.reconnects,
            "refused": dict(self.total.refused),
        }

    async def drain(self) -> None:
        deadline = time.monotonic() + self.settings.drain_s
        while time.monotonic() < deadline and any(v.inflight or v.outbox for v in self.vehicles):
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        self.stopping = True
        for vehicle in self.vehicles:
            if vehicle.link is not None:
                vehicle.link.write(DISCONNECT_PACKET)
                if vehicle.link.transport is not None:
                    vehicle.link.transport.close()
        await asyncio.sleep(0.5)


async def _sleep_until(when_mono: float) -> None:
    delay = when_mono - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def run_load(settings: LoadSettings, vehicles: list[SimVehicle]) -> dict[str, Any]:
    fleet = FleetLoad(settings, vehicles)
    started = time.monotonic()
    tasks = [asyncio.create_task(fleet.housekeeping()), asyncio.create_task(fleet.report(started))]
    connect = await fleet.ramp_up()
    say(f"connected {connect['connected']} of {len(vehicles)} vehicles in {connect['ramp_s']} s")
    summary: dict[str, Any] = {"vehicles": len(vehicles), "connect": connect}
    if connect["refused"]:
        for reason, info in connect["refused"].items():
            say(f"REFUSED: {info['count']} connection(s): {reason} (e.g. {', '.join(info['first'])})")
        if not settings.tolerate_refused:
            await fleet.close()
            for task in tasks:
                task.cancel()
            return {**summary, "ok": False, "error": "connections were refused; see connect.refused"}
    duration_s = settings.warmup_s + settings.seconds
    anchor_mono, anchor_wall = time.monotonic(), time.time()
    emit("publishing", anchor=round(anchor_wall, 6), window_start=round(anchor_wall + settings.warmup_s, 6),
         window_end=round(anchor_wall + duration_s, 6), vehicles=len(vehicles))  # fmt: skip
    await fleet.publish(anchor_mono, int(anchor_wall * 1e6), duration_s)
    await fleet.drain()
    unacked = sum(len(v.inflight) + len(v.outbox) for v in vehicles)
    await fleet.close()
    for task in tasks:
        task.cancel()
    window = fleet.window
    seconds = settings.seconds
    summary.update(
        ok=True,
        window={
            "start": round(anchor_wall + settings.warmup_s, 6),
            "end": round(anchor_wall + duration_s, 6),
            "seconds": seconds,
            "batches_due": fleet.window_due,
            "batches_published": window.published,
            "batches_resent": window.resent,
            "batches_acked": window.acked,
            "acked_batches_per_s": round(window.acked / seconds, 1),
            "acked_samples_per_s": round(window.samples_acked / seconds, 1),
            "puback_ms": percentiles(window.puback_ms),
            "schedule_lag_ms": percentiles(window.schedule_lag_ms),
            "reconnects": window.reconnects,
            "refused": window.refused,
        },
        totals=fleet.snapshot(),
        unacked_at_end=unacked,
        errors=fleet.errors,
        cpu_s=round(time.process_time(), 2),
    )
    return summary
