"""Edge pieces that need no broker: sequence numbers, batch building, the simulated accelerometer."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleetsense.edge.agent import build_batch
from fleetsense.edge.sampling import simulated_sampler
from fleetsense.edge.sequence import SequenceCounter
from fleetsense.sim.accelerometer import COUNTS_PER_G_2G_RANGE, to_counts

from fleetsense import wire
from fleetsense.device_config import BrokerConfig, EdgeConfig, SamplingConfig


def test_sequence_numbers_continue_across_restarts(tmp_path: Path) -> None:
    first = SequenceCounter(tmp_path / "seq")
    assert [first.allocate() for _ in range(3)] == [0, 1, 2]
    again = SequenceCounter(tmp_path / "seq")  # a restarted agent
    assert again.allocate() == 3


def test_a_batch_holds_one_window_at_the_configured_rate(tmp_path: Path) -> None:
    config = EdgeConfig(
        vehicle_id="van-001",
        broker=BrokerConfig(host="h", username="van-001", password="p"),
        sampling=SamplingConfig(imu_rate_hz=100, batch_window_s=1.0),
        state_dir=tmp_path,
    )
    batch = build_batch(config, simulated_sampler("van-001"), seq=5, start_time_us=1_000_000)
    assert len(batch.samples) == 100
    assert batch.sample_period_us == 10_000
    decoded = wire.decode(wire.encode(batch))
    assert decoded.samples == batch.samples
    # Scales travel as float32: equal to 7 significant digits, far finer than the sensor's noise.
    assert decoded.scales == pytest.approx(batch.scales, rel=1e-7)


def test_simulated_van_at_rest_reads_about_one_g_down() -> None:
    samples = simulated_sampler("van-001").samples_for_window(0, 200, 10_000)
    mean_z = sum(s[2] for s in samples) / len(samples)
    assert abs(mean_z - COUNTS_PER_G_2G_RANGE) < 0.05 * COUNTS_PER_G_2G_RANGE


def test_simulation_is_reproducible_and_differs_per_vehicle() -> None:
    a = simulated_sampler("van-001").samples_for_window(0, 10, 10_000)
    assert a == simulated_sampler("van-001").samples_for_window(0, 10, 10_000)
    assert a != simulated_sampler("van-002").samples_for_window(0, 10, 10_000)


def test_counts_saturate_like_an_adc() -> None:
    assert to_counts(1e6) == 32767
    assert to_counts(-1e6) == -32768
