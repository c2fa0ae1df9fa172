"""The edge agent's main loop: one batch per window, sequenced, encoded and published with QoS 1."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetsense.edge.publisher import MqttPublisher, PublishError
from fleetsense.edge.sampling import AccelSampler
from fleetsense.edge.sequence import SequenceCounter

from fleetsense import wire
from fleetsense.device_config import EdgeConfig
from fleetsense.ids import telemetry_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunLimits:
    max_windows: int | None = None  # stop after this many batches (tests, demos)
    realtime: bool = True  # False: produce windows back to back, timestamped in the recent past
    flush_timeout_s: float = 60.0


@dataclass
class RunReport:
    batches: int = 0
    samples: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    unacknowledged: int = 0


def build_batch(config: EdgeConfig, sampler: AccelSampler, seq: int, start_time_us: int) -> wire.Batch:
    sampling = config.sampling
    samples = sampler.samples_for_window(start_time_us, sampling.samples_per_window, sampling.sample_period_us)
    scale = sampler.scale_m_s2_per_count
    return wire.Batch(
        vehicle_id=config.vehicle_id,
        seq=seq,
        start_time_us=start_time_us,
        sample_period_us=sampling.sample_period_us,
        kind=wire.Kind.ACCEL,
        scales=(scale, scale, scale),
        samples=tuple(samples),
    )


def run(
    config: EdgeConfig,
    sampler: AccelSampler,
    *,
    limits: RunLimits = RunLimits(),
    wall_clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    monotonic_s: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunReport:
    sampling = config.sampling
    window_us = sampling.samples_per_window * sampling.sample_period_us
    sequence = SequenceCounter(config.state_dir / "sequence")
    publisher = MqttPublisher(config.broker, client_id=config.vehicle_id)
    publisher.connect()
    topic = telemetry_topic(config.vehicle_id)
    report = RunReport()
    # Windows are anchored once to UTC and then advanced by the monotonic clock, so an NTP step during the
    # run cannot make batches overlap or leave holes.
    # Without real-time pacing, windows are stamped in the recent past so no sample lies in the future.
    backdate_us = 0 if limits.realtime else (limits.max_windows or 1) * window_us
    anchor_us = wall_clock_us() - backdate_us
    anchor_mono = monotonic_s()
    window = 0
    try:
        while not should_stop() and (limits.max_windows is None or window < limits.max_windows):
            start_us = anchor_us + window * window_us
            if limits.realtime:
                # A window is published once it has fully elapsed.
                wait = anchor_mono + (window + 1) * window_us / 1e6 - monotonic_s()
                if wait > 0:
                    sleep(wait)
            seq = sequence.allocate()
            batch = build_batch(config, sampler, seq, start_us)
            publisher.publish(topic, wire.encode(batch))
            report.batches += 1
            report.samples += len(batch.samples)
            report.first_seq = seq if report.first_seq is None else report.first_seq
            report.last_seq = seq
            window += 1
        if not publisher.flush(limits.flush_timeout_s):
            log.error(
                "%d batches still without PUBACK after %.0f s",
                publisher.unacknowledged(),
                limits.flush_timeout_s,
            )
        report.unacknowledged = publisher.unacknowledged()
    finally:
        publisher.close()
    if report.unacknowledged:
        raise PublishError(
            f"{report.unacknowledged} of {report.batches} batches were not acknowledged by the broker",
            hint="check the broker's log and this vehicle's topic permissions",
        )
    return report
