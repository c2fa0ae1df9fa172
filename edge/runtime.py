"""`fleetsense edge run`: wires sensors, outbox, agent and link together and runs them until SIGTERM.

Under systemd (Type=notify) it reports readiness, pings the watchdog while the sampling loop is alive, and
on stop flushes the partial windows to the outbox and sends what it can before exiting.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetsense.edge.agent import Agent, run_agent
from fleetsense.edge.clock import Clock, SystemClock, read_boot_id
from fleetsense.edge.link import Link
from fleetsense.edge.outbox import Gap, Outbox
from fleetsense.edge.restarts import BOOT_CLOCK_FILE, RunBook, load_offsets, save_offsets
from fleetsense.edge.retime import HoldPolicy
from fleetsense.edge.sources import Sensors
from fleetsense.edge.systemd import Notifier

from fleetsense.device_config import EdgeConfig

log = logging.getLogger(__name__)

STOP_DRAIN_S = 10.0  # well inside the unit's TimeoutStopSec


@dataclass(frozen=True)
class RunResult:
    imu_batches: int
    baro_batches: int
    imu_samples: int
    published: int
    outbox_depth: int


def open_sensors_for(
    config: EdgeConfig,
    clock_ns: Callable[[], int],
    *,
    simulate: bool,
    sleep_s: Callable[[float], None] | None = None,
    physics: object | None = None,
) -> Sensors:
    """The sensors the config names (its [sensors] bus, else FLEETSENSE_I2C_BUS, else smbus:1); with `simulate`,
    the "sim" backend's chips driving `physics` (firmware-sim's model; default: this vehicle's own simulated
    drive, which the backend builds from the vehicle id) on the given clock (real or virtual)."""
    from fleetsense.edge.hardware_factory import open_sensors

    return open_sensors(
        "sim" if simulate else config.sensors.bus,
        imu_address=config.sensors.imu_address,
        baro_address=config.sensors.baro_address or None,
        imu_rate_hz=config.sampling.imu_rate_hz,
        vehicle_id=config.vehicle_id,
        physics=physics,
        clock_ns=clock_ns,
        sleep_s=sleep_s,
    )


def open_outbox(config: EdgeConfig) -> Outbox:
    settings = config.outbox
    return Outbox(
        config.state_dir / "outbox",
        max_bytes=settings.max_bytes,
        memory_batches=settings.memory_batches,
        commit_batches=settings.commit_batches,
        commit_interval_s=settings.commit_interval_s,
    )


def open_agent(
    config: EdgeConfig, sensors: Sensors, outbox: Outbox, clock: Clock, *, boot_id: str | None = None
) -> tuple[Agent, Link, RunBook]:
    """The agent and its link over one outbox, with the run recorded (RunBook.clean_stop() at a clean stop)."""
    runs = RunBook(config.state_dir)
    offsets_path = config.state_dir / BOOT_CLOCK_FILE
    agent = Agent(
        config, sensors, outbox, clock, boot_id=boot_id, run=runs.record, boot_offsets=load_offsets(offsets_path)
    )
    link = Link(config, outbox, agent.status, prepare=agent.time.prepare)
    agent.on_stored = link.wake

    def on_time_change() -> None:
        # Keep the boot's offset first: batches held for it are re-timed by it even after a restart of the agent.
        try:
            save_offsets(offsets_path, agent.time.offsets())
        except OSError as exc:
            log.warning("cannot keep the clock offset of this boot in %s: %s", offsets_path, exc)
        link.release_held()

    agent.on_time_change = on_time_change
    return agent, link, runs


def run(config: EdgeConfig, *, simulate: bool = False, duration_s: float | None = None) -> RunResult:
    clock = SystemClock(assume_synced=config.clock.assume_synced)
    sensors = open_sensors_for(config, clock.monotonic_ns, simulate=simulate)
    outbox = open_outbox(config)
    agent, link, runs = open_agent(config, sensors, outbox, clock)
    notifier = Notifier()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if duration_s is not None:
        threading.Timer(duration_s, stop.set).start()

    watchdog_s = notifier.watchdog_interval_s()
    last_ping = [time.monotonic()]

    def on_tick() -> None:
        # Pinging from the sampling loop means a hung sampler gets the agent restarted by systemd.
        if watchdog_s is not None and time.monotonic() - last_ping[0] >= watchdog_s:
            notifier.watchdog()
            last_ping[0] = time.monotonic()

    link.start()
    notifier.ready(f"sampling {config.vehicle_id} at {config.sampling.imu_rate_hz} Hz")
    try:
        run_agent(agent, stop=stop, on_tick=on_tick)
    finally:
        notifier.stopping()
        link.stop(drain_timeout_s=STOP_DRAIN_S)
        depth = outbox.stats().depth
        outbox.close()
        sensors.close()
    runs.clean_stop()  # only after a stop that did not raise: an exception out of here is a crash
    return RunResult(
        agent.counts.imu_batches, agent.counts.baro_batches, agent.counts.imu_samples, link.published, depth
    )


def send_outbox(config: EdgeConfig, *, timeout_s: float) -> int:
    """Publish what the outbox holds, without sampling (`fleetsense edge flush`); returns what is left."""
    from fleetsense import __version__
    from fleetsense.status import VehicleStatus

    outbox = open_outbox(config)

    def status(reason: str, gaps: list[Gap]) -> VehicleStatus:
        stats = outbox.stats()
        return VehicleStatus(
            vehicle_id=config.vehicle_id,
            online=True,
            reason=reason,
            agent_version=__version__,
            outbox_depth=stats.depth,
            next_seq=stats.next_seq,
            epoch=outbox.epoch,
            dropped_total=stats.dropped_total,
            dropped_ranges=[(g.first_seq, g.last_seq) for g in gaps],
        )

    # Re-time what a known boot offset can re-time; hold nothing (the operator asked for everything to go now).
    policy = HoldPolicy(read_boot_id(), hold_until_mono_ns=0, offsets=load_offsets(config.state_dir / BOOT_CLOCK_FILE))
    policy.observe(None, time.monotonic_ns())
    link = Link(config, outbox, status, prepare=policy.prepare)
    link.start()
    deadline = time.monotonic() + timeout_s
    while outbox.stats().depth and time.monotonic() < deadline:
        time.sleep(0.05)
    link.stop(drain_timeout_s=max(0.0, deadline - time.monotonic()))
    left = outbox.stats().depth
    outbox.close()
    return left
