"""Migration 8 as the declarations derive it: each table keyed by a text day has a successor keyed by a CQL date,
created, indexed and filled by a copy that keeps each cell's write time and TTL (cloud/table_copy.py)."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest
from fleetsense.cloud import schema
from fleetsense.cloud import tables as t
from fleetsense.cloud.table_copy import CopyError, conversions, copy_cql, row_writes
from fleetsense.cloud.table_model import LOCAL_ONE, LOCAL_QUORUM, Column, Table

SUCCESSORS = {table.replaces: table for table in t.TABLES if table.replaces}


def test_every_table_keyed_by_a_text_day_is_retired_in_8_and_has_a_successor_keyed_by_a_date() -> None:
    text_keyed = [
        table
        for table in t.TABLES
        if table.exists_at(7) and any(t.DAY_TEXT_BUCKET.name == k for k in table.key_names)
        if table.column("day_bucket").cql_type == t.DAY_TEXT
    ]
    assert {table.name for table in text_keyed} == set(SUCCESSORS)
    for old in text_keyed:
        new = SUCCESSORS[old.name]
        assert old.retired == 8 and old.write is None and old.exists_at(8), old.name
        assert new.since == 8 and new.write is not None and new.column("day_bucket").cql_type == "date"
        assert new.key_names == old.key_names and new.clustering == old.clustering and new.ttl == old.ttl
        assert new.written_columns == old.written_columns  # moving_s, replaced in 7, is not carried over


def test_migration_8_creates_the_successors_and_their_indexes_then_copies_each_predecessor() -> None:
    steps = schema.steps(8)
    created = [s.table.name for s in steps if isinstance(s, schema.CreateTable)]
    indexed = [s.table.create_index_cql(s.index) for s in steps if isinstance(s, schema.CreateIndex)]
    copied = [(s.source.name, s.target.name) for s in steps if isinstance(s, schema.CopyTable)]
    assert set(created) == {new.name for new in SUCCESSORS.values()}
    assert indexed == [
        "CREATE INDEX IF NOT EXISTS vehicle_events_kind_sai ON {ks}.vehicle_events (kind) USING 'sai'",
        "CREATE INDEX IF NOT EXISTS fleet_events_kind_sai ON {ks}.fleet_events (kind) USING 'sai'",
    ]
    assert copied == [(old, new.name) for old, new in SUCCESSORS.items()]
    assert steps.index(next(s for s in steps if isinstance(s, schema.CopyTable))) > len(created) + len(indexed) - 1


def test_the_copy_reads_keys_then_each_value_with_its_write_time_and_ttl_and_converts_the_day() -> None:
    assert "event_counts, writetime(event_counts), mean_temperature_c" in copy_cql(
        t.MINUTE_AGGREGATES_V7, t.MINUTE_AGGREGATES, "ks"
    )
    old, new = t.REJECTED_SOURCES_V7, t.REJECTED_SOURCES
    assert copy_cql(old, new, "ks") == (
        "SELECT day_bucket, source, last_reason, writetime(last_reason), ttl(last_reason), "
        "last_at, writetime(last_at), ttl(last_at) FROM ks.rejected_sources"
    )
    assert list(conversions(old, new)) == ["day_bucket"]
    row = ("2026-12-06", "van-1", "bad", 100, 50, None, None, None)
    assert row_writes(new, row, conversions(old, new)) == [
        ((100, 50), [("day_bucket", date(2026, 12, 6)), ("source", "van-1"), ("last_reason", "bad")])
    ]


def test_the_copy_groups_a_rows_cells_by_write_time_and_ttl_and_takes_a_collections_newest() -> None:
    old, new = t.MINUTE_AGGREGATES_V7, t.MINUTE_AGGREGATES
    values = [c for c in new.written_columns if c not in new.key_names]
    cells: dict[str, tuple[object, ...]] = dict.fromkeys(values, (None, None, None))
    cells["sample_count"] = (6000, 200, 40)
    cells["driving_s"] = (30.0, 100, None)  # copied in migration 7 at moving_s's (older) write time
    cells["event_counts"] = ({"bump": 1}, [150, 200])  # 5.0: one write time per element; no TTL read
    row = ("van-1", "2026-12-06", 60_000, *(part for name in values for part in cells[name]))
    writes = row_writes(new, row, conversions(old, new))
    keys = [("vehicle_id", "van-1"), ("day_bucket", date(2026, 12, 6)), ("minute", 60_000)]
    assert writes == [
        ((200, 40), [*keys, ("sample_count", 6000), ("event_counts", {"bump": 1})]),
        ((100, 0), [*keys, ("driving_s", 30.0)]),
    ]


def test_a_copy_into_a_table_with_a_column_its_source_lacks_or_cannot_convert_is_refused() -> None:
    key = Column(name="k", cql_type=t.TEXT, meaning="k")
    source = Table(name="a", why="", columns=(key,), partition_key=("k",), since=1)
    extra = Table(
        name="b", why="", columns=(key, Column(name="x", cql_type=t.INT, meaning="")), partition_key=("k",), since=2
    )
    with pytest.raises(CopyError, match=r"b\.x has no column in a"):
        conversions(source, extra)
    as_int = Table(
        name="c", why="", columns=(Column(name="k", cql_type=t.INT, meaning="k"),), partition_key=("k",), since=2
    )
    with pytest.raises(CopyError, match=r"a\.k is text, c\.k int: nothing converts it"):
        conversions(source, as_int)


def test_each_table_declares_its_consistency_by_level_name_and_a_wrong_name_is_refused() -> None:
    assert {table.write_consistency for table in t.WRITTEN.values()} == {LOCAL_QUORUM}
    assert t.WRITE_CONSISTENCY["minute"] == t.MINUTE_AGGREGATES.write_consistency == "LOCAL_QUORUM"
    assert t.VEHICLE_PROFILES.read_consistency == LOCAL_ONE and t.VEHICLE_PROFILES.consistency_why
    with pytest.raises(ValueError, match="'QUORUMISH' is no consistency level"):
        Table(name="x", why="", columns=(), partition_key=(), since=1, write_consistency="QUORUMISH")


def test_the_python_writer_prepares_each_statement_at_its_tables_write_consistency() -> None:
    from cassandra import ConsistencyLevel
    from fleetsense.cloud.store import CassandraWriter

    class PreparingSession:
        def prepare(self, cql: str) -> SimpleNamespace:
            return SimpleNamespace(cql=cql, consistency_level=None)

    writer = CassandraWriter(PreparingSession(), "ks")
    for name, table in t.WRITTEN.items():
        level = writer.binder.prepared[name].consistency_level
        assert level == ConsistencyLevel.name_to_value[table.write_consistency] == ConsistencyLevel.LOCAL_QUORUM


def test_a_stored_day_that_is_no_date_stops_the_copy_with_what_to_do() -> None:
    old, new = t.REJECTED_SOURCES_V7, t.REJECTED_SOURCES
    row = ("2026-13-06", "van-1", "bad", 100, 50, None, None, None)
    with pytest.raises(CopyError, match=r"day_bucket '2026-13-06' cannot be converted .* correct or delete that row"):
        row_writes(new, row, conversions(old, new))
