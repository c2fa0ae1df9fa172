"""Savepoints of earlier versions restore under today's code: the exact bytes the job kept for a vehicle mid-drive
(tests/unit/fixtures/, made by the code of their time) load through the migrations, and continuing the drive gives
the events, trips, stops, minute rows, day scores and counts that code gave. Also: what cannot be migrated is
refused with what to do, and counts stored in another event kinds order are read by kind."""

from __future__ import annotations

import base64
import io
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud import result_rows, vehicle_stream
from fleetsense.cloud.analytics import AnalysisInputError, vehicle_analyzer
from fleetsense.cloud.analytics.analyzer_state import AnalyzerState
from fleetsense.cloud.analytics.state_versions import StateVersionError
from fleetsense.cloud.vehicle_stream import VehicleState

from fleetsense.event_kinds import COUNTED_KINDS
from tests.unit.fixtures.make_state_fixture import Replay, record_outputs

FIXTURES = Path(__file__).parent / "fixtures"
# Each format the job's state has had since versions were kept: (folder, version of the vehicle piece).
SAVEPOINTS = [("state_60ddf97", 2), ("state_af6abb6", 2), ("state_e14", 3)]


def _fixture(folder: str) -> tuple[bytes, dict[str, Any]]:
    return (FIXTURES / folder / "vehicle_state.pickle").read_bytes(), json.loads(
        (FIXTURES / folder / "continuation.json").read_text()
    )


def _replay(state_bytes: bytes, fixture: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    waiting = {int(seq): base64.b64decode(body) for seq, body in fixture["waiting"].items()}
    replay = Replay(vehicle_stream, state_bytes=state_bytes, waiting=waiting, timer_ms=fixture["timer_ms"])
    record_outputs(vehicle_analyzer, result_rows, replay.log, patch=monkeypatch.setattr)
    for now_ms, body in fixture["continuation"]:
        replay.message(now_ms, base64.b64decode(body))
    replay.timers(fixture["silence_until_ms"])
    return list(json.loads(json.dumps(replay.log)))


def _stored(state_bytes: bytes) -> Any:
    """What VehicleState.__setstate__ receives from these bytes, without today's code reading it."""

    class Captured:
        def __setstate__(self, state: Any) -> None:
            self.state = state

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            return Captured if name == "VehicleState" else super().find_class(module, name)

    return Unpickler(io.BytesIO(state_bytes)).load().state


def _as_far_as_known(got: Any, expected: Any) -> Any:
    """`got` without the keys `expected` lacks: fields added to the records since, and event kinds added since
    (the old code could not produce them); every key the old code wrote is compared."""
    if isinstance(got, dict) and isinstance(expected, dict):
        return {key: _as_far_as_known(value, expected[key]) for key, value in got.items() if key in expected}
    if isinstance(got, list) and isinstance(expected, list) and len(got) == len(expected):
        return [_as_far_as_known(g, e) for g, e in zip(got, expected, strict=True)]
    return got


@pytest.mark.parametrize(("folder", "version"), SAVEPOINTS)
def test_a_savepoint_restores_and_the_drive_continues_exactly_as_the_code_that_wrote_it(
    folder: str, version: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_bytes, fixture = _fixture(folder)
    stored = _stored(state_bytes)
    assert (stored["version"] if isinstance(stored, dict) else stored[0]) == version
    assert all(fixture["conditions_at_cut"].values())  # calibrated, trip and events open, rows pending, a gap
    expected = fixture["expected"]
    got = _replay(state_bytes, fixture, monkeypatch)
    outputs = [entry[1] for entry in expected if entry[0] == "output"]
    assert sum(len(o["events"]) for o in outputs) >= 5 and any(o["open_trip"] for o in outputs)
    assert [entry[0] for entry in got] == [entry[0] for entry in expected]
    for index, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert _as_far_as_known(mine, theirs) == theirs, f"step {index} of the continuation differs"


def _pieces(packed: tuple[Any, ...]) -> dict[str, tuple[int, int]]:
    """(version, packed length) of each piece of a packed VehicleState."""
    analyzer = packed[ANALYZER_AT]
    pieces = {"vehicle": packed, "sequencer": packed[SEQUENCER_AT], "analyzer": analyzer}
    for name in ("calibration", "driving_events", "candidates", "trip", "aggregates", "temperature", "fir"):
        pieces[name] = analyzer[1 + AnalyzerState._fields.index(name)]
    shapes = {name: (piece[0], len(piece)) for name, piece in pieces.items() if piece is not None}
    shapes |= {f"minute row {i}": (row[0], len(row)) for i, row in enumerate(packed[ROWS_AT])}
    return shapes


def test_the_state_written_today_has_the_newest_fixtures_layout() -> None:
    """When this fails a piece's layout changed: bump its version, add its migration, and keep the last format's
    fixture (make_state_fixture.py; fixtures/README.md). An event kind added changes the bytes, not the layout."""
    state_bytes, _ = _fixture(SAVEPOINTS[-1][0])
    stored = _stored(state_bytes)
    assert stored[0] == SAVEPOINTS[-1][1]
    assert _pieces(pickle.loads(state_bytes).__getstate__()) == _pieces(stored)


def test_yesterdays_savepoint_loads_into_todays_smaller_format() -> None:
    old_bytes, _ = _fixture("state_60ddf97")
    new_bytes = pickle.dumps(pickle.loads(old_bytes))
    assert len(new_bytes) < len(old_bytes) - 300  # no field names, class references or count fields per row
    assert b"pending_minutes" in old_bytes and b"pending_minutes" not in new_bytes


# Where the pending minute rows sit in a packed VehicleState: after the version and the kinds order.
ROWS_AT = 2 + vehicle_stream._LAYOUT.names.index("pending_minutes")
ANALYZER_AT = 2 + vehicle_stream._LAYOUT.names.index("analyzer")
SEQUENCER_AT = 2 + vehicle_stream._LAYOUT.names.index("sequencer")


def _packed(state: VehicleState) -> list[Any]:
    return list(state.__getstate__())


def _restored(packed: list[Any]) -> VehicleState:
    state = VehicleState.__new__(VehicleState)
    state.__setstate__(tuple(packed))
    return state


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (lambda p: [99, *p[1:]], "vehicle state is version 99, written by another \\(newer\\)"),
        (lambda p: [0, *p[1:]], "vehicle state is version 0, written by another version of fleetsense"),
        (lambda p: p[:-1], "vehicle state \\(version 3\\) has 18 fields, expected 19"),
        (lambda p: [*p[:ANALYZER_AT], (1, *p[ANALYZER_AT][1:]), *p[ANALYZER_AT + 1 :]], "analyzer state is version 1"),
        (lambda p: "not a tuple", "vehicle state is not a versioned tuple"),
    ],
)
def test_a_state_this_code_cannot_migrate_is_refused_with_what_to_do(mangle: Any, says: str) -> None:
    state_bytes, _ = _fixture(SAVEPOINTS[-1][0])
    packed = mangle(_packed(pickle.loads(state_bytes)))
    with pytest.raises(StateVersionError, match=says) as raised:
        _restored(packed) if isinstance(packed, list) else VehicleState.__new__(VehicleState).__setstate__(packed)
    assert isinstance(raised.value, AnalysisInputError)
    assert "start the vehicle afresh" in str(raised.value) and "reprocess" in (raised.value.hint or "")


def test_counts_stored_in_another_kinds_order_are_read_by_kind_and_a_new_kind_starts_at_zero() -> None:
    """Adding an event kind needs no migration: the state records the kinds order of its counts."""
    state_bytes, _ = _fixture(SAVEPOINTS[-1][0])
    state = pickle.loads(state_bytes)
    packed = _packed(state)
    analyzer = list(packed[ANALYZER_AT])
    kinds_at, trip_at, aggregates_at = (
        1 + AnalyzerState._fields.index(name) for name in ("counted_kinds", "trip", "aggregates")
    )
    assert analyzer[kinds_at] == COUNTED_KINDS
    # Written by a version that knew every kind but the last, in reverse order.
    older_kinds = tuple(reversed(COUNTED_KINDS[:-1]))

    def older(counts: tuple[int, ...]) -> tuple[int, ...]:
        by_kind = dict(zip(COUNTED_KINDS, counts, strict=True))
        return tuple(by_kind[kind] for kind in older_kinds)

    trip = list(analyzer[trip_at])
    trip[1] = older(trip[1])
    aggregates = list(analyzer[aggregates_at])
    aggregates[1] = tuple((m, (*t[:6], older(t[6]), *t[7:])) for m, t in aggregates[1])
    aggregates[2] = tuple((d, (moving, older(counts))) for d, (moving, counts) in aggregates[2])
    analyzer[kinds_at], analyzer[trip_at], analyzer[aggregates_at] = older_kinds, tuple(trip), tuple(aggregates)
    packed[ANALYZER_AT] = tuple(analyzer)
    packed[1] = older_kinds
    packed[ROWS_AT] = tuple((*row[:7], older(row[7]), *row[8:]) for row in packed[ROWS_AT])
    last = COUNTED_KINDS[-1]
    restored = _restored(packed)
    expected = state.analyzer._trips.trip_events | {last: 0}
    assert restored.analyzer._trips.trip_events == expected and sum(expected.values()) > 0
    for start, row in state.pending_minutes.items():
        assert restored.pending_minutes[start].event_counts == row.event_counts | {last: 0}
    assert restored.analyzer.state().counted_kinds == COUNTED_KINDS
    # A kind this code does not know: its counted events cannot be dropped silently.
    packed = _packed(state)
    packed[1] = (*COUNTED_KINDS, "tailgating")
    packed[ROWS_AT] = tuple((*row[:7], (*row[7], 1), *row[8:]) for row in packed[ROWS_AT])
    with pytest.raises(StateVersionError, match="event kinds this code no longer has: \\['tailgating'\\]"):
        _restored(packed)
