"""Event kinds are declared once (fleetsense.event_kinds); the detectors, the score, the environment events and the
simulator's ground truth take their kinds from that declaration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fleetsense.cloud.analytics.environment import EXCURSION_KINDS, TemperatureExcursions
from fleetsense.cloud.analytics.events import DETECTORS, DRIVING_EVENT_KINDS, HORIZONTAL_DETECTORS, VEHICLE_CLASSES
from fleetsense.cloud.analytics.score import ScoreWeights
from fleetsense.sim import ground_truth
from fleetsense.sim.drive_script import random_drive

from fleetsense import event_kinds


def test_each_counted_kind_has_one_detector_in_the_declarations_order() -> None:
    assert tuple(d.kind for d in DETECTORS) == DRIVING_EVENT_KINDS == event_kinds.COUNTED_KINDS
    assert all(event_kinds.BY_KEY[d.kind].sensor == "imu" for d in DETECTORS)
    # The harsh kinds' signals and directions, as docs/analytics.md describes them.
    # (Checked for today's kinds only, so that a kind added later is one declaration, not an edit here too.)
    signals = {d.kind: (d.signal, d.negate) for d in HORIZONTAL_DETECTORS}
    assert (
        signals.items()
        >= {
            "harsh_brake": ("longitudinal", True),
            "harsh_acceleration": ("longitudinal", False),
            "harsh_corner_left": ("lateral", False),
            "harsh_corner_right": ("lateral", True),
        }.items()
    )


def test_each_detector_enters_at_its_own_threshold_field() -> None:
    levels = {d.kind: d.level_g(VEHICLE_CLASSES["truck"]) for d in DETECTORS}
    truck = VEHICLE_CLASSES["truck"]
    assert (
        levels.items()
        >= {
            "harsh_brake": truck.harsh_brake_g,
            "harsh_acceleration": truck.harsh_acceleration_g,
            "harsh_corner_left": truck.harsh_corner_g,
            "harsh_corner_right": truck.harsh_corner_g,
            "bump": truck.bump_g,
        }.items()
    )


def test_the_score_weights_are_the_declared_ones() -> None:
    weights = ScoreWeights()
    assert dict(weights.per_kind) == {k.key: k.score_weight for k in event_kinds.EVENT_KINDS if k.counted}
    assert (weights.weight("harsh_brake"), weights.weight("harsh_acceleration"), weights.weight("bump")) == (
        1.0,
        0.5,
        0.0,
    )


def test_a_temperature_excursion_carries_its_declared_kind() -> None:
    assert set(EXCURSION_KINDS.values()) == {k.key for k in event_kinds.EVENT_KINDS if k.sensor == "barometer"}
    excursions = TemperatureExcursions()
    t_us = np.arange(0, 400_000_000, 1_000_000, dtype=np.int64)
    events = excursions.push(t_us, np.where(t_us < 300_000_000, 40.0, 20.0), 1_000_000)
    assert [(e.key, e.direction) for e in events] == [("temperature_excursion_high", "high")]
    assert event_kinds.BY_KEY[events[0].key].peak_unit == "degC"


def test_the_ground_truth_reports_the_motion_kinds_under_the_clouds_keys() -> None:
    assert set(event_kinds.MOTION_KINDS) == ground_truth.EVENT_KINDS
    assert set(event_kinds.HARSH_KINDS) == ground_truth.HARSH_KINDS
    kinds = {r.kind for r in random_drive(3, 4 * 3600.0).ground_truth()}
    assert kinds <= ground_truth.MANOEUVRE_KINDS
    assert {"harsh_brake", "harsh_acceleration", "harsh_corner_left", "harsh_corner_right", "bump", "stop"} <= kinds


def test_a_ground_truth_file_written_with_the_old_corner_names_still_reads(tmp_path: Path) -> None:
    line = (
        '{"kind": "sharp_corner_left", "start_s": 1.0, "end_s": 3.0, "duration_s": 2.0, "peak_g": 0.6, '
        '"axis": "lateral", "start_speed_m_s": 10.0, "end_speed_m_s": 10.0}\n'
    )
    path = tmp_path / "truth.jsonl"
    path.write_text(line)
    (record,) = ground_truth.GroundTruthLog.read_jsonl(path)
    assert record.kind == "harsh_corner_left" and record.is_event
