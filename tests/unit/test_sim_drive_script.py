"""Drive scripts and their ground truth: the builder's arithmetic, random drives' rates and limits, JSON lines."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from fleetsense.sim.drive_script import (
    HARSH_MIN_G,
    NORMAL_LATERAL_MAX_G,
    NORMAL_LONGITUDINAL_MAX_G,
    DriveScript,
    DriveScriptBuilder,
    DriveScriptError,
    Hill,
    Segment,
    Terrain,
)
from fleetsense.sim.ground_truth import HARSH_KINDS, GroundTruthError, GroundTruthLog

from fleetsense.quantities import STANDARD_GRAVITY_M_S2

G = STANDARD_GRAVITY_M_S2


def test_harsh_brake_to_a_stop_lasts_what_its_peak_implies() -> None:
    script = DriveScript.builder().cruise(20.0, speed_m_s=12.0).harsh_brake(peak_g=0.6).stop(10.0).build()
    accelerate, cruise, brake, stop = script.ground_truth()
    assert [r.kind for r in (accelerate, cruise, brake, stop)] == ["accelerate", "cruise", "harsh_brake", "stop"]
    assert accelerate.duration_s == pytest.approx(12.0 / (0.15 * G) + 1.0)  # plateau plus one ramp's worth
    assert brake.start_s == pytest.approx(accelerate.duration_s + 20.0)
    assert brake.duration_s == pytest.approx(12.0 / (0.6 * G) + 0.35)
    assert (brake.start_speed_m_s, brake.end_speed_m_s) == (12.0, 0.0)
    assert brake.peak_g == pytest.approx(0.6) and brake.axis == "longitudinal"
    assert stop.duration_s == 10.0 and stop.start_s == brake.end_s and stop.peak_g == 0.0


def test_builder_inserts_ordinary_speed_changes_and_keeps_times_contiguous() -> None:
    script = (
        DriveScript.builder()
        .harsh_acceleration(peak_g=0.5, duration_s=2.0)
        .cruise(10.0, speed_m_s=14.0)
        .harsh_brake(peak_g=0.8, duration_s=1.5)
        .stop(5.0)
        .build()
    )
    log = script.ground_truth()
    assert [r.kind for r in log] == [
        "harsh_acceleration", "accelerate", "cruise", "harsh_brake", "decelerate", "stop",
    ]  # fmt: skip
    assert log[0].end_speed_m_s == pytest.approx(0.5 * G * (2.0 - 0.35))
    assert log[3].end_speed_m_s == pytest.approx(14.0 - 0.8 * G * (1.5 - 0.35))
    for before, after in itertools.pairwise(log):
        assert after.start_s == before.end_s and after.start_speed_m_s == before.end_speed_m_s


@pytest.mark.parametrize("kind", ["harsh_brake", "accelerate"])
def test_analytic_speed_and_distance_match_numerical_integration(kind: str) -> None:
    builder = DriveScript.builder(start_speed_m_s=20.0)
    script = (builder.harsh_brake(0.7, to_speed_m_s=3.0) if kind == "harsh_brake" else builder.accelerate(31.0)).build()
    segment = script.segments[0]
    step_s = 1e-4
    speed_m_s, distance_m = segment.start_speed_m_s, 0.0
    steps = int(segment.duration_s / step_s)
    for i in range(steps):
        a0, a1 = segment.kinematics(i * step_s)[1], segment.kinematics((i + 1) * step_s)[1]
        new_speed_m_s = speed_m_s + 0.5 * (a0 + a1) * step_s
        distance_m += 0.5 * (speed_m_s + new_speed_m_s) * step_s
        speed_m_s = new_speed_m_s
    assert segment.kinematics(steps * step_s)[0] == pytest.approx(speed_m_s, abs=1e-6)
    assert segment.distance_m(steps * step_s) == pytest.approx(distance_m, abs=1e-5)
    assert segment.kinematics(segment.duration_s)[0] == pytest.approx(segment.end_speed_m_s, abs=1e-9)


def test_time_above_half_peak_is_the_plateau_plus_half_of_each_ramp() -> None:
    """Detectors use a threshold and a minimum duration; with raised-cosine ramps both are well defined."""
    segment = DriveScript.builder(start_speed_m_s=12.0).harsh_brake(0.6).build().segments[0]
    step_s = 1e-3
    above_s = sum(step_s for i in range(int(segment.duration_s / step_s)) if segment.shape(i * step_s) > 0.5)
    assert above_s == pytest.approx(segment.duration_s - segment.ramp_s, abs=2 * step_s)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda b: b.cruise(5.0, speed_m_s=10.0).harsh_brake(peak_g=0.3), "harsh"),
        (lambda b: b.accelerate(10.0, peak_g=0.3), "ordinary"),
        (lambda b: b.sharp_corner("left"), "accelerate first"),
        (lambda b: b.cruise(5.0, speed_m_s=10.0).corner("left", peak_g=0.35), "0.3"),
        (lambda b: b.cruise(5.0, speed_m_s=10.0).harsh_brake(0.6, duration_s=5.0), "reverse"),
        (lambda b: b.cruise(5.0), "speed_m_s"),
        (lambda b: b.bump(), "moving"),
        (lambda b: b.cruise(5.0, speed_m_s=60.0), "outside"),
        (lambda b: b.cruise(5.0, speed_m_s=10.0).sharp_corner("right", duration_s=1.0), "ramps"),
        (lambda b: b.harsh_acceleration(0.5, duration_s=2.0, to_speed_m_s=9.0), "not both"),
    ],
)
def test_builder_refuses_what_it_cannot_script_and_says_why(
    build: Callable[[DriveScriptBuilder], object], message: str
) -> None:
    with pytest.raises(DriveScriptError, match=message):
        build(DriveScript.builder())


def test_terrain_refuses_impossible_grades() -> None:
    with pytest.raises(DriveScriptError, match="grade"):
        Terrain(hills=(Hill(amplitude_m=100.0, wavelength_m=500.0),))


def test_random_drive_is_deterministic_per_seed() -> None:
    assert DriveScript.random(5, 3600.0) == DriveScript.random(5, 3600.0)
    assert DriveScript.random(5, 3600.0) != DriveScript.random(6, 3600.0)


def test_random_drives_have_a_few_harsh_events_per_hour_and_routine_driving_below_the_limits() -> None:
    hours = 0.0
    counts: Counter[str] = Counter()
    for seed in range(10):
        script = DriveScript.random(seed, 2 * 3600.0)
        hours += script.duration_s / 3600.0
        assert script.duration_s >= 2 * 3600.0
        for record in script.ground_truth():
            counts[record.kind] += 1
            if record.kind in HARSH_KINDS:
                assert record.peak_g >= max(HARSH_MIN_G, 0.45)
            elif record.axis == "longitudinal":
                assert record.peak_g < NORMAL_LONGITUDINAL_MAX_G - 0.04  # room for the steepest random grade
            elif record.axis == "lateral":
                assert record.peak_g < NORMAL_LATERAL_MAX_G
            assert record.end_speed_m_s >= 0.0
        grade_bound = sum(h.amplitude_m * 2 * math.pi / h.wavelength_m for h in script.terrain.hills)
        assert grade_bound <= 0.04
    harsh_per_h = sum(counts[k] for k in HARSH_KINDS) / hours
    assert 3.0 <= harsh_per_h <= 8.0, counts
    assert counts["stop"] / hours > 5 and counts["bump"] / hours > 2
    assert counts["harsh_corner_left"] > 0 and counts["harsh_corner_right"] > 0


def test_random_harsh_events_last_long_enough_to_be_unambiguous() -> None:
    """Above half their peak for at least 0.8 s (plateau plus half of each ramp), like the 1-3 s of real ones."""
    for seed in range(10):
        for segment in DriveScript.random(seed, 3600.0).segments:
            if segment.kind in HARSH_KINDS:
                assert segment.duration_s - segment.ramp_s >= 0.8 - 1e-9, segment


def test_ground_truth_round_trips_through_json_lines(tmp_path: Path) -> None:
    log = DriveScript.random(2, 1800.0).ground_truth()
    path = tmp_path / "truth.jsonl"
    log.write_jsonl(path)
    assert GroundTruthLog.read_jsonl(path) == log
    first_stop = next(line for line in path.read_text().splitlines() if '"kind": "stop"' in line)
    assert '"duration_s"' in first_stop


def test_reading_a_bad_ground_truth_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    good = DriveScript.builder().stop(3.0).build().ground_truth()[0].to_json()
    path.write_text(good + "\n" + good.replace('"stop"', '"drift"') + "\n")
    with pytest.raises(GroundTruthError, match=r"truth.jsonl:2: .*unknown manoeuvre kind 'drift'"):
        GroundTruthLog.read_jsonl(path)


def test_segments_are_frozen_values() -> None:
    segment = DriveScript.builder().stop(1.0).build().segments[0]
    assert isinstance(segment, Segment)
    with pytest.raises(AttributeError):
        segment.duration_s = 2.0  # type: ignore[misc]
