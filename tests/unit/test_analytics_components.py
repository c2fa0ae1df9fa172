"""The analytics building blocks on hand-made signals: hysteresis runs, the carried low-pass filter, the score,
altitude, temperature excursions, minute rows, the trip state machine and input checking."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fleetsense.cloud.analytics import (
    VEHICLE_CLASSES,
    AnalysisInputError,
    EnvironmentSettings,
    EventThresholds,
    ScoreWeights,
    VehicleAnalyzer,
    altitude_m,
    driver_score,
    thresholds_for,
)
from fleetsense.cloud.analytics.aggregates import MINUTE_US, MinuteAggregator
from fleetsense.cloud.analytics.environment import TemperatureExcursions
from fleetsense.cloud.analytics.hysteresis import HysteresisDetector
from fleetsense.cloud.analytics.lowpass import CarriedFir, hann_taps
from fleetsense.cloud.analytics.trips import TripSettings, TripTracker, Windows
from fleetsense.sim.vehicle import pressure_at_altitude_pa

T0_US = 1_700_000_020_000_000  # 40 s into a UTC minute


def _times(count: int, period_us: int = 10_000, start_us: int = T0_US) -> np.ndarray:
    return start_us + np.arange(count, dtype=np.int64) * period_us


def _run_all(detector: HysteresisDetector, signal: np.ndarray, batch: int) -> list[tuple[int, int, float]]:
    t = _times(signal.size)
    runs = []
    for i in range(0, signal.size, batch):
        runs += detector.push(t[i : i + batch], signal[i : i + batch], 10_000)
    runs += detector.close()
    return [(r.start_us, r.end_us, r.peak) for r in runs]


def _detector(**overrides: int | float) -> HysteresisDetector:
    settings: dict[str, int | float] = {"enter": 1.0, "exit_level": 0.8, "min_duration_us": 0, "merge_gap_us": 0}
    settings.update(overrides)
    return HysteresisDetector(**settings)  # type: ignore[arg-type]


# -- hysteresis ---------------------------------------------------------------------------------------------------


def test_a_run_enters_at_the_threshold_and_leaves_below_the_exit_level() -> None:
    signal = np.array([0.0, 0.9, 1.1, 1.3, 0.85, 0.9, 0.7, 0.0])
    (run,) = _run_all(_detector(), signal, batch=100)
    assert run == (T0_US + 20_000, T0_US + 60_000, 1.3)  # from the first 1.1 to one period after the last 0.9


def test_a_run_that_never_reaches_the_threshold_is_not_an_event() -> None:
    assert _run_all(_detector(), np.array([0.0, 0.9, 0.95, 0.9, 0.0]), batch=100) == []


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 100])
def test_runs_are_the_same_however_the_signal_is_batched(batch: int) -> None:
    rng = np.random.default_rng(5)
    signal = np.convolve(rng.normal(0.0, 1.0, 400), np.ones(8) / 4, mode="same")
    expected = _run_all(_detector(merge_gap_us=20_000), signal, batch=1000)
    assert len(expected) >= 5
    assert _run_all(_detector(merge_gap_us=20_000), signal, batch=batch) == expected


def test_short_dips_are_bridged_and_short_runs_dropped() -> None:
    dip = np.array([0.0, 1.2, 1.2, 0.1, 1.2, 1.2, 0.0, 0.0, 0.0])
    assert len(_run_all(_detector(), dip, batch=100)) == 2
    assert len(_run_all(_detector(merge_gap_us=10_000), dip, batch=100)) == 1
    assert _run_all(_detector(min_duration_us=30_000), dip, batch=100) == []


def test_the_peak_payload_is_the_callers_row_at_the_peak() -> None:
    detector = _detector()
    payload = np.arange(12, dtype=np.float64).reshape(4, 3)
    detector.push(_times(4), np.array([1.0, 2.0, 1.5, 1.0]), 10_000, payload=payload)
    (run,) = detector.close()
    assert run.peak_payload == (3.0, 4.0, 5.0)


def test_exit_above_enter_is_refused() -> None:
    with pytest.raises(ValueError, match="exit"):
        _detector(exit_level=1.5)


# -- low-pass -----------------------------------------------------------------------------------------------------


def _filter_all(values: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    fir = CarriedFir(hann_taps(8), channels=2, filtered_channels=1)
    t = _times(values.shape[0])
    chunks = [fir.push(t[i : i + batch], values[i : i + batch]) for i in range(0, values.shape[0], batch)]
    chunks.append(fir.flush())
    return np.concatenate([c.t_us for c in chunks]), np.concatenate([c.filtered for c in chunks])


@pytest.mark.parametrize("batch", [1, 5, 16, 17, 100])
def test_the_filter_output_does_not_depend_on_batching_and_loses_no_sample(batch: int) -> None:
    values = np.random.default_rng(2).normal(size=(333, 2))
    t_whole, whole = _filter_all(values, 1000)
    t_cut, cut = _filter_all(values, batch)
    np.testing.assert_array_equal(t_cut, _times(333))
    np.testing.assert_array_equal(t_whole, t_cut)
    np.testing.assert_allclose(cut, whole, rtol=0, atol=1e-12)


def test_the_filter_keeps_manoeuvres_and_removes_wheel_hop_vibration() -> None:
    t_s = np.arange(1000) / 100.0
    steady = np.full(1000, 3.0)
    vibration = 0.5 * np.sin(2 * math.pi * 11.0 * t_s)
    _, filtered = _filter_all(np.column_stack((steady + vibration, steady)), 100)
    middle = filtered[100:900, 0]
    assert np.abs(middle - 3.0).max() < 0.01  # 0.5 m/s^2 at 11 Hz -> under 0.01, DC gain exactly 1
    assert hann_taps(8).sum() == pytest.approx(1.0)


# -- score --------------------------------------------------------------------------------------------------------


def test_the_score_worked_example_of_the_docs() -> None:
    # 1 harsh brake and 2 harsh accelerations in 30 min of driving: (1 + 2 * 0.5) / 0.5 h = 4 per hour.
    score = driver_score({"harsh_brake": 1, "harsh_acceleration": 2}, 1800.0)
    assert score == pytest.approx(100 * 2 ** (-4 / 5), abs=0.01) == pytest.approx(57.43, abs=0.01)


def test_the_score_is_100_when_clean_falls_with_events_and_ignores_bumps() -> None:
    assert driver_score({}, 3600.0) == 100.0
    assert driver_score({"bump": 20}, 3600.0) == 100.0
    scores = [driver_score({"harsh_corner_left": n}, 3600.0) for n in range(0, 60, 5)]
    assert scores == sorted(scores, reverse=True) and 0.0 <= scores[-1] < 1.0


def test_a_short_trip_is_scored_over_the_exposure_floor() -> None:
    weights = ScoreWeights()
    assert driver_score({"harsh_brake": 1}, 120.0) == driver_score({"harsh_brake": 1}, weights.min_exposure_h * 3600)


def test_an_unknown_kind_has_no_weight() -> None:
    with pytest.raises(ValueError, match="no score weight"):
        driver_score({"speeding": 1}, 3600.0)


# -- environment --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("height_m", [-50.0, 0.0, 123.4, 1500.0])
def test_altitude_inverts_the_simulators_barometric_formula(height_m: float) -> None:
    pressure = np.array([pressure_at_altitude_pa(height_m)])
    assert float(altitude_m(pressure)[0]) == pytest.approx(height_m, abs=1e-6)


def _temperatures(values_c: list[float], period_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    return _times(len(values_c), int(period_s * 1e6)), np.array(values_c)


def test_a_hot_cabin_for_long_enough_is_one_excursion_with_its_peak() -> None:
    settings = EnvironmentSettings(min_duration_s=60.0, bridge_s=20.0)
    detector = TemperatureExcursions(settings)
    values = [30.0] * 10 + [36.0] * 50 + [34.5] * 10 + [38.0] * 50 + [30.0] * 40  # 34.5 is within the hysteresis
    t, temps = _temperatures(values)
    events = []
    for i in range(0, len(values), 10):
        events += detector.push(t[i : i + 10], temps[i : i + 10], 1_000_000)
    (event,) = events
    assert (event.direction, event.peak_c, event.bound_c) == ("high", 38.0, 35.0)
    assert event.start_us == T0_US + 10_000_000 and event.duration_s == pytest.approx(110.0)


def test_a_short_or_cold_spell_is_reported_only_when_it_lasts() -> None:
    detector = TemperatureExcursions(EnvironmentSettings(min_duration_s=60.0, bridge_s=5.0))
    t, temps = _temperatures([20.0] * 5 + [40.0] * 30 + [20.0] * 20 + [-3.0] * 90 + [10.0] * 10)
    (event,) = detector.push(t, temps, 1_000_000)
    assert (event.direction, event.peak_c, event.bound_c) == ("low", -3.0, 2.0)


# -- minute rows --------------------------------------------------------------------------------------------------


def test_a_batch_across_a_minute_boundary_touches_two_rows() -> None:
    aggregator = MinuteAggregator()
    t = _times(100, start_us=T0_US + 19_500_000)  # 59.5 s .. 60.49 s into the minute
    longitudinal = np.linspace(-0.5, 0.2, 100)
    aggregator.add_imu(t, longitudinal, np.zeros(100), np.full(100, 0.1))
    minutes, days = aggregator.take_touched()
    assert [m.sample_count for m in minutes] == [50, 50]
    assert (minutes[0].max_longitudinal_g, minutes[1].max_longitudinal_g) == (0.5, 0.2)
    assert minutes[1].minute_start_us - minutes[0].minute_start_us == MINUTE_US
    assert minutes[0].rms_vertical_g == pytest.approx(0.1)
    assert days == []  # nothing moved, no event
    assert aggregator.take_touched() == ([], [])


def test_rows_outside_the_kept_minutes_are_not_overwritten_with_partial_totals() -> None:
    aggregator = MinuteAggregator(keep_minutes=2)
    for minute in range(4):
        aggregator.add_imu(_times(10, start_us=T0_US + minute * MINUTE_US), None, None, None)
    aggregator.take_touched()
    aggregator.add_event("harsh_brake", T0_US)  # three minutes late
    minutes, (day,) = aggregator.take_touched()
    assert minutes == [] and aggregator.late_updates_dropped == 1
    assert day.event_counts["harsh_brake"] == 1  # today's row is still open


def test_altitude_change_telescopes_across_minutes_and_restarts_after_a_gap() -> None:
    aggregator = MinuteAggregator()
    t = _times(1200, period_us=100_000)  # 120 s at 10 Hz, from 40 s into a minute
    heights = np.linspace(100.0, 160.0, 1200)
    aggregator.add_environment(t, np.full(1200, 21.0), heights, gap=False)
    minutes, _ = aggregator.take_touched()
    assert sum(m.altitude_change_m or 0.0 for m in minutes) == pytest.approx(heights[-1] - heights[0])
    assert all(m.mean_temperature_c == 21.0 for m in minutes)
    later = t[-1] + 600_000_000 + np.arange(10, dtype=np.int64) * 100_000
    aggregator.add_environment(later, np.full(10, 21.0), np.full(10, 500.0), gap=True)
    (row,), _ = aggregator.take_touched()
    assert row.altitude_change_m == 0.0  # not the 340 m between the last reading before the gap and this one


# -- trips state machine ------------------------------------------------------------------------------------------


def _windows(pattern: str, start_us: int = T0_US) -> Windows:
    """One character per 0.25 s window: '#' active, '.' quiet."""
    starts = [start_us + k * 250_000 for k in range(len(pattern))]
    return Windows(starts, [start + 250_000 for start in starts], [c == "#" for c in pattern])


def test_a_door_slam_during_a_stop_is_not_a_departure() -> None:
    tracker = TripTracker(TripSettings())
    stops, trips, moving = tracker.push(_windows("." * 40 + "##" + "." * 80 + "#" * 8))
    assert not trips
    assert [(s.start_us, s.end_us) for s in stops] == [(T0_US, T0_US + 122 * 250_000)]  # one stop, slam and all
    assert tracker.trip_open and tracker.trip_start_us == T0_US + 122 * 250_000
    assert moving[0][0] == tracker.trip_start_us


def test_settling_just_after_stopping_moves_the_stop_start() -> None:
    tracker = TripTracker(TripSettings())
    tracker.push(_windows("#" * 40))  # driving
    stops, _, _ = tracker.push(_windows("." * 16 + "##" + "." * 60 + "#" * 8, start_us=T0_US + 10_000_000))
    assert [s.start_us for s in stops] == [T0_US + 10_000_000 + 18 * 250_000]  # after the final jerk at 4 s


def test_quiet_shorter_than_a_stop_keeps_moving() -> None:
    tracker = TripTracker(TripSettings())
    tracker.push(_windows("." * 20 + "#" * 80 + "." * 10 + "#" * 10))
    assert tracker.moving and tracker.trip_stops == 0


# -- configuration and input --------------------------------------------------------------------------------------


def test_vehicle_classes_are_data_and_unknown_ones_are_explained() -> None:
    assert set(VEHICLE_CLASSES) == {"car", "van", "truck"}
    assert thresholds_for("van") == EventThresholds()
    assert VEHICLE_CLASSES["truck"].harsh_brake_g < VEHICLE_CLASSES["van"].harsh_brake_g
    with pytest.raises(ValueError, match="unknown vehicle class 'bus'"):
        thresholds_for("bus")
    with pytest.raises(ValueError, match="positive"):
        EventThresholds(bump_g=0.0)


def test_mismatched_arrays_are_refused_with_what_to_fix() -> None:
    analyzer = VehicleAnalyzer()
    with pytest.raises(AnalysisInputError, match=r"accel_m_s2 has shape \(10, 2\)"):
        analyzer.on_imu(_times(10), np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(AnalysisInputError, match="integer array"):
        analyzer.on_imu(_times(10).astype(float), np.zeros((10, 3)), np.zeros((10, 3)))
    with pytest.raises(AnalysisInputError, match="strictly increasing"):
        analyzer.on_environment(_times(3)[::-1], np.zeros(3), np.zeros(3))


def test_an_empty_batch_is_harmless() -> None:
    output = VehicleAnalyzer().on_imu(np.empty(0, dtype=np.int64), np.empty((0, 3)), np.empty((0, 3)))
    assert output.events == [] and output.minutes == [] and not output.calibration.settled
