"""The Cassandra tables declared once (cloud/tables.py) and what is derived from them: rows by column name, readers'
SELECTs, the migrations, the prepared statements and the doc's table reference."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud import schema, table_docs
from fleetsense.cloud import tables as t
from fleetsense.cloud.column_copy import needs_copy
from fleetsense.cloud.store import KEY_VALUES, OWN_TIMESTAMP, STATEMENTS
from fleetsense.cloud.table_model import Column, Order, RowError, Table

from tests.schema_shape import comparable, declared_shape

ROOT = Path(__file__).resolve().parents[2]
V6_FIXTURE = Path(__file__).parent / "fixtures" / "schema_v6_cassandra_2.1.0.json"
LATEST = schema.MIGRATIONS[-1].version

# A whole minute row: every column the table writes (whatever the declaration lists), a few with telling values.
MINUTE: dict[str, Any] = {
    **{column: None for column in t.MINUTE_AGGREGATES.written_columns},
    "vehicle_id": "van-7",
    "day_bucket": date(2026, 12, 6),
    "minute": 60_000,
    "driving_s": 42.5,
    "event_counts": {"harsh_brake": 1},
}


def test_a_row_is_built_by_column_name_and_travels_in_the_declared_order() -> None:
    name, values = t.MINUTE_AGGREGATES.row(**dict(reversed(MINUTE.items())))
    assert name == "minute"
    assert tuple(values) == tuple(MINUTE.values())
    assert t.MINUTE_AGGREGATES.value(values, "driving_s") == 42.5


def test_a_row_missing_a_column_or_naming_an_unknown_one_fails_when_it_is_built() -> None:
    without = {k: v for k, v in MINUTE.items() if k != "driving_s"}
    with pytest.raises(RowError, match=r"vehicle_minutes row .* missing driving_s"):
        t.MINUTE_AGGREGATES.row(**without)
    # The old name is refused: migration 8's table has no moving_s at all.
    with pytest.raises(RowError, match="missing driving_s; unknown moving_s"):
        t.MINUTE_AGGREGATES.row(**without, moving_s=42.5)
    with pytest.raises(RowError, match="unknown max_speed_m_s"):
        t.MINUTE_AGGREGATES.row(**MINUTE, max_speed_m_s=1.0)


def test_a_row_written_with_its_own_timestamp_takes_it_last() -> None:
    write = t.VEHICLES.row(vehicle_id="v", last_seq=3, last_sample_time=2, using_timestamp_us=2_000)
    assert write == ("vehicle", ("v", 3, 2, 2_000))
    with pytest.raises(RowError, match="missing using_timestamp_us"):
        t.VEHICLES.row(vehicle_id="v", last_seq=3, last_sample_time=2)


def test_a_table_nothing_writes_any_more_refuses_rows() -> None:
    row = {c.name: 0 for c in t.SAMPLE_BLOCKS.columns}
    with pytest.raises(RowError, match="nothing writes sample_blocks"):
        t.SAMPLE_BLOCKS.row(**row)


def test_a_readers_select_names_only_columns_the_table_has_now_and_filters_on_keys() -> None:
    assert t.MINUTE_AGGREGATES.select("minute", "driving_s", where=("vehicle_id", "day_bucket")) == (
        "SELECT minute, driving_s FROM {ks}.vehicle_minutes WHERE vehicle_id = %s AND day_bucket = %s"
    )
    assert t.EVENTS_BY_FLEET.select("vehicle_id", where=("kind",)).endswith("WHERE kind = %s")  # indexed (SAI)
    assert "writetime(message)" in t.TIME_QUARANTINE.select("writetime(message)")
    with pytest.raises(KeyError, match="replaced by another column"):
        t.MINUTE_AGGREGATES_V7.select("moving_s")
    with pytest.raises(KeyError, match="has no column 'max_speed_m_s'"):
        t.MINUTE_AGGREGATES.select("max_speed_m_s")
    with pytest.raises(KeyError, match="neither a key column nor indexed"):
        t.MINUTE_AGGREGATES.select("minute", where=("sample_count",))


def test_a_declaration_lists_its_key_columns_first_and_each_column_once() -> None:
    id_column = Column(name="id", cql_type=t.TEXT, meaning="id")
    value = Column(name="value", cql_type=t.INT, meaning="a value")
    with pytest.raises(ValueError, match=r"key columns .* must come first"):
        Table(name="x", why="", columns=(value, id_column), partition_key=("id",), since=1)
    with pytest.raises(ValueError, match="declared twice"):
        Table(name="x", why="", columns=(id_column, id_column), partition_key=("id",), since=1)
    replacing = Column(name="v2", cql_type=t.INT, meaning="", since=2, replaces="nothing")
    with pytest.raises(ValueError, match="replaces an undeclared column"):
        Table(name="x", why="", columns=(id_column, replacing), partition_key=("id",), since=1)


def test_the_statements_and_key_lengths_are_the_written_tables() -> None:
    assert set(STATEMENTS) == set(KEY_VALUES) == set(t.WRITTEN)
    assert STATEMENTS["minute"].startswith(
        "INSERT INTO {ks}.vehicle_minutes (vehicle_id, day_bucket, minute, sample_count, driving_s, "
    )
    assert KEY_VALUES["event_by_fleet"] == 5 and KEY_VALUES["status"] == 1
    assert STATEMENTS["vehicle"].endswith("USING TIMESTAMP ?") and {"vehicle"} == OWN_TIMESTAMP
    for name, table in t.WRITTEN.items():
        assert table.exists_at(LATEST) and table.retired is None, name


def test_every_type_is_declared_once_and_the_tables_of_migrations_1_to_7_are_cql_3_2() -> None:
    types = {
        t.TEXT,
        t.INT,
        t.BIGINT,
        t.FLOAT,
        t.DOUBLE,
        t.BOOLEAN,
        t.BLOB,
        t.TIMEUUID,
        t.TIMESTAMP,
        t.DAY,
        t.COUNTS,
        t.TEXT_SET,
    }
    for table in t.TABLES:
        for column in table.columns:
            assert column.cql_type in types, f"{table.name}.{column.name}"
            # CQL 3.2 (Cassandra 2.1) had no date/time types: what migrations 1-7 built never uses them.
            if table.since < 8:
                assert column.cql_type not in {"date", "time", "duration", "smallint", "tinyint"}, table.name
    assert t.DAY == "date" and t.DAY_TEXT == t.TEXT


def test_every_version_a_declaration_names_has_its_migration_and_each_migration_does_something() -> None:
    versions = [m.version for m in schema.MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    named = {table.since for table in t.TABLES} | {c.since for table in t.TABLES for c in table.columns}
    named |= {table.dropped for table in t.TABLES} | {table.retired for table in t.TABLES}
    assert named - {None} <= set(versions)
    assert all(schema.steps(version) for version in versions)
    assert len({table.name for table in t.TABLES}) == len(t.TABLES)


def test_migration_7_adds_driving_s_and_copies_moving_s_into_it() -> None:
    driving_s = t.MINUTE_AGGREGATES_V7.column("driving_s")
    assert schema.steps(7) == [
        schema.AddColumn(t.MINUTE_AGGREGATES_V7, driving_s),
        schema.CopyColumn(t.MINUTE_AGGREGATES_V7, "moving_s", "driving_s"),
    ]
    assert schema.steps(7)[0].cql(str) == "ALTER TABLE {ks}.minute_aggregates ADD driving_s float"


def test_the_declarations_at_version_6_are_the_schema_the_old_migrations_built_on_cassandra_2_1() -> None:
    """The fixture was read from system.schema_* of a real Cassandra 2.1.0 after the hand-written migrations 1-6
    (before the declarations existed): the declarations rewrite that history without changing it."""
    assert declared_shape(6, "2.1.0") == comparable(json.loads(V6_FIXTURE.read_text()))


@pytest.mark.parametrize("release", ["2.1.0", "2.1.9", "3.11.4", "5.0.2"])
def test_every_schema_statement_renders_for_a_keyspace_on_every_server(release: str) -> None:
    for version in range(1, LATEST + 1):
        for step in schema.steps(version):
            if not isinstance(step, schema.CopyColumn | schema.CopyTable):
                cql = schema.cql_of(step, "k", release)
                assert "{" not in cql.replace("{'class'", "") and " k." in cql, cql
                for newer in ("MATERIALIZED VIEW", "GROUP BY", "toTimestamp", "dateOf"):
                    assert newer not in cql


def test_the_create_statements_render_keys_order_ttl_and_compaction() -> None:
    cql = t.BATCHES.create_cql(5, lambda hours: f"<{hours} h>")
    assert "PRIMARY KEY ((vehicle_id, hour_bucket), epoch, seq)" in cql
    assert f"WITH CLUSTERING ORDER BY (epoch ASC, seq DESC) AND default_time_to_live = {t.SAMPLE_TTL_S}" in cql
    assert cql.endswith("AND compaction = <1 h>") and cql.startswith("CREATE TABLE IF NOT EXISTS {ks}.batches (")
    assert "driving_s" not in t.MINUTE_AGGREGATES_V7.create_cql(6, str)
    assert "driving_s float" in t.MINUTE_AGGREGATES_V7.create_cql(7, str)
    assert "PRIMARY KEY (vehicle_id)\n)" in t.VEHICLES.create_cql(1, str)
    assert t.EVENTS_BY_FLEET.clustering[1] == ("vehicle_id", Order.ASC)


@pytest.mark.parametrize(
    ("value", "source_us", "target_us", "copy"),
    [
        (1.5, 100, None, True),  # never copied
        (1.5, 100, 100, False),  # copied already (the copy carries the source's write time)
        (1.5, 100, 200, False),  # the new job wrote it since: newer, kept
        (1.5, 200, 100, True),  # an old job rewrote the source after a copy
        (None, None, None, False),  # nothing to copy
    ],
)
def test_a_column_copy_writes_only_where_the_target_is_missing_or_older(
    value: float | None, source_us: int | None, target_us: int | None, copy: bool
) -> None:
    assert needs_copy(value, source_us, target_us) is copy


def test_the_docs_table_reference_is_the_declarations() -> None:
    doc = (ROOT / "docs" / "cloud-etl.md").read_text()
    assert table_docs.replaced_in(doc) == doc, "regenerate it: python -m fleetsense.cloud.table_docs"
    assert "| `driving_s` | `float` | s |" in doc and "| ~~`moving_s`~~ | `float` | s |" in doc
    assert "| `max_lateral_g` | `float` | g | largest \\|lateral acceleration\\| |" in doc
