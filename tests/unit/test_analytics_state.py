"""The analyzer as the job keeps it: pickled into keyed state after every batch and unpickled before the next. Its
pickle must be small and cheap (no numpy arrays, no configuration objects below the analyzer), and a restored
analyzer must carry on exactly as the original would, whatever was open at the cut."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import numpy as np
import pytest
from fleetsense.cloud.analytics import (
    AnalysisInputError,
    AnalysisOutput,
    AnalyzerConfig,
    EnvironmentSettings,
    EventThresholds,
    MinuteAggregate,
    TripSettings,
    VehicleAnalyzer,
)

from fleetsense import event_kinds
from tests.unit.test_analytics_drives import EPOCH_US, RATE_HZ, Recording, random_recording, scripted_recording

# Measured ~2.1-2.3 KB for a vehicle that has driven a few minutes (the filter's 16 carried samples are 0.9 KB of
# it); the job's whole per-vehicle state must stay near 3 KB.
MAX_PICKLE_BYTES = 2_600


def _batches(recording: Recording, start: int = 0, stop: int | None = None) -> Iterator[tuple[np.ndarray, ...]]:
    end = recording.t_us.size if stop is None else stop
    for first in range(start, end, RATE_HZ):
        part = slice(first, min(first + RATE_HZ, end))
        yield recording.t_us[part], recording.accel_m_s2[part], recording.gyro_rad_s[part]


def _drive(analyzer: VehicleAnalyzer, recording: Recording, *, pickle_each_batch: bool) -> list[AnalysisOutput]:
    """Feed every batch, then flush; with `pickle_each_batch`, through a pickle round trip before each call, as
    the job does."""
    outputs = []
    for t_us, accel, gyro in _batches(recording):
        if pickle_each_batch:
            analyzer = pickle.loads(pickle.dumps(analyzer))
        outputs.append(analyzer.on_imu(t_us, accel, gyro))
    if pickle_each_batch:
        analyzer = pickle.loads(pickle.dumps(analyzer))
    outputs.append(analyzer.flush())
    return outputs


@pytest.mark.parametrize("vehicle_class", ["van", "truck"])
def test_a_round_trip_before_every_batch_changes_no_output(vehicle_class: str) -> None:
    """The scripted drive cuts through everything that carries over between batches: the filter tail, harsh
    events and a bump open across batch edges, candidates remembered before calibration (one recovered), the
    stop, running sums and minute rows."""
    recording = scripted_recording(1)
    config = AnalyzerConfig(vehicle_class=vehicle_class)
    plain = _drive(VehicleAnalyzer(config), recording, pickle_each_batch=False)
    pickled = _drive(VehicleAnalyzer(config), recording, pickle_each_batch=True)
    assert pickled == plain
    assert any(e.recovered for o in plain for e in o.events) and sum(len(o.events) for o in plain) >= 8


def test_a_pickled_analyzer_after_a_drive_is_small_and_carries_on_identically() -> None:
    recording = random_recording(3, 600.0)
    analyzer = VehicleAnalyzer()
    cut = 300 * RATE_HZ
    for t_us, accel, gyro in _batches(recording, stop=cut):
        analyzer.on_imu(t_us, accel, gyro)
    blob = pickle.dumps(analyzer)
    assert len(blob) < MAX_PICKLE_BYTES
    assert b"numpy" not in blob and b"AnalyzerConfig" not in blob  # the two things that made it 8 KB and slow
    restored = pickle.loads(blob)
    for t_us, accel, gyro in _batches(recording, start=cut):
        assert restored.on_imu(t_us, accel, gyro) == analyzer.on_imu(t_us, accel, gyro)
    assert restored.flush() == analyzer.flush()
    assert len(pickle.dumps(restored)) < MAX_PICKLE_BYTES


def test_an_open_temperature_excursion_survives_a_round_trip() -> None:
    settings = EnvironmentSettings(min_duration_s=30.0, bridge_s=5.0)
    config = AnalyzerConfig(environment=settings)
    plain, pickled = VehicleAnalyzer(config), VehicleAnalyzer(config)
    outputs: list[tuple[AnalysisOutput, AnalysisOutput]] = []
    for second in range(120):
        t_us = EPOCH_US + second * 1_000_000 + np.arange(10, dtype=np.int64) * 100_000
        temperature_c = np.full(10, 40.0 if 20 <= second < 70 else 20.0)
        pressure_pa = np.full(10, 100_000.0 - second)
        pickled = pickle.loads(pickle.dumps(pickled))
        outputs.append(
            (
                plain.on_environment(t_us, pressure_pa, temperature_c),
                pickled.on_environment(t_us, pressure_pa, temperature_c),
            )
        )
    assert all(a == b for a, b in outputs)
    (event,) = [e for a, _ in outputs for e in a.environment_events]
    assert event.duration_s == pytest.approx(50.0)


def test_a_configuration_of_its_own_is_kept_and_a_class_default_is_shared() -> None:
    custom = AnalyzerConfig(
        vehicle_class="car", thresholds=EventThresholds(harsh_brake_g=0.3), trips=TripSettings(min_stop_s=2.0)
    )
    restored = pickle.loads(pickle.dumps(VehicleAnalyzer(custom)))
    assert restored.config == custom
    truck, other_truck = (
        pickle.loads(pickle.dumps(VehicleAnalyzer(AnalyzerConfig(vehicle_class="truck")))) for _ in "ab"
    )
    assert truck.config == AnalyzerConfig(vehicle_class="truck") and truck.config is other_truck.config


def test_a_pickle_of_another_layout_is_refused_with_what_to_do() -> None:
    analyzer = VehicleAnalyzer.__new__(VehicleAnalyzer)
    with pytest.raises(AnalysisInputError, match="analyzer state is version 1, written by another version") as raised:
        analyzer.__setstate__((1, "van"))
    assert "afresh" in (raised.value.hint or "") and "reads versions 2, 3" in str(raised.value)


def test_minute_rows_pickle_compactly_and_unchanged() -> None:
    row = MinuteAggregate(
        minute_start_us=EPOCH_US // 60_000_000 * 60_000_000, sample_count=6000, driving_s=42.25,
        max_longitudinal_g=0.31, max_lateral_g=None, rms_vertical_g=0.0203,
        event_counts=event_kinds.zero_counts() | {"harsh_brake": 1, "harsh_corner_right": 2},
        environment_sample_count=600, mean_temperature_c=21.5, altitude_change_m=None,
    )  # fmt: skip
    blob = pickle.dumps({row.minute_start_us: row})
    (restored,) = pickle.loads(blob).values()
    assert restored == row and vars(restored) == vars(row) and hash(restored) == hash(row)
    assert len(blob) < 200  # field names are not stored


def test_a_class_change_keeps_everything_measured_and_only_swaps_the_thresholds() -> None:
    recording = scripted_recording(1)
    analyzer = VehicleAnalyzer(AnalyzerConfig(vehicle_class="van"))
    batches = list(_batches(recording))
    for t_us, accel, gyro in batches[: len(batches) // 2]:
        analyzer.on_imu(t_us, accel, gyro)
    before = analyzer.state()
    analyzer.set_vehicle_class("van")  # the same class: nothing to do
    assert analyzer.state() == before
    analyzer.set_vehicle_class("truck")
    assert analyzer.config == AnalyzerConfig(vehicle_class="truck")
    assert analyzer.state() == before._replace(config="truck")
    # From here on it is exactly a truck analyzer restored from what the van had measured.
    twin = VehicleAnalyzer.__new__(VehicleAnalyzer)
    twin.restore(before._replace(config="truck"))
    for t_us, accel, gyro in batches[len(batches) // 2 :]:
        assert analyzer.on_imu(t_us, accel, gyro) == twin.on_imu(t_us, accel, gyro)
    with pytest.raises(ValueError, match="unknown vehicle class"):
        analyzer.set_vehicle_class("tractor")
