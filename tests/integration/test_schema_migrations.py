"""The derived migrations against the real Cassandra: a fresh keyspace holds exactly what cloud/tables.py declares,
one migrated to 6 exactly what the hand-written migrations 1-6 built, and migration 7 moves every minute row's
moving_s into driving_s, paged and idempotently, without overwriting a newer value."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud import column_copy, schema
from fleetsense.cloud.store import CassandraWriter
from fleetsense.cloud.tables import MINUTE_AGGREGATES

from fleetsense.stack.cassandra_auth import OPERATOR, session_as
from fleetsense.stack.layout import StackConfig
from tests.schema_shape import comparable, declared_shape, live_shape, structure

V6_FIXTURE = Path(__file__).parents[1] / "unit" / "fixtures" / "schema_v6_cassandra_2.1.0.json"
DAY = "2026-12-06"
MINUTE_MS = 1_796_515_200_000  # 2026-12-06T00:00:00Z


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
    select = MINUTE_AGGREGATES.select("minute", "driving_s", where=("vehicle_id", "day_bucket")).format(ks=keyspace)
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
    assert column_copy.copy_column(operator, keyspace, MINUTE_AGGREGATES, source="moving_s", target="driving_s") == 0


def test_the_copy_never_overwrites_what_the_new_job_wrote_and_catches_what_an_old_job_rewrote(
    operator: Any, keyspace: str
) -> None:
    schema.apply_schema(operator, keyspace=keyspace, up_to=6)
    _old_minute(operator, keyspace, "van-3", 0, 5.0, at_us=1_000)
    _old_minute(operator, keyspace, "van-3", 1, 6.0, at_us=1_000)
    schema.apply_schema(operator, keyspace=keyspace)
    # The new job rewrites minute 0 (driving_s, now); an old job still running rewrites minute 1 (moving_s, later).
    writer = CassandraWriter(operator, keyspace)
    new_row = dict.fromkeys(MINUTE_AGGREGATES.written_columns)
    new_row.update(vehicle_id="van-3", day_bucket=DAY, minute=MINUTE_MS, sample_count=6000, driving_s=30.0)
    writer.write_all([MINUTE_AGGREGATES.row(**new_row)])
    _old_minute(operator, keyspace, "van-3", 1, 50.0, at_us=2_000)

    copied = column_copy.copy_column(operator, keyspace, MINUTE_AGGREGATES, source="moving_s", target="driving_s")

    assert copied == 1
    assert _driving_s(operator, keyspace, "van-3") == {0: 30.0, 1: 50.0}
