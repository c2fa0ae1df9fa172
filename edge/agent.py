"""The edge agent: drains the sensors on a fixed schedule, cuts their streams into batch windows, stores each
batch in the outbox (durable, sequenced) and lets the link publish it.

`Agent.tick(now_ns)` does one round of work and returns when it wants to run next, so the whole agent runs
in virtual time in tests; `run_agent` is the real-time loop around it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleetsense.edge.clock import Clock, UtcAnchor
from fleetsense.edge.outbox import Gap, Outbox
from fleetsense.edge.sources import EnvironmentSource, ImuSource, Sensors, SourceStatus
from fleetsense.edge.windowing import Window, Windower

from fleetsense import __version__, wire
from fleetsense.device_config import EdgeConfig
from fleetsense.ids import telemetry_topic
from fleetsense.status import SensorReport, VehicleStatus

log = logging.getLogger(__name__)

PRESSURE_PA_PER_COUNT = 0.1  # ±3.2 kPa around the batch's first reading: ±270 m of climb within one window
TEMPERATURE_C_PER_COUNT = 0.01


@dataclass(frozen=True)
class BatchCounts:
    imu_batches: int = 0
    baro_batches: int = 0
    imu_samples: int = 0


class Agent:
    def __init__(self, config: EdgeConfig, sensors: Sensors, outbox: Outbox, clock: Clock) -> None:
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
        self.on_stored: Callable[[], None] = lambda: None
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
        self.anchor = self.anchor.refreshed(self.clock)
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

    # -- batches ---------------------------------------------------------------------------------------

    def _flags(self, gap_before: bool) -> wire.Flags:
        flags = wire.Flags.NONE
        if not self.anchor.synced:
            flags |= wire.Flags.CLOCK_UNSYNCED
        if gap_before:
            flags |= wire.Flags.GAP_BEFORE
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
                    flags=self._flags(window.gap_before),
                    epoch=self.outbox.epoch,
                )
            )

        self.outbox.append(self.topic, payload)
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
        )


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
