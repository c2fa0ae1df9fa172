"""The verdict of a fault scenario, from what the vehicles sent and what Cassandra holds: lost, duplicated, events
against the ground truth, and the time until the pipeline was current again; and the results table of docs/faults.md.

Pure functions: the scenario tests read Cassandra and the fleet's progress, and hand the numbers here.

    python -m fleetsense.cluster.verdict <data_dir>/fault-results.json     # prints the table (Markdown)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

Event = tuple[str, float]  # (cloud kind, start as UTC seconds)
RESULTS_FILE = "fault-results.json"
# How far a stored event's start may lie from the ground truth's and still be the same event.
START_TOLERANCE_S = 0.5
STOP_START_TOLERANCE_S = 3.0  # a stop is confirmed after a few quiet seconds; its start is when motion ended


# The fault scenarios' reference is the job's own analysis of the same batches in order, without a fault: the same
# code on the same samples finds the same starts (rows hold milliseconds).
REFERENCE_TOLERANCE_S = 0.01


def event_tolerance_s(kind: str) -> float:
    return STOP_START_TOLERANCE_S if kind == "stop" else START_TOLERANCE_S


def reference_tolerance_s(kind: str) -> float:
    return REFERENCE_TOLERANCE_S


@dataclass(frozen=True, kw_only=True)
class VehicleVerdict:
    vehicle_id: str
    lost_batches: int  # sent seqs with no stored block
    lost_samples: int  # sent IMU samples not stored
    extra_samples: int  # stored IMU samples that were never sent (a corrupted or foreign write)
    duplicated_samples: int  # samples counted more than once in the per-minute aggregates
    missing_events: int  # reference events not found (or found at another time)
    extra_events: int  # events found that the reference does not have: a double count or a split event
    # Against the drive model's ground truth, at the analysis' tolerances: the analysis' accuracy on this drive, the
    # same in a fault-free run, so reported and not counted as lost or duplicated.
    truth_missing: int = 0
    truth_extra: int = 0

    @property
    def lost(self) -> int:
        return self.lost_samples + self.missing_events

    @property
    def duplicated(self) -> int:
        return self.duplicated_samples + self.extra_events

    @property
    def exact(self) -> bool:
        return not (self.lost or self.duplicated or self.lost_batches or self.extra_samples)


def missing_seqs(sent_first: int, sent_last: int, stored: Iterable[int]) -> list[int]:
    return sorted(set(range(sent_first, sent_last + 1)) - set(stored))


def match_events(
    found: Sequence[Event], expected: Sequence[Event], tolerance_s: Callable[[str], float]
) -> tuple[int, int]:
    """(missing, extra): per kind, found and expected starts paired in time order; a pair further apart than the
    kind's tolerance counts as one missing and one extra (the test's assert_events_match in numbers)."""
    missing = extra = 0
    for kind in {k for k, _ in found} | {k for k, _ in expected}:
        got = sorted(t for k, t in found if k == kind)
        want = sorted(t for k, t in expected if k == kind)
        paired = 0
        for g, w in zip(got, want, strict=False):
            paired += abs(g - w) <= tolerance_s(kind)
        missing += len(want) - paired
        extra += len(got) - paired
    return missing, extra


def vehicle_verdict(
    *,
    vehicle_id: str,
    sent_seqs: tuple[int, int],
    stored_seqs: Iterable[int],
    sent_samples: set[tuple[int, int]],
    stored_samples: set[tuple[int, int]],
    minute_sample_count: int,
    found_events: Sequence[Event],
    expected_events: Sequence[Event],
    tolerance_s: Callable[[str], float],
    truth_events: Sequence[Event] | None = None,
) -> VehicleVerdict:
    """`expected_events` are what the job finds without a fault (the reference); `truth_events`, if given, the
    drive model's, matched at the analysis' tolerances (event_tolerance_s) for the report."""
    missing, extra = match_events(found_events, expected_events, tolerance_s)
    truth_missing, truth_extra = (
        match_events(found_events, truth_events, event_tolerance_s) if truth_events is not None else (0, 0)
    )
    return VehicleVerdict(
        vehicle_id=vehicle_id,
        lost_batches=len(missing_seqs(*sent_seqs, stored_seqs)),
        lost_samples=len(sent_samples - stored_samples),
        extra_samples=len(stored_samples - sent_samples),
        duplicated_samples=max(0, minute_sample_count - len(stored_samples & sent_samples)),
        missing_events=missing,
        extra_events=extra,
        truth_missing=truth_missing,
        truth_extra=truth_extra,
    )


@dataclass(frozen=True, kw_only=True)
class ScenarioRecord:
    """One row of the results table."""

    scenario: str  # "kill -9 the broker leading the telemetry queue"
    fault: str  # what was done, to what: "SIGKILL rabbitmq on rmq2 (leader of fleet.telemetry)"
    promise: str  # what the system promised: "no acknowledged batch is lost; each stored once"
    vehicles: int
    batches_sent: int
    samples_sent: int
    events_expected: int
    recovery_s: float | None  # fault's end until every vehicle's backlog at that moment was stored; None: never
    lost: int
    duplicated: int
    passed: bool
    scenario_s: float  # the test's own duration
    notes: str = ""
    per_vehicle: list[dict[str, object]] = field(default_factory=list)  # only the vehicles that were not exact
    # From the fault's injection to its end (the heal, the restart); None in rows recorded before it was measured.
    fault_s: float | None = None
    # From the injection until what every vehicle had produced at that moment was stored, measured while the fault
    # lasted: small for a fault the cluster rides through, the fault's length for one it must wait out. None: never
    # within the timeout, or not measured (rows recorded before it was).
    from_injection_s: float | None = None
    # Ground-truth events the stored analysis missed at the analysis' tolerances (VehicleVerdict.truth_missing): the
    # analysis' accuracy on these drives, which the reference shares; not a loss.
    off_truth: int = 0


def scenario_record(
    *,
    scenario: str,
    fault: str,
    promise: str,
    verdicts: Sequence[VehicleVerdict],
    batches_sent: int,
    samples_sent: int,
    events_expected: int,
    recovery_s: float | None,
    scenario_s: float,
    notes: str = "",
    fault_s: float | None = None,
    from_injection_s: float | None = None,
) -> ScenarioRecord:
    return ScenarioRecord(
        scenario=scenario,
        fault=fault,
        promise=promise,
        vehicles=len(verdicts),
        batches_sent=batches_sent,
        samples_sent=samples_sent,
        events_expected=events_expected,
        recovery_s=None if recovery_s is None else round(recovery_s, 1),
        lost=sum(v.lost + v.lost_batches for v in verdicts),
        duplicated=sum(v.duplicated + v.extra_samples for v in verdicts),
        passed=recovery_s is not None and all(v.exact for v in verdicts),
        scenario_s=round(scenario_s, 1),
        notes=notes,
        fault_s=None if fault_s is None else round(fault_s, 1),
        from_injection_s=None if from_injection_s is None else round(from_injection_s, 1),
        off_truth=sum(v.truth_missing for v in verdicts),
        per_vehicle=[
            {**asdict(v), "lost": v.lost, "duplicated": v.duplicated}
            for v in verdicts
            if not v.exact or v.truth_missing or v.truth_extra
        ],
    )


def append_record(path: Path, record: ScenarioRecord) -> None:
    """Add (or replace, by scenario name) one record in the results file."""
    records = [r for r in read_records(path) if r.scenario != record.scenario] if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in [*records, record]], indent=2) + "\n")


def read_records(path: Path) -> list[ScenarioRecord]:
    return [ScenarioRecord(**item) for item in json.loads(path.read_text())]


def render_table(records: Sequence[ScenarioRecord]) -> str:
    """The results table, Markdown, in the order the scenarios ran."""
    lines = [
        "| scenario | fault injected | promise | vehicles / batches / samples / events | recovery (s): after the "
        "fault's end / from its injection | lost | duplicated | verdict | took (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        recovery = "never" if r.recovery_s is None else f"{r.recovery_s:.1f}"
        if r.from_injection_s is not None:
            recovery += f" / {r.from_injection_s:.1f}"
        sent = f"{r.vehicles} / {r.batches_sent} / {r.samples_sent} / {r.events_expected}"
        verdict = "pass" if r.passed else "FAIL"
        lines.append(
            f"| {r.scenario} | {r.fault} | {r.promise} | {sent} | {recovery} | {r.lost} | {r.duplicated} | "
            f"{verdict} | {r.scenario_s:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetsense.cluster.verdict", description="the results table")
    parser.add_argument("results", type=Path, help=f"the scenarios' {RESULTS_FILE}")
    args = parser.parse_args(argv)
    if not args.results.is_file():
        parser.error(f"{args.results} does not exist: run the fault scenarios first (pytest -m cluster)")
    print(render_table(read_records(args.results)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
