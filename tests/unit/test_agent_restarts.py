"""Restarts, time lost and storage faults from the status message (issue 13 item 4), without a server: the latest
values with the vehicle's status, one history row per restart number written once, and a storage-fault status
whose dropped ranges still become seq gaps."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fleetsense.cloud import schema
from fleetsense.cloud.status_rows import RestartsSeen, restart_writes, seen_after, status_writes
from fleetsense.cloud.tables import VEHICLE_STATUS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetsense.status import INT32_MAX, VehicleStatus, parse_status
from tests.unit.cql_binding import bind

KEY = "fleet.van-7.status"
NOW_MS = 1_790_000_000_000


def status(**fields: Any) -> VehicleStatus:
    return VehicleStatus(vehicle_id="van-7", online=True, reason="connected", **fields)


def column(writes: list[tuple[str, Any]], name: str) -> Any:
    """A vehicle_status column's value in the status row among `writes`."""
    (values,) = [values for statement, values in writes if statement == "status"]
    return VEHICLE_STATUS.value(values, name)


def test_a_crash_with_12_s_lost_is_stored_with_the_status_and_once_in_the_history_even_when_resent() -> None:
    body = status(epoch=9, restarts=3, unclean_restarts=3, last_restart_lost_ms=12_000, uptime_s=2.0).to_json()
    writes = status_writes(KEY, body, now_ms=NOW_MS)
    assert [name for name, _ in writes] == ["agent_restart", "status"]  # the history row before the counts
    assert dict(writes)["agent_restart"] == ("van-7", 9, 3, NOW_MS - 2000, True, 12_000, NOW_MS)
    assert (column(writes, "restarts"), column(writes, "unclean_restarts")) == (3, 3)
    assert column(writes, "last_restart_lost_ms") == 12_000 and column(writes, "epoch") == 9
    for name, values in writes:
        bind(name, values)
    # The same counts again (a heartbeat, a resend): what vehicle_status now says means no new row.
    seen = seen_after(writes)
    assert seen == {"van-7": RestartsSeen(9, 3, 3)}
    again = status_writes(KEY, body, now_ms=NOW_MS + 30_000, seen=seen.get)
    assert [name for name, _ in again] == ["status"]


@pytest.mark.parametrize(
    ("seen", "restarts", "unclean", "rows"),
    [
        (RestartsSeen(9, 2, 0), 3, 1, [(3, True)]),  # one more restart, one more crash
        (RestartsSeen(9, 2, 1), 3, 1, [(3, False)]),  # one more restart after a clean stop
        (RestartsSeen(9, 1, 0), 3, 1, [(2, None), (3, None)]),  # two more, one crash: which one is not known
        (RestartsSeen(9, 1, 0), 3, 2, [(2, True), (3, True)]),
        (RestartsSeen(9, 3, 1), 3, 1, []),  # seen
        (RestartsSeen(9, 5, 1), 3, 1, []),  # a late status of an earlier run (a last will) adds nothing
        (RestartsSeen(4, 7, 7), 3, 0, [(3, False)]),  # another epoch: a new state directory counts from 0 again
        (None, 3, 3, [(3, True)]),  # first met: only the newest restart gets a row
        (None, 3, 1, [(3, None)]),
        (None, 3, 0, [(3, False)]),
        (None, 3, None, [(3, None)]),
        (None, 0, 0, []),
        (RestartsSeen(9, 0, 0), 250, 0, [(n, False) for n in range(151, 251)]),  # at most 100 rows from one status
    ],
)
def test_each_restart_not_seen_before_gets_one_row_with_what_can_be_known(
    seen: RestartsSeen | None, restarts: int, unclean: int | None, rows: list[tuple[int, bool | None]]
) -> None:
    writes = restart_writes(
        status(epoch=9, restarts=restarts, unclean_restarts=unclean, last_restart_lost_ms=800, uptime_s=1.5),
        seen,
        now_ms=NOW_MS,
    )
    assert [(values[2], values[4]) for _, values in writes] == rows
    # Only the newest carries the loss and the start the status tells of.
    assert [(values[3], values[5]) for _, values in writes[-1:]] == [(NOW_MS - 1500, 800)] * bool(rows)
    assert all(values[3] is None and values[5] is None for _, values in writes[:-1])


def test_a_status_without_restart_counts_writes_none_and_clears_what_is_remembered() -> None:
    writes = status_writes(KEY, status().to_json(), now_ms=NOW_MS)
    assert [name for name, _ in writes] == ["status"]
    assert column(writes, "restarts") is None
    assert seen_after(writes) == {"van-7": None}


def test_a_storage_fault_status_is_stored_and_its_dropped_ranges_become_seq_gaps() -> None:
    sent = status(
        epoch=9,
        storage_error="database or disk is full",
        memory_batches=600,
        held_unsynced=12,
        dropped_total=150,
        dropped_ranges=[(100, 199), (250, 260)],
    )
    writes = status_writes(KEY, sent.to_json(), now_ms=NOW_MS)
    assert column(writes, "storage_error") == "database or disk is full"
    assert (column(writes, "memory_batches"), column(writes, "held_unsynced")) == (600, 12)
    gaps = [values[:4] for name, values in writes if name == "gap"]
    assert gaps == [("van-7", 9, 100, 199), ("van-7", 9, 250, 260)]
    for name, values in writes:
        bind(name, values)


# The columns migration 6 added to vehicle_status: the status message's fields of the same names.
HEALTH_COLUMNS = [c for c in VEHICLE_STATUS.columns if c.since == 6]
NEW_FIELDS = [c.name for c in HEALTH_COLUMNS if c.name != "epoch"]
ANY_JSON = st.none() | st.booleans() | st.floats() | st.text(max_size=300) | st.lists(st.integers(), max_size=2)
NUMBERS = st.integers(-5, 5) | st.integers(0, INT32_MAX + 1) | st.integers(-(2**64), 2**64)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from([*NEW_FIELDS, "epoch", "uptime_s"]), NUMBERS | ANY_JSON, max_size=8),
    st.none() | st.builds(RestartsSeen, st.integers(0, 3), st.integers(0, 300), st.none() | st.integers(0, 300)),
)
def test_any_restart_and_storage_fields_are_stored_or_refused_and_every_write_binds(
    fields: dict[str, Any], seen: RestartsSeen | None
) -> None:
    body = json.dumps({"v": 1, "vehicle_id": "van-7", "online": True, "reason": "heartbeat", **fields}).encode()
    writes = status_writes(KEY, body, now_ms=NOW_MS, seen=lambda vehicle: seen)
    names = [name for name, _ in writes]
    try:
        parse_status(body)
    except ValueError:
        assert names == ["rejected"]
    else:
        assert "status" in names and "processing failed" not in repr(writes)
        assert names.count("agent_restart") <= 100
    for name, values in writes:
        bind(name, values)


class SchemaSession:
    """Just enough of a session for apply_schema: which migrations are done, and a table's current columns."""

    def __init__(self, done: list[int], status_columns: list[str]) -> None:
        self.done, self.status_columns, self.ran = done, status_columns, []

    def execute(self, cql: str, values: Any = None) -> Any:
        class Result(list[Any]):
            column_names: tuple[str, ...] = ()

            def one(self) -> Any:
                return self[0]

        result = Result()
        if cql.startswith("SELECT version"):
            result += [type("Row", (), {"version": v}) for v in self.done]
        elif cql.startswith("SELECT release_version"):
            result.append(type("Row", (), {"release_version": "2.1.0"}))
        elif cql.startswith("SELECT * FROM fleetsense.vehicle_status"):
            result.column_names = tuple(self.status_columns)
        else:
            self.ran.append(cql)
        return result


def test_migration_6_adds_only_the_status_columns_a_cut_off_run_did_not_add() -> None:
    session = SchemaSession([1, 2, 3, 4, 5], ["vehicle_id", "online", "epoch", "restarts"])
    assert schema.apply_schema(session, up_to=6) == [6]
    added = [cql.split(" ADD ")[1] for cql in session.ran if cql.startswith("ALTER")]
    assert added == [f"{c.name} {c.cql_type}" for c in HEALTH_COLUMNS if c.name not in ("epoch", "restarts")]
    assert any("CREATE TABLE IF NOT EXISTS fleetsense.time_quarantine" in cql for cql in session.ran)
    assert any(f"default_time_to_live = {schema.QUARANTINE_TTL_S}" in cql for cql in session.ran)
    assert schema.QUARANTINE_TTL_S > schema.REJECTED_TTL_S


def test_the_query_report_says_how_much_a_crash_lost_and_names_a_storage_fault() -> None:
    from datetime import datetime
    from types import SimpleNamespace

    from fleetsense.stack.report import health_lines

    latest = SimpleNamespace(
        online=True,
        reason="heartbeat",
        received_at=datetime(2026, 12, 6, 3, 0, 0),
        outbox_depth=4,
        dropped_total=150,
        restarts=3,
        unclean_restarts=3,
        last_restart_lost_ms=12_000,
        storage_error="database or disk is full",
        memory_batches=600,
        held_unsynced=0,
    )
    crash = SimpleNamespace(restart=3, started_at=datetime(2026, 12, 6, 2, 59, 58), unclean=True, lost_ms=12_000)
    head, restart = health_lines("van-7", latest, [crash])
    assert "restarts 3 (3 after a crash), last lost 12.0 s" in head
    assert "STORAGE FAULT: database or disk is full (600 batches in memory)" in head
    assert restart.strip() == "restart 3 2026-12-06 02:59:58 UTC after a crash: 12.0 s of samples lost"
    assert health_lines("van-8", None, []) == []


def test_the_status_operator_reads_a_vehicles_stored_counts_once_and_then_remembers_what_it_wrote() -> None:
    """After a restore the operator meets every vehicle anew: it asks vehicle_status once, and from then on knows
    the counts of the status rows it wrote itself (a resent status then writes no restart row)."""
    from types import SimpleNamespace

    from fleetsense.cloud.jobs.telemetry_ingest import StoreStatus

    from tests.unit.test_cloud_logic import _job_settings

    class StoredStatus:
        reads = 0

        def execute(self, statement: str, values: tuple[str]) -> Any:
            StoredStatus.reads += 1
            row = SimpleNamespace(epoch=9, restarts=2, unclean_restarts=0) if values == ("van-7",) else None
            return SimpleNamespace(one=lambda: row)

    operator = StoreStatus(_job_settings())
    operator._session, operator._stored_restarts, operator._restarts = StoredStatus(), "SELECT ...", {}
    assert operator._restarts_seen("van-7") == RestartsSeen(9, 2, 0)
    assert operator._restarts_seen("van-8") is None
    body = status(epoch=9, restarts=3, unclean_restarts=1, last_restart_lost_ms=5, uptime_s=1.0).to_json()
    writes = status_writes(KEY, body, now_ms=NOW_MS, seen=operator._restarts_seen)
    assert [values[2:5:2] for name, values in writes if name == "agent_restart"] == [(3, True)]
    operator._remember_restarts(writes)
    again = status_writes(KEY, body, now_ms=NOW_MS + 1, seen=operator._restarts_seen)
    assert [name for name, _ in again] == ["status"] and StoredStatus.reads == 2
