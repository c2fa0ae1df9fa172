"""The derived migrations against the real Cassandra 5.0: a fresh keyspace holds exactly what cloud/tables.py
declares, one migrated to 6 exactly what the hand-written migrations 1-6 built, migration 7 moves every minute row's
moving_s into driving_s, paged and idempotently, without overwriting a newer value, and after migration 8 every row
written at version 7 into a table keyed by a text day reads back identical from its successor keyed by a date
(values, write times, TTLs). Then the SAI index on the events' kind, the readers' paging and the negotiated
protocol."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud import column_copy, query, schema, table_copy
from fleetsense.cloud import tables as t
from fleetsense.cloud.table_model import Table
from fleetsense.cloud.tables import MINUTE_AGGREGATES_V7

from fleetsense.stack.cassandra_auth import OPERATOR, session_as
from fleetsense.stack.layout import StackConfig
from tests.schema_shape import comparable, declared_shape, live_shape, structure

V6_FIXTURE = Path(__file__).parents[1] / "unit" / "fixtures" / "schema_v6_cassandra_2.1.0.json"
DAY = "2026-12-06"
MINUTE_MS = 1_796_515_200_000  # 2026-12-06T00:00:00Z
ROWS = 7  # per table: three pages of PAGE_ROWS = 3
DAYS = ("2026-12-05", "2026-12-06")
SUCCESSORS = [(old, new) for new in t.TABLES if new.replaces for old in t.TABLES if old.name == new.replaces]


@pytest.fixture
def operator(stack: StackConfig) -> Iterator[Any]:
    with session_as(stack, OPERATOR) as session:
        yield session


@pytest.fixture
def keyspace(operator: Any) -> Iterator[str]:
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    yield name
    operator.execute(f"DROP KEYSPACE IF EXISTS {name}")


def _release(session: Any) -> str:
    return str(session.execute("SELECT release_version FROM system.local").one().release_version)


def test_a_fresh_keyspace_holds_exactly_the_declared_tables(operator: Any, keyspace: str) -> None:
    assert schema.apply_schema(operator, keyspace=keyspace) == [m.version for m in schema.MIGRATIONS]
    latest = schema.MIGRATIONS[-1].version
    assert comparable(live_shape(operator, keyspace)) == declared_shape(latest, _release(operator))
    assert schema.apply_schema(operator, keyspace=keyspace) == []  # applied once


def test_the_derived_migrations_1_to_6_build_what_the_hand_written_ones_built(operator: Any, keyspace: str) -> None:
    assert schema.apply_schema(operator, keyspace=keyspace, up_to=6) == [1, 2, 3, 4, 5, 6]
    live = live_shape(operator, keyspace)
    fixture = json.loads(V6_FIXTURE.read_text())
    # The fixture was read from Cassandra 2.1.0's system.schema_* after the hand-written migrations 1-6. Its columns,
    # types, keys and orders hold on any release; its table options are 2.1's (names, defaults and 2.1.0's
    # size-tiered compaction), so on a newer node the options compared are those the declarations set.
    assert structure(live) == structure(fixture)
    release = _release(operator)
    assert comparable(live) == declared_shape(6, release)
    if release == "2.1.0":  # the node the fixture was read from: every option too
        assert live == fixture


def _old_minute(session: Any, keyspace: str, vehicle: str, minute: int, moving_s: float, *, at_us: int) -> None:
    """A minute row as the job before migration 7 wrote it (moving_s), at a given write time."""
    session.execute(
        f"INSERT INTO {keyspace}.minute_aggregates (vehicle_id, day_bucket, minute, sample_count, moving_s, "
        "updated_at) VALUES (%s, %s, %s, %s, %s, %s) USING TIMESTAMP %s",
        (vehicle, DAY, MINUTE_MS + minute * 60_000, 6000, moving_s, MINUTE_MS, at_us),
    )


def _driving_s(session: Any, keyspace: str, vehicle: str) -> dict[int, float | None]:
    select = MINUTE_AGGREGATES_V7.select("minute", "driving_s", where=("vehicle_id", "day_bucket")).format(ks=keyspace)
    return {
        round((row.minute.timestamp() * 1000 - MINUTE_MS) / 60_000): row.driving_s
        for row in session.execute(select, (vehicle, DAY))
    }


def test_migration_7_reads_back_every_minutes_moving_s_as_driving_s(
    operator: Any, keyspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema.apply_schema(operator, keyspace=keyspace, up_to=6)
    moving = {minute: 10.0 + minute / 4 for minute in range(23)}  # quarters: exact in a float
    for vehicle in ("van-1", "van-2"):
        for minute, moving_s in moving.items():
            _old_minute(operator, keyspace, vehicle, minute, moving_s, at_us=1_000 + minute)
    monkeypatch.setattr(column_copy, "PAGE_ROWS", 5)  # 46 rows: ten pages

    assert schema.apply_schema(operator, keyspace=keyspace, up_to=7) == [7]

    for vehicle in ("van-1", "van-2"):
        assert _driving_s(operator, keyspace, vehicle) == moving
    # Run again (a crash before the migration was recorded): every row is copied already, nothing is written.
    assert column_copy.copy_column(operator, keyspace, MINUTE_AGGREGATES_V7, source="moving_s", target="driving_s") == 0


def test_the_copy_never_overwrites_what_the_new_job_wrote_and_catches_what_an_old_job_rewrote(
    operator: Any, keyspace: str
) -> None:
    schema.apply_schema(operator, keyspace=keyspace, up_to=6)
    _old_minute(operator, keyspace, "van-3", 0, 5.0, at_us=1_000)
    _old_minute(operator, keyspace, "van-3", 1, 6.0, at_us=1_000)
    schema.apply_schema(operator, keyspace=keyspace, up_to=7)
    # The new job rewrites minute 0 (driving_s, now); an old job still running rewrites minute 1 (moving_s, later).
    new_job = operator.prepare(MINUTE_AGGREGATES_V7.insert_cql().format(ks=keyspace))
    new_row = dict.fromkeys(MINUTE_AGGREGATES_V7.written_columns)
    new_row.update(vehicle_id="van-3", day_bucket=DAY, minute=MINUTE_MS, sample_count=6000, driving_s=30.0)
    operator.execute(new_job, new_row)
    _old_minute(operator, keyspace, "van-3", 1, 50.0, at_us=2_000)

    copied = column_copy.copy_column(operator, keyspace, MINUTE_AGGREGATES_V7, source="moving_s", target="driving_s")

    assert copied == 1
    assert _driving_s(operator, keyspace, "van-3") == {0: 30.0, 1: 50.0}


def _value(cql_type: str, name: str, i: int) -> Any:
    """A value of the type, different per row, some null."""
    if name == "day_bucket":
        return DAYS[i % 2]
    if i == 3 and name in {"mean_temperature_c", "reason", "peak", "excerpt"}:
        return None  # a null cell: nothing to copy, and nothing must appear
    return {
        "text": f"{name}-{i}",
        "int": i + 1,
        "bigint": 10**12 + i,
        "float": i + 0.25,
        "double": 101_325.37 + i,
        "boolean": i % 2 == 0,
        "blob": bytes([i, 0, 255]),
        "timestamp": datetime(2026, 12, 5, 12, i, tzinfo=UTC),
        "map<text, int>": {"bump": i, "harsh_brake": 2 * i},
    }[cql_type]


def _write_at_version_7(session: Any, keyspace: str, table: Table) -> None:
    """Rows as the job of schema 7 wrote them: every written column, each row at its own write time, odd rows with
    a TTL of their own (a table's default TTL applies to the others)."""
    insert = session.prepare(f"{table.insert_cql().format(ks=keyspace)} USING TIMESTAMP ? AND TTL ?")
    for i in range(ROWS):
        values = [_value(table.column(c).cql_type, c, i) for c in table.written_columns]
        session.execute(insert, [*values, 1_700_000_000_000_000 + i, 5_000 + i if i % 2 else 0])


def _cells(session: Any, keyspace: str, table: Table, successor: Table) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Each row's key -> every other value with its write time (and TTL, to the nearest minute: it ticks), read
    from `table` as the copy reads it."""
    keys = successor.key_names
    parts = [p for c in successor.written_columns if c not in keys for p in table_copy.cell_parts(successor, c)]
    found = {}
    for row in session.execute(f"SELECT {', '.join([*keys, *parts])} FROM {keyspace}.{table.name}"):
        key = tuple(str(v) for v in row[: len(keys)])  # a text day and a date alike: YYYY-MM-DD
        rest = row[len(keys) :]
        found[key] = tuple(
            round(v / 60) if p.startswith("ttl(") and v is not None else v for p, v in zip(parts, rest, strict=True)
        )
    return found


def test_every_row_written_at_version_7_reads_back_identical_after_migration_8(
    operator: Any, keyspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema.apply_schema(operator, keyspace=keyspace, up_to=7)
    for old, _ in SUCCESSORS:
        _write_at_version_7(operator, keyspace, old)
    monkeypatch.setattr(table_copy, "PAGE_ROWS", 3)

    # 9 only creates the service tables, 10 the result versions' table
    assert schema.apply_schema(operator, keyspace=keyspace) == [8, 9, 10]

    for old, new in SUCCESSORS:
        before = _cells(operator, keyspace, old, new)
        assert len(before) == ROWS, old.name
        after = _cells(operator, keyspace, new, new)
        assert after == before, f"{old.name} -> {new.name}"
        types = {
            row.day_bucket.__class__.__name__
            for row in operator.execute(f"SELECT day_bucket FROM {keyspace}.{new.name}")
        }
        assert types == {"Date"}
    # Run again (a crash before migration 8 was recorded): the same cells at the same times, nothing changes.
    old, new = SUCCESSORS[2]
    assert table_copy.copy_table(operator, keyspace, old, new) == ROWS
    assert _cells(operator, keyspace, new, new) == _cells(operator, keyspace, old, new)


def _event(vehicle: str, day: date, minute: int, kind: str) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, 7, minute, tzinfo=UTC)
    return {"vehicle_id": vehicle, "day_bucket": day, "start_time": start, "kind": kind, "end_time": start}


def _write_events(session: Any, keyspace: str, events: list[dict[str, Any]]) -> None:
    """Events as the job writes them (its statements, by column name), by vehicle and by fleet."""
    for table in (t.EVENTS_BY_VEHICLE, t.EVENTS_BY_FLEET):
        insert = session.prepare(table.insert_cql().format(ks=keyspace))
        for event in events:
            row = dict.fromkeys(table.written_columns) | event | {"duration_ms": 0}
            if "hour" in row:
                row["hour"] = 7
            session.execute(insert, [row[c] for c in table.written_columns])


def test_events_of_one_kind_are_found_by_the_sai_index_without_allow_filtering(operator: Any, keyspace: str) -> None:
    from cassandra import InvalidRequest

    schema.apply_schema(operator, keyspace=keyspace)
    day = date(2026, 12, 6)
    kinds = ["bump", "harsh_brake", "stop"]
    _write_events(operator, keyspace, [_event(v, day, m, kinds[m % 3]) for v in ("van-1", "van-2") for m in range(9)])

    found = query.events(operator, keyspace, "van-1", day, kind="harsh_brake")
    assert [(row.kind, row.start_time.minute) for row in found] == [("harsh_brake", m) for m in (1, 4, 7)]
    in_hour = query.fleet_events(operator, keyspace, day, 7, kind="stop")
    assert sorted((row.vehicle_id, row.start_time.minute) for row in in_hour) == [
        (v, m) for v in ("van-1", "van-2") for m in (2, 5, 8)
    ]
    # Fleet-wide, across every partition: the index answers what a key-only table refuses.
    everywhere = operator.execute(f"SELECT vehicle_id FROM {keyspace}.fleet_events WHERE kind = %s", ("bump",))
    assert len(list(everywhere)) == 6
    with pytest.raises(InvalidRequest, match=r"ALLOW FILTERING|cannot be restricted"):
        operator.execute(f"SELECT vehicle_id FROM {keyspace}.events_by_fleet WHERE kind = %s", ("bump",))
    indexes = operator.execute(
        "SELECT table_name, options FROM system_schema.indexes WHERE keyspace_name = %s", (keyspace,)
    )
    # 5.0 records `USING 'sai'` as the class name "sai" (its alias of StorageAttachedIndex).
    assert {(row.table_name, row.options["class_name"]) for row in indexes} == {
        ("vehicle_events", "sai"),
        ("fleet_events", "sai"),
    }


def test_a_reader_reads_every_page_of_a_partition_larger_than_one_page(
    operator: Any, keyspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema.apply_schema(operator, keyspace=keyspace)
    day = date(2026, 12, 6)
    _write_events(operator, keyspace, [_event("van-9", day, m, "bump") for m in range(25)])
    monkeypatch.setattr(query, "PAGE_ROWS", 4)

    first = query.rows_of(operator, keyspace, query._EVENTS, ("van-9", day))
    assert len(first.current_rows) == 4 and first.has_more_pages  # the node answered one page of 4
    assert [row.start_time.minute for row in query.events(operator, keyspace, "van-9", day)] == list(range(25))
    assert len(query.restarts(operator, keyspace, "van-9", limit=3)) == 0  # a bounded reader: LIMIT, any page size


def test_the_driver_and_cassandra_5_negotiate_protocol_v5(operator: Any) -> None:
    from fleetsense.cloud.cassandra_session import PROTOCOL_ENV, negotiated_protocol

    assert os.environ.get(PROTOCOL_ENV, "auto") == "auto", "the test stack must not pin the protocol"
    assert negotiated_protocol(operator) == 5
