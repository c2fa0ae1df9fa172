"""A fleet of simulated vehicles in one process, for load tests: each vehicle logs in as its own broker user over
its own MQTT connection and publishes real wire-format batches (QoS 1) at real-time rate.

Encoding costs ~0.85 ms a batch in pure Python, too much for thousands a second, so the sample blocks are rendered
once from the vehicle model into a pool, quantised like the agent's MPU-6050; each publish only re-stamps a pooled
message's header (vehicle id, seq, start time) and recomputes its CRC, which covers every byte before it
(docs/wire-format.md). The MQTT side is a minimal MQTT 3.1.1 publisher on one asyncio loop.

    python -m fleetsense.sim.fleet_load provision --data-dir D --ports-offset 500 --vehicles 2000 --out creds.json
    python -m fleetsense.sim.fleet_load run --port 2383 --credentials creds.json --vehicles 2000 --seconds 60

`run` prints JSON lines to stdout: `publishing` (the measured window, wall clock), `stats` every interval and
`summary` at the end; progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import struct
import sys
import threading
import time
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fleetsense.edge.agent import PRESSURE_PA_PER_COUNT, TEMPERATURE_C_PER_COUNT
from fleetsense.edge.sensors import mpu6050_registers as reg
from fleetsense.edge.sensors.mpu6050 import Mpu6050Config
from fleetsense.sim.vehicle import Vehicle

from fleetsense import wire
from fleetsense.errors import WireFormatError
from fleetsense.ids import telemetry_topic, validate_vehicle_id

IMU_RATE_HZ = 100
BARO_RATE_HZ = 10  # the agent's default ([sampling] baro_rate_hz)
WINDOW_US = 1_000_000  # one batch per kind per second, like the agent's default window
_SEQ_TIME = struct.Struct(">Qq")  # seq and start_time_us: right after the vehicle id (docs/wire-format.md)
_CRC = struct.Struct(">I")
_U16 = struct.Struct(">H")

# ---------------------------------------------------------------------------------------------------------
# The pool: messages rendered once, re-stamped per publish


@dataclass(frozen=True)
class PooledBlock:
    """A rendered message without its identity: `tail` runs from the sample period to the end of the bit stream
    (offset 22 + L up to the CRC), the bytes that do not depend on vehicle id, seq or start time."""

    kind: wire.Kind
    flags: int
    sample_count: int
    sample_period_us: int
    tail: bytes

    @classmethod
    def from_message(cls, message: bytes) -> PooledBlock:
        header = wire.decode_header(message)  # checks the CRC and the header
        if header.version != 2:
            raise WireFormatError(f"only wire version 2 messages can be pooled, got version {header.version}")
        tail_start = 6 + len(header.vehicle_id) + _SEQ_TIME.size
        return cls(header.kind, int(header.flags), header.sample_count, header.sample_period_us,
                   bytes(message[tail_start : -_CRC.size]))  # fmt: skip


def restamp(block: PooledBlock, *, vehicle_id: str, seq: int, start_time_us: int) -> bytes:
    """The pooled message as `vehicle_id` sends it as batch `seq` starting at `start_time_us`, with its CRC."""
    vid = validate_vehicle_id(vehicle_id).encode("ascii")
    body = b"".join([b"FS", bytes([2, block.flags, int(block.kind), len(vid)]), vid,
                     _SEQ_TIME.pack(seq, start_time_us), block.tail])  # fmt: skip
    return body + _CRC.pack(zlib.crc32(body))


class Stamper:
    """`restamp` for one vehicle, with the CRC of its constant prefix (magic .. vehicle id) computed once per
    (kind, flags): a publish then costs one CRC over 16 + len(tail) bytes."""

    def __init__(self, vehicle_id: str) -> None:
        self.vid = validate_vehicle_id(vehicle_id).encode("ascii")
        self._prefixes: dict[tuple[int, int], tuple[bytes, int]] = {}

    def message(self, block: PooledBlock, seq: int, start_time_us: int) -> bytes:
        key = (int(block.kind), block.flags)
        if (prefix := self._prefixes.get(key)) is None:
            head = b"FS" + bytes([2, block.flags, int(block.kind), len(self.vid)]) + self.vid
            prefix = self._prefixes[key] = (head, zlib.crc32(head))
        head, head_crc = prefix
        seq_time = _SEQ_TIME.pack(seq, start_time_us)
        crc = zlib.crc32(block.tail, zlib.crc32(seq_time, head_crc))
        return b"".join([head, seq_time, block.tail, _CRC.pack(crc)])


def imu_scales() -> tuple[float, ...]:
    """The agent's MPU-6050 scales at its default ranges (Mpu6050Config)."""
    chip = Mpu6050Config()
    accel = reg.accel_m_s2_per_count(reg.ACCEL_RANGES_G.index(chip.accel_range_g))
    gyro = reg.gyro_rad_s_per_count(reg.GYRO_RANGES_DPS.index(chip.gyro_range_dps))
    return (accel,) * 3 + (gyro,) * 3


def render_pool(seed: int, *, seconds: int, drive_offset_s: float = 120.0, baro: bool = False) -> list[PooledBlock]:
    """`seconds` consecutive 1 s IMU batches (and, with `baro`, a barometer batch after each) of the vehicle
    `Vehicle.random(seed)` from `drive_offset_s` into its drive, quantised as the agent does."""
    vehicle = Vehicle.random(seed, drive_offset_s + seconds + 60.0)
    scales = imu_scales()
    period_us = 1_000_000 // IMU_RATE_HZ
    pool: list[PooledBlock] = []
    for second in range(seconds):
        t0_s = drive_offset_s + second
        rows = []
        for i in range(IMU_RATE_HZ):
            reading = vehicle.imu_at(t0_s + i * period_us / 1e6)
            values = (*reading.specific_force_m_s2, *reading.angular_rate_rad_s)
            rows.append(tuple(wire.counts_from_si(v, scale=s) for v, s in zip(values, scales, strict=True)))
        pool.append(_pooled(wire.Kind.IMU, period_us, scales, (0.0,) * 6, rows))
        if baro:
            air = [vehicle.environment_at(t0_s + i / BARO_RATE_HZ) for i in range(BARO_RATE_HZ)]
            offset_pa = round(air[0].pressure_pa)
            counts = [
                (wire.counts_from_si(a.pressure_pa, scale=PRESSURE_PA_PER_COUNT, offset=offset_pa),
                 wire.counts_from_si(a.temperature_c, scale=TEMPERATURE_C_PER_COUNT))
                for a in air
            ]  # fmt: skip
            scales_baro = (PRESSURE_PA_PER_COUNT, TEMPERATURE_C_PER_COUNT)
            pool.append(
                _pooled(wire.Kind.BARO, 1_000_000 // BARO_RATE_HZ, scales_baro, (float(offset_pa), 0.0), counts)
            )
    return pool


def _pooled(
    kind: wire.Kind,
    period_us: int,
    scales: tuple[float, ...],
    offsets: tuple[float, ...],
    rows: Sequence[tuple[int, ...]],
) -> PooledBlock:
    batch = wire.Batch(vehicle_id="pool", seq=0, start_time_us=0, sample_period_us=period_us, kind=kind,
                       scales=scales, offsets=offsets, samples=tuple(rows))  # fmt: skip
    return PooledBlock.from_message(wire.encode(batch))


# ---------------------------------------------------------------------------------------------------------
# The schedule: every vehicle once per window, the fleet spread evenly over the window


@dataclass(frozen=True)
class Schedule:
    """Publish event j is vehicle j mod N's window j div N. Vehicle i's windows start i/N of a window after the
    fleet's anchor, and each is published when it ends, so the fleet's load is smooth and events come in order
    of j: the loop needs a counter, not a heap. Times are microseconds after the anchor."""

    vehicles: int
    window_us: int = WINDOW_US

    def vehicle_and_window(self, event: int) -> tuple[int, int]:
        window, vehicle = divmod(event, self.vehicles)
        return vehicle, window

    def window_start_us(self, event: int) -> int:
        vehicle, window = self.vehicle_and_window(event)
        return vehicle * self.window_us // self.vehicles + window * self.window_us

    def due_us(self, event: int) -> int:
        return self.window_start_us(event) + self.window_us

    def events_due_by(self, elapsed_us: int) -> int:
        """How many events are due at `elapsed_us` (events 0 .. n-1)."""
        if elapsed_us < self.window_us:
            return 0
        window, within = divmod(elapsed_us - self.window_us, self.window_us)
        # vehicle v's window starts v*W//N into the window: v*W//N <= within  <=>  v < (within + 1) * N / W
        return window * self.vehicles + -(-(within + 1) * self.vehicles // self.window_us)


# ---------------------------------------------------------------------------------------------------------
# MQTT 3.1.1 packets (only what a QoS 1 publisher needs)

CONNACK, PUBACK, PINGRESP = 2, 4, 13
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer: 7 bits per byte, least significant group first, high bit = more."""
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"an MQTT packet cannot have {n} bytes")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8_field(text: str) -> bytes:
    data = text.encode()
    return _U16.pack(len(data)) + data


def connect_packet(client_id: str, username: str, password: str, *, keepalive_s: int) -> bytes:
    """CONNECT with a clean session, user name and password (flags 0xC2), no will."""
    body = b"\x00\x04MQTT\x04\xc2" + _U16.pack(keepalive_s)
    body += _utf8_field(client_id) + _utf8_field(username) + _utf8_field(password)
    return b"\x10" + remaining_length(len(body)) + body


def publish_packet(topic_field: bytes, packet_id: int, payload: bytes, *, dup: bool = False) -> bytes:
    """PUBLISH at QoS 1; `topic_field` is the topic with its u16 length prefix."""
    size = len(topic_field) + 2 + len(payload)
    return b"".join([b"\x3a" if dup else b"\x32", remaining_length(size), topic_field, _U16.pack(packet_id), payload])


class PacketReader:
    """Splits a byte stream into (packet type, body) as packets complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        packets: list[tuple[int, bytes]] = []
        buffer = self._buffer
        while len(buffer) >= 2:
            size, shift, pos = 0, 0, 1
            while True:
                if pos >= len(buffer):
                    return packets  # the length is not complete yet
                digit = buffer[pos]
                size |= (digit & 0x7F) << shift
                pos, shift = pos + 1, shift + 7
                if not digit & 0x80:
                    break
                if shift > 21:
                    raise ValueError("malformed MQTT remaining length")
            if len(buffer) < pos + size:
                return packets
            packets.append((buffer[0] >> 4, bytes(buffer[pos : pos + size])))
            del buffer[: pos + size]
        return packets


# ---------------------------------------------------------------------------------------------------------
# Statistics


def percentiles(values: Iterable[float], points: Sequence[float] = (50, 90, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles, e.g. {"p50": ..., "p99": ..., "max": ...}; None for no values."""
    ordered = sorted(values)
    result: dict[str, float | None] = {}
    for point in points:
        rank = max(1, -(-len(ordered) * point // 100))  # ceil
        result[f"p{point:g}"] = round(float(ordered[int(rank) - 1]), 3) if ordered else None
    result["max"] = round(float(ordered[-1]), 3) if ordered else None
    return result


@dataclass
class Counters:
    published: int = 0  # first sends of a batch
    resent: int = 0  # sends after a reconnect or an ack time-out
    acked: int = 0
    samples_acked: int = 0
    reconnects: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # CONNACK reason or connection error -> count
    puback_ms: array[float] = field(default_factory=lambda: array("f"))
    schedule_lag_ms: array[float] = field(default_factory=lambda: array("f"))


# ---------------------------------------------------------------------------------------------------------
# One simulated vehicle and its connection


@dataclass
class Pending:
    seq: int
    payload: bytes
    samples: int
    sent_at: float = 0.0  # monotonic time of the last send


class SimVehicle:
    def __init__(self, vehicle_id: str, password: str, pool: Sequence[PooledBlock], first_block: int) -> None:
        self.vehicle_id, self.password = vehicle_id, password
        self.stamper = Stamper(vehicle_id)
        self.topic_field = _utf8_field(telemetry_topic(vehicle_id))
        self.pool, self.first_block = pool, first_block
        self.next_seq = 0
        self.outbox: deque[Pending] = deque()  # made, not yet sent (disconnected or too many in flight)
        self.inflight: dict[int, Pending] = {}  # packet id -> batch, sent and waiting for its PUBACK
        self.link: MqttLink | None = None
        self.connected = False
        self.failures = 0  # consecutive failed connection attempts (reconnect backoff)
        self._packet_id = 0

    def make_batches(self, window: int, start_time_us: int, blocks_per_window: int) -> None:
        for k in range(blocks_per_window):
            block = self.pool[(self.first_block + window * blocks_per_window + k) % len(self.pool)]
            self.outbox.append(
                Pending(self.next_seq, self.stamper.message(block, self.next_seq, start_time_us), block.sample_count)
            )
            self.next_seq += 1

    def next_packet_id(self) -> int:
        self._packet_id = self._packet_id % 65535 + 1
        while self._packet_id in self.inflight:
            self._packet_id = self._packet_id % 65535 + 1
        return self._packet_id


class MqttLink(asyncio.Protocol):
    """One vehicle's connection: CONNECT on connect, PUBACKs and CONNACK from the broker."""

    def __init__(self, fleet: FleetLoad, vehicle: SimVehicle) -> None:
        self.fleet, self.vehicle = fleet, vehicle
        self.reader = PacketReader()
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.connack.add_done_callback(_retrieve)  # a CONNACK nobody waits for any more must not warn
        self.last_write = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        vehicle = self.vehicle
        self.write(connect_packet(vehicle.vehicle_id, vehicle.vehicle_id, vehicle.password,
                                  keepalive_s=self.fleet.keepalive_s))  # fmt: skip

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)
            self.last_write = time.monotonic()

    def data_received(self, data: bytes) -> None:
        try:
            packets = self.reader.feed(data)
        except ValueError as exc:
            self.fleet.note_error(f"malformed packet from the broker: {exc}")
            self.abort()
            return
        for kind, body in packets:
            if kind == PUBACK and len(body) == 2:
                self.fleet.on_puback(self.vehicle, _U16.unpack(body)[0])
            elif kind == CONNACK and len(body) == 2 and not self.connack.done():
                self.connack.set_result(body[1])
            elif kind != PINGRESP:
                self.fleet.note_error(f"unexpected MQTT packet type {kind} from the broker")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connack.done():
            self.connack.set_exception(ConnectionError(f"closed before CONNACK ({exc or 'by the broker'})"))
        self.transport = None
        self.fleet.on_disconnect(self.vehicle, self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


# ---------------------------------------------------------------------------------------------------------
# The fleet


@dataclass(frozen=True, kw_only=True)
class LoadSettings:
    host: str = "127.0.0.1"
    port: int = 1883
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


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": round(time.time(), 3), **fields}), flush=True)


def say(text: str) -> None:
    print(f"[fleet_load] {text}", file=sys.stderr, flush=True)


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

    # -- events from the links ------------------------------------------------------------------

    def note_error(self, text: str) -> None:
        self.errors[text] = self.errors.get(text, 0) + 1

    def on_puback(self, vehicle: SimVehicle, packet_id: int) -> None:
        pending = vehicle.inflight.pop(packet_id, None)
        if pending is None:
            return
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
        # Clean session: the broker forgets unacknowledged publishes, so they go out again after reconnecting.
        for pending in sorted(vehicle.inflight.values(), key=lambda p: p.seq, reverse=True):
            vehicle.outbox.appendleft(pending)
        vehicle.inflight.clear()
        if was_connected and not self.stopping:
            for counters in self._active():
                counters.reconnects += 1
            task = asyncio.get_running_loop().create_task(self._reconnect(vehicle))
            self._reconnecting.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._reconnecting.discard)

    def _active(self) -> list[Counters]:
        return [self.total, self.interval, self.window] if self.in_window else [self.total, self.interval]

    def _refused(self, reason: str) -> None:
        for counters in self._active():
            counters.refused[reason] = counters.refused.get(reason, 0) + 1

    # -- connecting -----------------------------------------------------------------------------

    async def connect(self, vehicle: SimVehicle) -> str | None:
        """Connect and log in; None on success, else the reason (also counted as refused)."""
        loop = asyncio.get_running_loop()
        link: MqttLink | None = None
        try:
            _, opened = await asyncio.wait_for(
                loop.create_connection(lambda: MqttLink(self, vehicle), self.settings.host, self.settings.port),
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
                vehicle.connected, vehicle.failures = True, 0
                self._send_queued(vehicle)
                return None
            reason = f"CONNACK {code}: {CONNACK_REASONS.get(code, 'unknown return code')}"
        if link is not None:
            link.abort()
        vehicle.failures += 1
        self._refused(reason)
        return reason

    async def _reconnect(self, vehicle: SimVehicle) -> None:
        while not self.stopping and not vehicle.connected:
            # Jittered exponential backoff, like the agent's link: 1 s doubling up to 30 s.
            await asyncio.sleep(min(30.0, 2.0 ** min(vehicle.failures, 5)) * random.uniform(0.5, 1.0))
            if self.stopping or vehicle.connected:
                return
            await self.connect(vehicle)

    async def ramp_up(self) -> dict[str, Any]:
        """Connect every vehicle at `connect_rate_per_s`; returns what happened, refused logins by reason."""
        started = time.monotonic()
        tasks = []
        for index, vehicle in enumerate(self.vehicles):
            await _sleep_until(started + index / self.settings.connect_rate_per_s)
            tasks.append(asyncio.create_task(self.connect(vehicle)))
            if index and index % 500 == 0:
                say(f"connecting: {index} of {len(self.vehicles)} started")
        outcomes = await asyncio.gather(*tasks)
        failed: dict[str, list[str]] = {}
        for vehicle, reason in zip(self.vehicles, outcomes, strict=True):
            if reason is not None:
                failed.setdefault(reason, []).append(vehicle.vehicle_id)
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


def _retrieve(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()


async def _sleep_until(when_mono: float) -> None:
    delay = when_mono - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def build_fleet(
    credentials: dict[str, str], *, pool_seeds: int, pool_seconds: int, baro: bool, seed: int = 0
) -> list[SimVehicle]:
    """Vehicle i drives seed i mod `pool_seeds`'s pooled drive, each from its own second of the pool."""
    pools = []
    for s in range(pool_seeds):
        pools.append(render_pool(seed * 1000 + s, seconds=pool_seconds, baro=baro))
    per_window = 2 if baro else 1
    return [
        SimVehicle(vid, credentials[vid], pools[i % pool_seeds], (i // pool_seeds * 7 % pool_seconds) * per_window)
        for i, vid in enumerate(sorted(credentials))
    ]


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


# ---------------------------------------------------------------------------------------------------------
# Provisioning thousands of vehicles: the same user, permissions and tag as gateway/provision.py, in parallel


class UserAdmin(Protocol):
    def put_user(self, username: str, password: str | None, tags: str = "") -> None: ...
    def put_permissions(self, vhost: str, username: str, *, configure: str, write: str, read: str) -> None: ...
    def put_topic_permissions(self, vhost: str, username: str, *, exchange: str, write: str, read: str) -> None: ...
    def put_user_limits(self, username: str, *, max_connections: int, max_channels: int) -> None: ...
    def delete_user(self, username: str) -> None: ...


def provision_fleet(client_factory: Callable[[], UserAdmin], passwords: dict[str, str], *, workers: int = 8) -> None:
    """Create (or update) a broker user per vehicle, with exactly the device permissions of `gateway provision`.
    Each worker thread has its own client (a requests.Session is not meant to be shared between threads)."""
    from fleetsense.gateway.provision import grant_device

    local = threading.local()

    def one(vehicle_id: str) -> None:
        grant_device(getattr(local, "client", None) or _set(local, client_factory()), vehicle_id, passwords[vehicle_id])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, [validate_vehicle_id(v) for v in passwords]))


def revoke_fleet(client_factory: Callable[[], UserAdmin], vehicle_ids: Iterable[str], *, workers: int = 8) -> None:
    local = threading.local()

    def one(vehicle_id: str) -> None:
        (getattr(local, "client", None) or _set(local, client_factory())).delete_user(vehicle_id)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, list(vehicle_ids)))


def _set(local: threading.local, client: UserAdmin) -> UserAdmin:
    local.client = client
    return client


def fleet_ids(count: int, prefix: str = "load") -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(count)]


def load_credentials(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text())
    return {str(k): str(v) for k, v in data["passwords"].items()}


def save_credentials(path: Path, passwords: dict[str, str]) -> None:
    from fleetsense.stack.secrets import write_private

    write_private(path, json.dumps({"passwords": passwords}))


# ---------------------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetsense.sim.fleet_load", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prov = sub.add_parser("provision", help="create broker users for a load fleet on a local stack")
    prov.add_argument("--data-dir", type=Path, required=True)
    prov.add_argument("--ports-offset", type=int, default=0)
    prov.add_argument("--vehicles", type=int, required=True)
    prov.add_argument("--prefix", default="load")
    prov.add_argument("--out", type=Path, required=True, help="credentials file to write (mode 0600)")
    run = sub.add_parser("run", help="drive the fleet")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=1883)
    run.add_argument("--credentials", type=Path, required=True)
    run.add_argument("--vehicles", type=int, help="use the first N vehicles of the credentials file")
    run.add_argument("--seconds", type=float, default=60.0)
    run.add_argument("--warmup", type=float, default=10.0)
    run.add_argument("--connect-rate", type=float, default=100.0)
    run.add_argument("--pool-seeds", type=int, default=16)
    run.add_argument("--pool-seconds", type=int, default=64)
    run.add_argument("--baro", action="store_true", help="also a barometer batch every second")
    run.add_argument("--stats-interval", type=float, default=5.0)
    run.add_argument("--tolerate-refused", action="store_true", help="keep going when some logins are refused")
    args = parser.parse_args(argv)
    if args.command == "provision":
        return _provision_command(args)
    credentials = load_credentials(args.credentials)
    if args.vehicles:
        credentials = dict(sorted(credentials.items())[: args.vehicles])
    settings = LoadSettings(host=args.host, port=args.port, seconds=args.seconds, warmup_s=args.warmup,
                            connect_rate_per_s=args.connect_rate, baro=args.baro,
                            stats_interval_s=args.stats_interval, tolerate_refused=args.tolerate_refused)  # fmt: skip
    started = time.monotonic()
    vehicles = build_fleet(credentials, pool_seeds=args.pool_seeds, pool_seconds=args.pool_seconds, baro=args.baro)
    say(f"rendered {args.pool_seeds} x {args.pool_seconds} s of pooled batches in {time.monotonic() - started:.1f} s")
    summary = asyncio.run(run_load(settings, vehicles))
    emit("summary", **summary)
    return 0 if summary.get("ok") else 2


def _provision_command(args: argparse.Namespace) -> int:
    from fleetsense.stack import manager
    from fleetsense.stack.layout import Ports, StackConfig
    from fleetsense.stack.secrets import new_password

    config = StackConfig(data_dir=args.data_dir, ports=Ports().offset(args.ports_offset))
    passwords = {vid: new_password() for vid in fleet_ids(args.vehicles, args.prefix)}
    started = time.monotonic()
    provision_fleet(lambda: manager.management_client(config), passwords)
    save_credentials(args.out, passwords)
    say(f"provisioned {len(passwords)} vehicles in {time.monotonic() - started:.1f} s; credentials in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
