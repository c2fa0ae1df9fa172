"""Running the real edge agent on simulated chips in virtual time: minutes of driving recorded into the
agent's outbox in a fraction of a second, for tests, demos and the load generator."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fleetsense.device_config import EdgeConfig
from fleetsense.edge.agent import Agent
from fleetsense.edge.outbox import Outbox
from fleetsense.edge.runtime import open_sensors_for
from fleetsense.sim.bus import VirtualClock
from fleetsense.sim.fleet import ClockShifted
from fleetsense.sim.vehicle import Vehicle


@dataclass
class VirtualWallClock:
    """The agent's Clock over a VirtualClock: wall time = start_wall + virtual elapsed; always synced."""

    clock: VirtualClock
    start_mono_ns: int
    start_wall_ns: int

    def monotonic_ns(self) -> int:
        return self.clock.now_ns()

    def wall_ns(self) -> int:
        return self.start_wall_ns + (self.clock.now_ns() - self.start_mono_ns)

    def synced(self) -> bool:
        return True


@dataclass(frozen=True)
class RecordedDrive:
    imu_batches: int
    baro_batches: int
    imu_samples: int
    first_seq: int
    next_seq: int


def record_drive(
    config: EdgeConfig, *, seconds: float, start_wall_ns: int | None = None, vehicle: Vehicle | None = None
) -> RecordedDrive:
    """Drive for `seconds` of virtual time; every batch lands in the vehicle's outbox, nothing is published.

    `vehicle` replaces the vehicle id's own random drive (e.g. a scripted drive with known ground truth); its
    model time 0 is the agent's start, which is `start_wall_ns` in UTC. By default the drive ends now, so no
    sample lies in the future."""
    clock = VirtualClock()
    wall = VirtualWallClock(clock, clock.now_ns(), start_wall_ns or time.time_ns() - int(seconds * 1e9))
    physics = ClockShifted(vehicle, start_ns=clock.now_ns()) if vehicle else None
    sensors = open_sensors_for(config, clock.now_ns, simulate=True, sleep_s=clock.sleep, physics=physics)
    outbox = Outbox(config.state_dir / "outbox", max_bytes=config.outbox.max_bytes)
    first_seq = outbox.stats().next_seq
    agent = Agent(config, sensors, outbox, wall)
    agent.start()
    end_ns = agent.started_ns + int(seconds * 1e9)
    while True:
        wake = agent.tick(clock.now_ns())
        if wake > end_ns:
            break
        clock.advance(ns=wake - clock.now_ns())
    next_seq = outbox.stats().next_seq
    outbox.close()
    sensors.close()
    return RecordedDrive(
        agent.counts.imu_batches, agent.counts.baro_batches, agent.counts.imu_samples, first_seq, next_seq
    )
