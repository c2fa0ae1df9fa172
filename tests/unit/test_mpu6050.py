"""The MPU-6050 driver against the register-level simulated chip in virtual time, and (parametrised by backend)
against a real chip on a bench when FLEETSENSE_I2C_BUS=smbus:1 (the unit lying still, any orientation)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import adafruit_mpu6050
import pytest
from fleetsense.edge.i2c import BusioI2C
from fleetsense.edge.sensors import mpu6050_registers as reg
from fleetsense.edge.sensors.bus import DeviceAbsentError, WrongChipError
from fleetsense.edge.sensors.mpu6050 import Mpu6050Config
from fleetsense.edge.sources import Health, SampleBlock
from fleetsense.sim.bus import Fault

from fleetsense.errors import ConfigError
from fleetsense.quantities import STANDARD_GRAVITY_M_S2

from .test_sensor_rig import BACKENDS, Rig, Swaying, open_rig, within_half_count

G = STANDARD_GRAVITY_M_S2
MS = 1_000_000  # ns


@pytest.fixture(params=BACKENDS)
def rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    with open_rig(request.param, monkeypatch) as opened:
        yield opened


@pytest.fixture
def swaying(monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    with open_rig("sim", monkeypatch, physics=Swaying()) as opened:
        yield opened


def samples_of(blocks: list[SampleBlock]) -> list[tuple[int, tuple[int, ...]]]:
    """(time, counts) of every sample, checking each block is internally a regular series."""
    return [(b.first_time_ns + i * b.period_ns, c) for b in blocks for i, c in enumerate(b.counts)]


def assert_matches_physics(rig: Rig, scales: tuple[float, ...], samples: list[tuple[int, tuple[int, ...]]]) -> None:
    for t_ns, counts in samples:
        reading = rig.physics.imu_at(t_ns / 1e9)
        expected = (*reading.specific_force_m_s2, *reading.angular_rate_rad_s)
        for count, scale, value in zip(counts, scales, expected, strict=True):
            assert within_half_count(count, scale, value), (t_ns, counts, expected)


# Both backends.


def test_the_chip_answers_with_its_id(rig: Rig) -> None:
    rig.imu().probe()


def test_unmodified_adafruit_driver_reads_one_g_at_rest(rig: Rig) -> None:
    mpu = adafruit_mpu6050.MPU6050(BusioI2C(rig.bus))
    rig.advance(0.05)
    acceleration, rotation = mpu.acceleration, mpu.gyro
    if rig.simulated:
        assert acceleration == pytest.approx((0.0, 0.0, G), abs=1e-3)
        assert rotation == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)
        assert mpu.temperature == pytest.approx(30.0, abs=0.01)
    else:
        assert math.dist(acceleration, (0, 0, 0)) == pytest.approx(G, abs=1.0)
        assert max(abs(w) for w in rotation) < 0.1  # rad/s: lying still, within the gyro's zero-rate offset
        assert -20.0 < mpu.temperature < 70.0


def test_fifo_gives_rate_times_duration_samples_on_one_timeline(rig: Rig) -> None:
    imu = rig.imu(rate_hz=100)
    imu.start(rig.clock_ns())
    started_ns = rig.clock_ns()  # start() itself takes time (Adafruit's set-up sleeps ~0.35 s)
    blocks = [block for _ in range(20) for block in imu.drain(rig.advance(0.1))]
    samples = samples_of(blocks)
    times = [t for t, _ in samples]
    assert all(b - a == imu.period_ns for a, b in itertools.pairwise(times))  # no gaps, no jitter
    assert imu.status.fifo_overflows == 0 and imu.status.health is Health.OK
    if rig.simulated:
        assert len(samples) == 200
        assert times[0] == started_ns + 10 * MS  # anchored at the FIFO enable, one period later
        assert_matches_physics(rig, imu.scales, samples)
    else:
        assert 195 <= len(samples) <= 205  # the chip's clock is specified to ±1-2 %
        assert started_ns - 20 * MS <= times[0] <= started_ns + 30 * MS
        for _, counts in samples:
            assert math.dist([c * s for c, s in zip(counts[:3], imu.scales, strict=False)], (0, 0, 0)) == (
                pytest.approx(G, abs=1.5)
            )


def test_polled_fallback_reads_the_data_registers(rig: Rig) -> None:
    imu = rig.imu(polled=True)
    imu.start(rig.clock_ns())
    now_ns = rig.advance(0.05)
    (block,) = imu.drain(now_ns)
    (counts,) = block.counts
    assert block.period_ns == 10 * MS
    if rig.simulated:
        assert block.first_time_ns == now_ns
        assert counts == (0, 0, 8192, 0, 0, 0)  # 1 g at ±4 g is 8192 counts
    else:
        assert math.dist([c * s for c, s in zip(counts[:3], imu.scales, strict=False)], (0, 0, 0)) == (
            pytest.approx(G, abs=1.5)
        )


# Simulated chip only: exact timing, faults.


def test_samples_match_the_physics_at_their_exact_times_across_irregular_drains(swaying: Rig) -> None:
    imu = swaying.imu(rate_hz=200)
    imu.start(swaying.clock_ns())
    anchor_ns = swaying.clock_ns()
    blocks = []
    for step_ms in [93, 117, 100, 41, 160, 99, 101] * 5:  # the agent's loop is not punctual: 3.555 s in all
        blocks += imu.drain(swaying.advance(step_ms / 1000))
    samples = samples_of(blocks)
    assert len(samples) == 711
    assert [t for t, _ in samples] == [anchor_ns + (i + 1) * 5 * MS for i in range(len(samples))]
    assert_matches_physics(swaying, imu.scales, samples)
    assert len(blocks) == 35 and imu.timeline_resyncs == 0


def test_overflow_is_detected_counted_and_recovered_on_a_new_anchor(swaying: Rig) -> None:
    imu = swaying.imu(rate_hz=100)
    imu.start(swaying.clock_ns())
    assert len(samples_of(imu.drain(swaying.advance(0.1)))) == 10
    late_ns = swaying.advance(2.0)  # 200 samples = 2400 bytes into a 1024-byte FIFO
    assert imu.drain(late_ns) == []
    assert (imu.status.fifo_overflows, imu.status.samples_lost) == (1, 200)
    blocks = imu.drain(swaying.advance(0.5))
    samples = samples_of(blocks)
    assert len(samples) == 50 and samples[0][0] == late_ns + 10 * MS  # re-anchored at the FIFO reset
    assert_matches_physics(swaying, imu.scales, samples)
    assert imu.status.health is Health.OK


def test_overflow_is_detected_from_the_count_when_int_status_does_not_latch(swaying: Rig) -> None:
    imu = swaying.imu()
    imu.start(swaying.clock_ns())
    swaying.bus.write_byte_data(0x68, reg.INT_ENABLE, 0)  # now INT_STATUS never shows FIFO_OFLOW
    assert imu.drain(swaying.advance(1.0)) == []
    assert imu.status.fifo_overflows == 1
    assert len(samples_of(imu.drain(swaying.advance(0.2)))) == 20


def test_a_partial_sample_is_left_for_the_next_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    with open_rig("sim", monkeypatch, physics=Swaying(), mpu={"fifo_write_ns_per_byte": 100_000}) as rig:
        imu = rig.imu(rate_hz=100)
        imu.start(rig.clock_ns())
        anchor_ns = rig.clock_ns()
        first = samples_of(imu.drain(rig.advance(0.0305)))  # sample 3 has bytes 0..5 in the FIFO so far
        assert [t for t, _ in first] == [anchor_ns + 10 * MS, anchor_ns + 20 * MS]
        assert len(rig.mpu_chip.fifo) == 6
        second = samples_of(imu.drain(rig.advance(0.020)))
        assert [t for t, _ in second] == [anchor_ns + 30 * MS, anchor_ns + 40 * MS]
        assert_matches_physics(rig, imu.scales, first + second)


def test_transient_errors_are_retried_without_losing_anything(swaying: Rig) -> None:
    imu = swaying.imu()
    imu.start(swaying.clock_ns())
    assert swaying.sim_bus is not None
    swaying.sim_bus.inject_fault(0x68, Fault(times=2))
    assert len(samples_of(imu.drain(swaying.advance(0.1)))) == 10
    assert imu.status.io_errors == 2 and imu.status.health is Health.OK


def test_persistent_errors_degrade_without_raising_then_recover_on_the_same_timeline(swaying: Rig) -> None:
    imu = swaying.imu()
    imu.start(swaying.clock_ns())
    anchor_ns = swaying.clock_ns()
    assert swaying.sim_bus is not None
    samples = samples_of(imu.drain(swaying.advance(0.1)))
    swaying.sim_bus.inject_fault(0x68, Fault(times=None))
    for _ in range(3):
        assert imu.drain(swaying.advance(0.1)) == []
    assert imu.status.health is Health.DEGRADED
    assert imu.status.last_error is not None and "0x68" in imu.status.last_error and "sim" in imu.status.last_error
    assert imu.status.io_errors == 3 * 4  # each drain: one attempt and three retries
    swaying.sim_bus.clear_faults()
    recovered_ns = swaying.advance(0.1)  # 0.5 s in all, plus the retries' backoff sleeps (3 x 14 ms)
    samples += samples_of(imu.drain(recovered_ns))
    assert imu.status.health is Health.OK and imu.status.samples_lost == 0
    times = [t for t, _ in samples]
    assert len(samples) == (recovered_ns - anchor_ns) // (10 * MS) == 54
    assert all(b - a == 10 * MS for a, b in itertools.pairwise(times))
    assert_matches_physics(swaying, imu.scales, samples)


def test_a_power_glitch_while_unreachable_is_noticed_and_the_chip_set_up_again(swaying: Rig) -> None:
    imu = swaying.imu()
    imu.start(swaying.clock_ns())
    anchor_ns = swaying.clock_ns()
    assert swaying.sim_bus is not None
    swaying.sim_bus.inject_fault(0x68, Fault(times=None))
    assert imu.drain(swaying.advance(0.1)) == []
    swaying.mpu_chip.power_cycle()  # back to power-on defaults: asleep, FIFO off
    swaying.sim_bus.clear_faults()
    recovered_ns = swaying.advance(0.1)
    assert imu.drain(recovered_ns) == [] and imu.status.health is Health.OK
    set_up_again_ns = swaying.clock_ns()  # after Adafruit's set-up sleeps
    samples = samples_of(imu.drain(swaying.advance(0.1)))
    assert len(samples) == 10 and samples[0][0] == set_up_again_ns + 10 * MS
    assert imu.status.samples_lost == (recovered_ns - anchor_ns) // (10 * MS)  # all since the last drain
    assert_matches_physics(swaying, imu.scales, samples)


def test_a_failed_fifo_read_is_not_retried_but_restarts_the_fifo(swaying: Rig) -> None:
    imu = swaying.imu()
    imu.start(swaying.clock_ns())
    assert swaying.sim_bus is not None
    swaying.sim_bus.inject_fault(0x68, Fault(when=lambda written: written == bytes([reg.FIFO_R_W])))
    failed_ns = swaying.advance(0.1)
    assert imu.drain(failed_ns) == []
    assert imu.status.samples_lost == 10 and imu.status.io_errors == 1 and imu.status.health is Health.OK
    samples = samples_of(imu.drain(swaying.advance(0.1)))
    assert len(samples) == 10 and samples[0][0] == failed_ns + 10 * MS


def test_a_chip_clock_off_by_two_percent_is_re_anchored_and_never_far_off(monkeypatch: pytest.MonkeyPatch) -> None:
    with open_rig("sim", monkeypatch, mpu={"rate_error_ppm": 20_000}) as rig:
        imu = rig.imu(rate_hz=100)
        imu.start(rig.clock_ns())
        anchor_ns = rig.clock_ns()
        samples = samples_of([b for _ in range(100) for b in imu.drain(rig.advance(0.1))])
        true_period_ns = 10 * MS / 1.02
        assert len(samples) == int((rig.clock_ns() - anchor_ns) // true_period_ns) == 1020  # nothing lost
        worst_ns = max(abs(t - (anchor_ns + round((i + 1) * true_period_ns))) for i, (t, _) in enumerate(samples))
        assert imu.timeline_resyncs >= 3
        assert worst_ns <= imu.config.resync_tolerance_ns + 2 * 10 * MS


def test_an_absent_chip_names_the_bus_and_address_and_what_to_check(swaying: Rig) -> None:
    assert swaying.sim_bus is not None
    del swaying.sim_bus.devices[0x68]
    with pytest.raises(DeviceAbsentError) as caught:
        swaying.imu().start(swaying.clock_ns())
    assert "0x68" in caught.value.message and "sim" in caught.value.message
    assert caught.value.hint is not None and "wiring" in caught.value.hint and "0x69" in caught.value.hint


def test_a_look_alike_chip_is_refused_saying_what_was_read(monkeypatch: pytest.MonkeyPatch) -> None:
    with open_rig("sim", monkeypatch, mpu={"who_am_i": 0x70}) as rig, pytest.raises(WrongChipError) as caught:
        rig.imu().probe()
    assert "read 0x70, expected 0x68" in caught.value.message and "MPU-6500" in caught.value.message


def test_chip_settings_follow_the_configured_rate_and_ranges(swaying: Rig) -> None:
    imu = swaying.imu(rate_hz=100, accel_range_g=8, gyro_range_dps=2000)
    imu.start(swaying.clock_ns())
    registers = swaying.bus.read_i2c_block_data(0x68, reg.SMPLRT_DIV, 4)
    assert registers == bytes([9, 3, reg.FS_SEL.value(3), reg.AFS_SEL.value(2)])  # 1 kHz / (1 + 9), 44 Hz DLPF
    assert imu.scales[:3] == (G / 4096,) * 3
    assert imu.scales[3] == pytest.approx(math.radians(1 / 16.4))


def test_rate_settings_pick_filter_and_divider() -> None:
    assert reg.rate_settings(100) == (3, 9)
    assert reg.rate_settings(1000) == (1, 0)
    assert reg.rate_settings(4) == (6, 249)
    assert reg.sample_period_ns(*reg.rate_settings(250)) == 4 * MS
    with pytest.raises(ConfigError, match="1000 Hz / n"):
        Mpu6050Config(rate_hz=300)
    with pytest.raises(ConfigError):
        Mpu6050Config(accel_range_g=3)
