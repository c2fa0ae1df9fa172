"""Driving events against the simulator's ground truth: the harsh manoeuvres and the bump are found with the right
kind and start time, ordinary driving stays quiet, and batching, gaps and replays do not change the answer."""

from __future__ import annotations

import pickle

import pytest
from fleetsense.cloud.analytics import AnalyzerConfig, DrivingEvent, EventThresholds, VehicleAnalyzer
from fleetsense.sim.drive_script import DriveScript
from fleetsense.sim.mounting import Mounting
from fleetsense.sim.vehicle import Vehicle

from tests.unit.test_analytics_drives import (
    EPOCH_US,
    RATE_HZ,
    feed,
    random_recording,
    record,
    reportable,
    scripted_recording,
    seconds,
    unmatched,
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_scripted_drive_yields_exactly_its_harsh_events_and_bump(seed: int) -> None:
    recording = scripted_recording(seed)
    collected = feed(recording)
    truth = reportable(recording.vehicle.ground_truth)
    missed, extra = unmatched(collected.events, truth)
    assert not missed, missed
    assert not extra, extra  # nothing during cruise, ordinary acceleration, deceleration or corners
    assert len(collected.events) == 8


def test_peaks_and_durations_follow_the_manoeuvre() -> None:
    recording = scripted_recording(2)
    events = feed(recording).events
    for record_, event in zip(reportable(recording.vehicle.ground_truth), events, strict=True):
        # Peaks: the manoeuvre plus noise, vibration and a calibration error of a degree or two.
        assert event.peak_g == pytest.approx(record_.peak_g, abs=0.06), (record_, event)
        if record_.kind != "bump":
            assert 0.3 * record_.duration_s < event.duration_ms / 1000 <= record_.duration_s + 0.3
        assert event.duration_ms == (event.end_us - event.start_us) // 1000


def test_the_first_harsh_brake_happens_before_calibration_and_is_recovered() -> None:
    collected = feed(scripted_recording(1))
    first = collected.events[0]
    assert first.kind == "harsh_brake" and first.recovered
    assert not any(e.recovered for e in collected.events[1:])
    settled_at = next(i for i, out in enumerate(collected.outputs) if out.calibration.settled)
    assert seconds(first.start_us) < settled_at  # it happened before the frame was known


def test_random_drives_on_hills_match_the_ground_truth() -> None:
    for seed in (1, 2):
        recording = random_recording(seed, 1200.0)
        collected = feed(recording)
        missed, extra = unmatched(collected.events, reportable(recording.vehicle.ground_truth, until_s=1199.0))
        assert not missed and not extra, (seed, missed, extra)


def test_an_event_across_a_batch_boundary_is_one_event_however_the_stream_is_cut() -> None:
    recording = scripted_recording(3)
    whole = feed(recording).events
    spanning = [e for e in whole if (e.start_us - EPOCH_US) // 1_000_000 != (e.end_us - EPOCH_US) // 1_000_000]
    assert len(spanning) >= 5  # most harsh events last 1-3 s, so they cross 1 s batch boundaries
    for batch_samples in (37, 250):
        other = feed(recording, batch_samples=batch_samples).events
        assert [e.kind for e in other] == [e.kind for e in whole]
        for a, b in zip(whole, other, strict=True):
            # Batching moves nothing but the calibration's bookkeeping (rest is judged per batch).
            assert abs(a.start_us - b.start_us) <= 20_000 and abs(a.end_us - b.end_us) <= 20_000
            assert a.peak_g == pytest.approx(b.peak_g, abs=0.01)


def test_replaying_the_same_batches_gives_identical_output() -> None:
    recording = scripted_recording(2)
    first, second = feed(recording), feed(recording)
    assert first.events == second.events
    assert first.stops == second.stops and first.trips == second.trips
    assert first.minutes == second.minutes
    assert [o.open_trip for o in first.outputs] == [o.open_trip for o in second.outputs]


def test_an_analyzer_restored_from_a_pickle_continues_exactly_like_the_original() -> None:
    """What Flink does on recovery: restore the keyed state from the checkpoint, replay the batches after it."""
    recording = scripted_recording(1)
    halfway = 60 * RATE_HZ + 37
    original = VehicleAnalyzer()
    before = feed(recording, original, stop=halfway, flush=False)
    restored = pickle.loads(pickle.dumps(original))
    after_original = feed(recording, original, start=halfway)
    after_restored = feed(recording, restored, start=halfway)
    assert after_restored.events == after_original.events
    assert after_restored.minutes == after_original.minutes
    assert len(before.events) + len(after_original.events) == 8


def test_a_gap_closes_an_open_event_instead_of_bridging_it() -> None:
    script = DriveScript.builder().stop(12.0).accelerate(25.0).cruise(10.0).harsh_brake(0.6, duration_s=3.0)
    recording = record(Vehicle(script.cruise(10.0).build(), seed=5, mounting=Mounting.random(5)))
    brake = next(r for r in recording.vehicle.ground_truth if r.kind == "harsh_brake")
    lost = int(brake.start_s + 1.5)  # one batch lost in the middle of a 3 s brake
    collected = feed(recording, skip_batches=[lost])
    brakes = [e for e in collected.events if e.kind == "harsh_brake"]
    assert len(brakes) == 2, brakes
    assert brakes[0].end_us <= EPOCH_US + lost * 1_000_000  # ends at the last sample before the gap
    assert brakes[1].start_us >= EPOCH_US + (lost + 1) * 1_000_000  # starts afresh after it
    assert [e.kind for e in collected.events] == ["harsh_brake", "harsh_brake"]


def test_lost_batches_during_ordinary_driving_cause_no_events() -> None:
    recording = scripted_recording(2)
    truth = reportable(recording.vehicle.ground_truth)
    lost = [int(r.start_s + r.duration_s / 2) for r in recording.vehicle.ground_truth if r.kind == "cruise"]
    assert len(lost) >= 8
    collected = feed(recording, skip_batches=lost)
    missed, extra = unmatched(collected.events, truth)
    assert not extra, extra
    assert not missed, missed


def test_thresholds_are_per_vehicle_class() -> None:
    """The same drive through a truck's lower thresholds: the 0.24 g ordinary accelerate/decelerate and 0.28 g
    corners are harsh for a truck, not for a van."""
    recording = scripted_recording(2)
    van = feed(recording).events
    truck = feed(recording, VehicleAnalyzer(AnalyzerConfig(vehicle_class="truck"))).events
    assert len(truck) > len(van)
    strict = AnalyzerConfig(thresholds=EventThresholds(harsh_brake_g=0.75, harsh_acceleration_g=0.9))
    brakes = [e for e in feed(recording, VehicleAnalyzer(strict)).events if e.kind == "harsh_brake"]
    assert [round(e.peak_g, 1) for e in brakes] == [0.8]


def test_events_are_plain_rows() -> None:
    event = feed(scripted_recording(1)).events[-1]
    assert isinstance(event, DrivingEvent)
    assert {type(v) for v in vars(event).values()} <= {str, int, float, bool}
