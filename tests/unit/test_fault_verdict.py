"""The fault scenarios' verdict in numbers: what counts as lost, as duplicated, and the results table."""

from __future__ import annotations

from pathlib import Path

from fleetsense.cluster.fleet import VehicleProgress, read_progress, write_progress
from fleetsense.cluster.verdict import (
    append_record,
    match_events,
    missing_seqs,
    read_records,
    reference_tolerance_s,
    render_table,
    scenario_record,
    vehicle_verdict,
)


def half_second(kind: str) -> float:
    return 3.0 if kind == "stop" else 0.5


def verdict(**changes: object) -> object:
    sent = {(seq, i) for seq in range(0, 4, 2) for i in range(3)}
    args: dict[str, object] = {
        "vehicle_id": "v1",
        "sent_seqs": (0, 3),
        "stored_seqs": [0, 1, 2, 3],
        "sent_samples": sent,
        "stored_samples": set(sent),
        "minute_sample_count": len(sent),
        "found_events": [("harsh_brake", 10.2), ("stop", 20.0)],
        "expected_events": [("harsh_brake", 10.0), ("stop", 22.5)],
        "tolerance_s": half_second,
    }
    return vehicle_verdict(**{**args, **changes})  # type: ignore[arg-type]


def test_a_vehicle_stored_exactly_as_sent_is_exact() -> None:
    v = verdict()
    assert v.exact and v.lost == 0 and v.duplicated == 0  # type: ignore[attr-defined]


def test_events_are_judged_against_the_reference_and_the_ground_truth_is_only_reported() -> None:
    # The job put the stop 2.6 s after the model's ground truth (within 3 s) and the brake 0.6 s after it (beyond
    # 0.5 s), in a fault-free run too: the reference has them there, so nothing is lost, and the brake is reported.
    found = [("harsh_brake", 10.6), ("stop", 25.1)]
    v = verdict(
        found_events=found,
        expected_events=list(found),
        tolerance_s=reference_tolerance_s,
        truth_events=[("harsh_brake", 10.0), ("stop", 22.5)],
    )
    assert v.exact and (v.truth_missing, v.truth_extra) == (1, 1)  # type: ignore[attr-defined]
    shifted = verdict(found_events=[("harsh_brake", 10.62), ("stop", 25.1)], expected_events=found,
                      tolerance_s=reference_tolerance_s)  # fmt: skip
    assert (shifted.missing_events, shifted.extra_events) == (1, 1) and not shifted.exact  # type: ignore[attr-defined]


def test_a_missing_block_is_lost_and_a_double_counted_minute_is_duplicated() -> None:
    lost = verdict(stored_seqs=[0, 1, 3], stored_samples={(0, 0), (0, 1), (0, 2)})
    assert lost.lost_batches == 1 and lost.lost_samples == 3 and not lost.exact  # type: ignore[attr-defined]
    doubled = verdict(minute_sample_count=9)
    assert doubled.duplicated_samples == 3 and doubled.duplicated == 3 and not doubled.exact  # type: ignore[attr-defined]


def test_events_are_paired_per_kind_within_the_kinds_tolerance() -> None:
    truth = [("harsh_brake", 10.0), ("harsh_brake", 30.0), ("stop", 50.0)]
    assert match_events(truth, truth, half_second) == (0, 0)
    assert match_events([("harsh_brake", 10.0)], truth, half_second) == (2, 0)  # one brake and the stop missing
    twice = [*truth, ("harsh_brake", 30.1)]
    assert match_events(sorted(twice), truth, half_second) == (0, 1)  # the double count is the extra one
    late = [("harsh_brake", 10.9), ("harsh_brake", 30.0), ("stop", 52.0)]
    assert match_events(late, truth, half_second) == (1, 1)  # 0.9 s off a brake is wrong; 2 s off a stop is not


def test_missing_seqs_are_the_holes_in_the_sent_range() -> None:
    assert missing_seqs(5, 9, [5, 6, 8, 9, 9]) == [7]
    assert missing_seqs(0, 2, []) == [0, 1, 2]


def test_records_accumulate_by_scenario_and_render_as_a_table(tmp_path: Path) -> None:
    path = tmp_path / "fault-results.json"
    common = {"promise": "nothing lost", "batches_sent": 8, "samples_sent": 6, "events_expected": 2, "scenario_s": 61}
    ok = scenario_record(scenario="kill broker", fault="SIGKILL rmq2", verdicts=[verdict()], recovery_s=4.26, **common)  # type: ignore[list-item, arg-type]
    bad = scenario_record(
        scenario="kill cassandra",
        fault="SIGKILL cas1",
        verdicts=[verdict(stored_seqs=[0, 1, 2])],  # type: ignore[list-item]
        recovery_s=None,
        **common,  # type: ignore[arg-type]
    )
    append_record(path, ok)
    append_record(path, bad)
    append_record(path, ok)  # a re-run replaces its row
    records = read_records(path)
    assert [r.scenario for r in records] == ["kill cassandra", "kill broker"]
    assert records[0].lost == 1 and not records[0].passed and records[0].per_vehicle
    table = render_table(records)
    assert "| kill broker | SIGKILL rmq2 | nothing lost | 1 / 8 / 6 / 2 | 4.3 | 0 | 0 | pass | 61 |" in table
    assert "| never | 1 | 0 | FAIL |" in table
    healed = scenario_record(
        scenario="partition broker",
        fault="rmq1 cut off",
        verdicts=[verdict()],
        recovery_s=4.26,
        fault_s=60.04,
        from_injection_s=1.26,  # the cluster rode through: what was in flight at the cut was stored 1.3 s later
        **common,  # type: ignore[list-item, arg-type]
    )
    append_record(path, healed)
    assert (read_records(path)[-1].fault_s, read_records(path)[-1].from_injection_s) == (60.0, 1.3)
    assert "| 4.3 / 1.3 | 0 | 0 | pass |" in render_table(read_records(path))


def test_the_fleet_progress_file_round_trips(tmp_path: Path) -> None:
    vehicles = [VehicleProgress("v1", total=10, first_seq=0, produced=4, acknowledged=3)]
    write_progress(tmp_path / "p.json", vehicles, running=True)
    assert read_progress(tmp_path / "p.json") == (True, vehicles)
