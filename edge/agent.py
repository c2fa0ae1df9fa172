"""The edge agent: drains the sensors on a fixed schedule, cuts their streams into batch windows, stores each
batch in the outbox (durable, sequenced) and lets the link publish it.

Batches are timed on the monotonic clock and mapped to UTC through the current anchor; one taken while the wall
clock is not known good keeps its boot id and monotonic time so the hold policy (edge/retime.py) can re-time it.

`Agent.tick(now_ns)` does one round of work and returns when it wants to run next, so the whole agent runs
in virtual time in tests; `run_agent` is the real-time loop around it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fleetsense.edge.badge import read_badge
from fleetsense.edge.clock import RE_ANCHOR_AFTER_NS, Clock, UtcAnchor, read_boot_id
from fleetsense.edge.outbox import Gap, OutboxStats
from fleetsense.edge.restarts import RunRecord, lost_ms
from fleetsense.edge.retime import BatchTime, BootOffset, EntryLike, HoldPolicy, batch_time
from fleetsense.edge.sensors.bmp280 import PRESSURE_PA_PER_COUNT, TEMPERATURE_C_PER_COUNT
from fleetsense.edge.sources import EnvironmentSource, ImuSource, Sensors, SourceStatus
from fleetsense.edge.windowing import Window, Windower

from fleetsense import __version__, wire
from fleetsense.device_config import EdgeConfig
from fleetsense.ids import telemetry_topic
from fleetsense.status import SensorReport, VehicleStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchCounts:
    imu_batches: int = 0
    baro_batches: int = 0
    imu_samples: int = 0


class BatchStore(Protocol):
    """What the agent needs of the outbox (Contract A)."""

    epoch: int

    def append(
        self, topic: str, make_payload: Callable[[int], bytes], *, boot_id: str = "", mono_ns: int | None = None
    ) -> object: ...

    def stats(self) -> OutboxStats: ...

    def last_appended(self) -> EntryLike | None: ...


KINDS = (wire.Kind.IMU, wire.Kind.BARO)


class Agent:
    def __init__(
        self,
        config: EdgeConfig,
        sensors: Sensors,
        outbox: BatchStore,
        clock: Clock,
        *,
        boot_id: str | None = None,
        run: RunRecord | None = None,
        boot_offsets: dict[str, BootOffset] | None = None,
    ) -> None:
        self.config = config
        self.imu: ImuSource = sensors.imu
        self.environment: EnvironmentSource | None = sensors.environment
        self.outbox = outbox
        self.clock = clock
        sampling = config.sampling
        self.topic = telemetry_topic(config.vehicle_id)
        self.drain_interval_ns = sampling.drain_interval_ms * 1_000_000
        self.baro_period_ns = 1_000_000_000 // sampling.baro_rate_hz
        self.imu_windows: Windower[tuple[int, ...]] = Windower(sampling.samples_per_window, self.imu.period_ns)
        baro_per_window = max(1, round(sampling.batch_window_s * sampling.baro_rate_hz))
        self.baro_windows: Windower[tuple[float, float]] = Windower(baro_per_window, self.baro_period_ns)
        self.anchor = UtcAnchor.take(clock)
        self.started_ns = clock.monotonic_ns()
        self.boot_id = boot_id or read_boot_id()
        self.run = run
        # Monotonic time counts from boot: the hold for unsynchronised batches ends hold_unsynced_s into the boot.
        self.time = HoldPolicy(
            self.boot_id, hold_until_mono_ns=round(config.clock.hold_unsynced_s * 1e9), offsets=boot_offsets
        )
        self.on_stored: Callable[[], None] = lambda: None
        # The hold policy changed its mind (this boot's clock became good, or the hold expired): the runtime keeps
        # the boot's offset and asks the link to look at held batches again (Link.release_held).
        self.on_time_change: Callable[[], None] = lambda: None
        # Flags owed to the next batch of each kind: RESTARTED after a start, CLOCK_STEPPED after a step.
        self._restarted: set[wire.Kind] = set(KINDS)
        self._stepped: set[wire.Kind] = set()
        last = outbox.last_appended()  # before this run appends anything: the previous run's last batch
        self._previous_last: BatchTime | None = (
            None if last is None else batch_time(last.payload, last.boot_id, last.mono_ns)
        )
        self._first_of_kind: dict[int, BatchTime] = {}
        self.counts = BatchCounts()
        self._next_drain_ns = 0
        self._next_baro_ns = 0

    def start(self) -> None:
        now = self.clock.monotonic_ns()
        self.imu.start(now)
        if self.environment is not None:
            self.environment.start(now)
        self._next_drain_ns = now + self.drain_interval_ns
        self._next_baro_ns = now

    def tick(self, now_ns: int) -> int:
        """Do what is due at now_ns; return the monotonic time of the next wake-up."""
        self._follow_clock(now_ns)
        if now_ns >= self._next_drain_ns:
            for block in self.imu.drain(now_ns):
                for window in self.imu_windows.add(block.first_time_ns, block.counts):
                    self._store_imu(window)
            # Scheduled, not "now + interval": the cadence does not drift with the time each drain takes.
            while self._next_drain_ns <= now_ns:
                self._next_drain_ns += self.drain_interval_ns
        if self.environment is not None and now_ns >= self._next_baro_ns:
            reading = self.environment.read(now_ns)
            if reading is not None:
                # Timed at the scheduled read, so the barometer stream stays on its grid.
                sample = (reading.pressure_pa, reading.temperature_c)
                for baro_window in self.baro_windows.add(self._next_baro_ns, [sample]):
                    self._store_baro(baro_window)
            while self._next_baro_ns <= now_ns:
                self._next_baro_ns += self.baro_period_ns
        return min(self._next_drain_ns, self._next_baro_ns if self.environment is not None else self._next_drain_ns)

    def flush(self) -> None:
        """On shutdown: store the partial windows too."""
        for block in self.imu.drain(self.clock.monotonic_ns()):
            for window in self.imu_windows.add(block.first_time_ns, block.counts):
                self._store_imu(window)
        for window in self.imu_windows.flush():
            self._store_imu(window)
        for baro in self.baro_windows.flush():
            self._store_baro(baro)

    # -- time ------------------------------------------------------------------------------------------

    def _follow_clock(self, now_ns: int) -> None:
        earlier = self.anchor
        self.anchor = earlier.refreshed(self.clock)
        if self.anchor is not earlier:
            self._re_anchored(earlier)
        good = self.anchor.synced is not False  # None: no source can tell, and the clock is plausible
        offset = BootOffset(self.anchor.utc_minus_mono_ns, self.anchor.synced is True) if good else None
        if self.time.observe(offset, now_ns):
            self.on_time_change()

    def _re_anchored(self, earlier: UtcAnchor) -> None:
        if self.anchor.stepped_from(earlier):
            step_s = (self.anchor.utc_minus_mono_ns - earlier.utc_minus_mono_ns) / 1e9
            log.info("wall clock stepped by %+.3f s (synchronised: %s)", step_s, self.anchor.synced)
        known = self.time.offset(self.boot_id)
        moved = known is not None and abs(self.anchor.utc_minus_mono_ns - known.utc_minus_mono_ns) > RE_ANCHOR_AFTER_NS
        if self.anchor.synced is True and known is not None and known.verified and moved:
            # The boot's synchronised mapping itself moved: batches already timed on the old one went out as they
            # were, so the next ones may jump. (Unsynchronised batches in between are re-timed on the boot's
            # mapping at the time they are sent, and a step while unsynchronised is no jump at all.)
            self._stepped = set(KINDS)

    # -- batches ---------------------------------------------------------------------------------------

    def _flags(self, kind: wire.Kind, gap_before: bool) -> wire.Flags:
        flags = wire.Flags.NONE
        if self.anchor.synced is not True:
            flags |= wire.Flags.CLOCK_UNSYNCED
        if gap_before:
            flags |= wire.Flags.GAP_BEFORE
        if kind in self._restarted:
            flags |= wire.Flags.RESTARTED
        if kind in self._stepped:
            flags |= wire.Flags.CLOCK_STEPPED
        return flags

    def _store(
        self,
        kind: wire.Kind,
        window: Window[Any],
        scales: tuple[float, ...],
        offsets: tuple[float, ...],
        samples: tuple[tuple[int, ...], ...],
    ) -> None:
        start_us = self.anchor.utc_ns(window.first_time_ns) // 1000
        flags = self._flags(kind, window.gap_before)
        synced = not flags & wire.Flags.CLOCK_UNSYNCED
        # Unsynchronised: keep the monotonic time so the batch can be re-timed once this boot's clock is good.
        mono_ns = None if synced else window.first_time_ns

        def payload(seq: int) -> bytes:
            return wire.encode(
                wire.Batch(
                    vehicle_id=self.config.vehicle_id,
                    seq=seq,
                    start_time_us=start_us,
                    sample_period_us=window.period_ns // 1000,
                    kind=kind,
                    scales=scales,
                    offsets=offsets,
                    samples=samples,
                    flags=flags,
                    epoch=self.outbox.epoch,
                )
            )

        self.outbox.append(self.topic, payload, boot_id=self.boot_id, mono_ns=mono_ns)
        self._restarted.discard(kind)
        self._stepped.discard(kind)
        if kind not in self._first_of_kind:
            span_us = len(samples) * (window.period_ns // 1000)
            self._first_of_kind[kind] = BatchTime(kind, start_us if synced else None, self.boot_id, mono_ns, span_us)
        self.on_stored()

    def _store_imu(self, window: Window[tuple[int, ...]]) -> None:
        self._store(wire.Kind.IMU, window, tuple(self.imu.scales), (0.0,) * 6, window.samples)
        self.counts = BatchCounts(
            self.counts.imu_batches + 1, self.counts.baro_batches, self.counts.imu_samples + len(window.samples)
        )

    def _store_baro(self, window: Window[tuple[float, float]]) -> None:
        pressure_offset = round(window.samples[0][0])
        counts = tuple(
            (_clamp16((p - pressure_offset) / PRESSURE_PA_PER_COUNT), _clamp16(t / TEMPERATURE_C_PER_COUNT))
            for p, t in window.samples
        )
        self._store(
            wire.Kind.BARO,
            window,
            (PRESSURE_PA_PER_COUNT, TEMPERATURE_C_PER_COUNT),
            (float(pressure_offset), 0.0),
            counts,
        )
        self.counts = BatchCounts(self.counts.imu_batches, self.counts.baro_batches + 1, self.counts.imu_samples)

    # -- status ----------------------------------------------------------------------------------------

    def status(self, reason: str, gaps: list[Gap]) -> VehicleStatus:
        stats = self.outbox.stats()
        sensors = {"imu": _report(self.imu.status)}
        if self.environment is not None:
            sensors["environment"] = _report(self.environment.status)
        return VehicleStatus(
            vehicle_id=self.config.vehicle_id,
            online=True,
            reason=reason,
            agent_version=__version__,
            time_utc_us=self.clock.wall_ns() // 1000,
            uptime_s=round((self.clock.monotonic_ns() - self.started_ns) / 1e9, 3),
            clock_synced=self.anchor.synced,
            sensors=sensors,
            outbox_depth=stats.depth,
            outbox_bytes=stats.bytes,
            next_seq=stats.next_seq,
            epoch=self.outbox.epoch,
            dropped_total=stats.dropped_total,
            dropped_ranges=[(g.first_seq, g.last_seq) for g in gaps],
            set_aside_rows=stats.set_aside,
            quarantined_outboxes=stats.quarantined,
            restarts=None if self.run is None else self.run.restarts,
            unclean_restarts=None if self.run is None else self.run.unclean_starts,
            last_restart_lost_ms=self.last_restart_lost_ms(),
            storage_error=stats.storage_error,
            memory_batches=stats.memory_batches,
            held_unsynced=self.time.held,
            badge=read_badge(self.config.driver.badge_file),
        )

    def last_restart_lost_ms(self) -> int | None:
        """Samples missing between the previous run's last batch and this run's first of the same kind."""
        previous = self._previous_last
        first = None if previous is None else self._first_of_kind.get(previous.kind)
        if previous is None or first is None:
            return None
        previous_start = self.time.true_time_us(previous)
        end = None if previous_start is None else previous_start + previous.span_us
        return lost_ms(end, self.time.true_time_us(first))


def _report(status: SourceStatus) -> SensorReport:
    return SensorReport(
        health=status.health.value,
        fifo_overflows=status.fifo_overflows,
        samples_lost=status.samples_lost,
        io_errors=status.io_errors,
        last_error=status.last_error,
    )


def _clamp16(value: float) -> int:
    return max(-32768, min(32767, round(value)))


def run_agent(agent: Agent, *, stop: threading.Event, on_tick: Callable[[], None] = lambda: None) -> None:
    """The real-time loop: tick, then sleep until the wake-up it asked for (or until told to stop)."""
    agent.start()
    while not stop.is_set():
        now = agent.clock.monotonic_ns()
        wake_at = agent.tick(now)
        on_tick()
        stop.wait(max(0.0, (wake_at - agent.clock.monotonic_ns()) / 1e9))
    agent.flush()
