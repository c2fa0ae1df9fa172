"""The Cassandra schema, applied idempotently as numbered migrations derived from the declarations in
cloud/tables.py: migration N creates each table declared `since=N` with the columns it had at N and its indexes,
adds each column and index declared `since=N` to an older table, drops each table declared `dropped=N`, copies each
column a new one `replaces` (Cassandra 2.1 renamed no column) and each table a new one `replaces` (a key's type
cannot change). A migration is only a version and a description here.

The server is Cassandra 5.0: migration 8 creates `date` keys and storage-attached indexes (SAI). Migrations 1-7
are the CQL 3.2 that Cassandra 2.1 ran, so an installation of any age upgrades by the same steps.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleetsense.cloud.column_copy import copy_column
from fleetsense.cloud.table_copy import copy_table
from fleetsense.cloud.table_model import Column, Index, Table
from fleetsense.cloud.tables import QUARANTINE_TTL_S, REJECTED_TTL_S, RESULT_TABLES, SAMPLE_TTL_S, TABLES
from fleetsense.cloud.write_target import check_keyspace_name

log = logging.getLogger(__name__)

KEYSPACE = "fleetsense"
REPLICATION_ENV = "FLEETSENSE_CQL_REPLICATION"
LOCAL_REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"

__all__ = [
    "KEYSPACE",
    "MIGRATIONS",
    "QUARANTINE_TTL_S",
    "REJECTED_TTL_S",
    "SAMPLE_TTL_S",
    "apply_result_schema",
    "apply_schema",
]


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    description: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(version=1, description="raw accelerometer samples, vehicles seen, rejected messages"),
    Migration(version=2, description="six-channel IMU samples and barometer samples (wire format v2)"),
    Migration(
        version=3,
        description="sample blocks with a TTL, driving events, trips, minute aggregates, scores, vehicle status",
    ),
    Migration(version=4, description="vehicle profiles: each vehicle's class picks its event thresholds"),
    Migration(
        version=5,
        description="sequence epochs in the keys of raw batches, gaps and late batches; rejected messages by source "
        "and day with a TTL; reused seqs; sequence restarts",
    ),
    Migration(
        version=6,
        description="time quarantine (telemetry rejected for its time, kept whole to be re-admitted); restarts, "
        "time lost and storage faults from the status: latest values in vehicle_status, a history of restarts",
    ),
    Migration(
        version=7,
        description="minute_aggregates.driving_s (the analytics' and driver_scores' name), copied from moving_s, "
        "which is no longer written",
    ),
    Migration(
        version=8,
        description="day keys as CQL dates: each table keyed by a day gets a successor with a date key, holding a copy "
        "of its rows (write times and TTLs kept); SAI indexes on the events' kind (Cassandra 5.0)",
    ),
    Migration(
        version=9,
        description="the service layer's tables: the fleet's vehicles, drivers and their badges, assignments of "
        "drivers to vehicles, event reviews and the review queue, operator accounts, API tokens, sessions, webhooks "
        "and their delivery log",
    ),
    Migration(
        version=10,
        description="result versions: each version of the analysis' results (a keyspace of the versioned tables) "
        "and the active one",
    ),
)
LATEST = MIGRATIONS[-1].version


# --- the steps of a migration, derived from the declarations -------------------------------------------------------


@dataclass(frozen=True)
class CreateTable:
    table: Table
    version: int

    def cql(self, compaction: Callable[[int], str]) -> str:
        return self.table.create_cql(self.version, compaction)


@dataclass(frozen=True)
class AddColumn:
    """CQL 3.2 has no ALTER ... ADD IF NOT EXISTS: `apply_schema` runs it only when the table lacks the column, so a
    migration cut off halfway can still simply run again."""

    table: Table
    column: Column

    def cql(self, compaction: Callable[[int], str]) -> str:
        static = " static" if self.column.static else ""
        return f"ALTER TABLE {{ks}}.{self.table.name} ADD {self.column.name} {self.column.cql_type}{static}"


@dataclass(frozen=True)
class CreateIndex:
    table: Table
    index: Index

    def cql(self, compaction: Callable[[int], str]) -> str:
        return self.table.create_index_cql(self.index)


@dataclass(frozen=True)
class DropTable:
    table: Table

    def cql(self, compaction: Callable[[int], str]) -> str:
        return f"DROP TABLE IF EXISTS {{ks}}.{self.table.name}"


@dataclass(frozen=True)
class CopyColumn:
    """Fill a new column from the one it replaces (cloud/column_copy.py): idempotent and paged."""

    table: Table
    source: str
    target: str


@dataclass(frozen=True)
class CopyTable:
    """Fill a new table from the one it `replaces` (cloud/table_copy.py): idempotent, paged, times kept."""

    source: Table
    target: Table


Step = CreateTable | CreateIndex | AddColumn | DropTable | CopyColumn | CopyTable
Statement = CreateTable | CreateIndex | AddColumn | DropTable  # the steps that are one CQL statement


def steps(version: int) -> list[Step]:
    """What migration `version` does, in order: create tables and indexes, add columns, drop tables, copy columns
    and tables."""
    created: list[Step] = [CreateTable(t, version) for t in TABLES if t.since == version]
    indexed: list[Step] = [
        CreateIndex(t, i) for t in TABLES if t.exists_at(version) for i in t.indexes if (i.since or t.since) == version
    ]
    added: list[Step] = [AddColumn(t, c) for t in TABLES if t.since < version for c in t.columns if c.since == version]
    dropped: list[Step] = [DropTable(t) for t in TABLES if t.dropped == version]
    copied: list[Step] = [
        CopyColumn(t, c.replaces, c.name) for t in TABLES for c in t.columns if c.since == version and c.replaces
    ]
    by_name = {t.name: t for t in TABLES}
    copied += [CopyTable(by_name[t.replaces], t) for t in TABLES if t.since == version and t.replaces]
    return [*created, *indexed, *added, *dropped, *copied]


def time_series_compaction(release_version: str, window_hours: int) -> str:
    """The time-series compaction this server has: TWCS from 3.0.8; DTCS on 2.1.1 up to 3.0.7 (it first shipped
    in 2.0.11/2.1.1); size-tiered otherwise, which includes the local stack's 2.1.0."""
    parts = [int(p) for p in release_version.split("-")[0].split(".")[:3] if p.isdigit()]
    version = tuple([*parts, 0, 0, 0][:3])
    if version >= (3, 0, 8):
        return (
            "{'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', "
            f"'compaction_window_size': {window_hours}}}"
        )
    if version >= (2, 1, 1):
        return f"{{'class': 'DateTieredCompactionStrategy', 'base_time_seconds': {window_hours * 3600}}}"
    return "{'class': 'SizeTieredCompactionStrategy'}"


def cql_of(step: Statement, keyspace: str, release_version: str) -> str:
    """The statement of a schema step for a keyspace on a server of `release_version`."""
    return step.cql(lambda window_hours: time_series_compaction(release_version, window_hours)).replace(
        "{ks}", keyspace
    )


def replication() -> str:
    return os.environ.get(REPLICATION_ENV, LOCAL_REPLICATION)


def apply_schema(session: Any, *, keyspace: str = KEYSPACE, up_to: int | None = None) -> list[int]:
    """Create the keyspace and run every migration not yet recorded (up to version `up_to`, default all); returns
    the versions applied now. A migration cut off halfway (a crash, a lost connection) is simply run again: tables
    and indexes are created IF NOT EXISTS, a column is added only if missing, a column copy skips what it has
    copied, and a table copy writes the same cells at the same timestamps again."""
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication()}")
    session.execute(
        f"""CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations (
            version int PRIMARY KEY,
            description text,
            applied_at timestamp
        )"""
    )
    done = {row.version for row in session.execute(f"SELECT version FROM {keyspace}.schema_migrations")}
    release = session.execute("SELECT release_version FROM system.local").one().release_version

    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in done or (up_to is not None and migration.version > up_to):
            continue
        for step in steps(migration.version):
            if isinstance(step, CopyColumn):
                copied = copy_column(session, keyspace, step.table, source=step.source, target=step.target)
                log.info("migration %d: %d %s row(s) copied", migration.version, copied, step.table.name)
            elif isinstance(step, CopyTable):
                copied = copy_table(session, keyspace, step.source, step.target)
                log.info("migration %d: %d row(s) of %s copied", migration.version, copied, step.source.name)
            elif not (isinstance(step, AddColumn) and step.column.name in _columns(session, keyspace, step.table)):
                session.execute(cql_of(step, keyspace, release))
        # The time comes from the client: dateOf() is gone in 5.0 and toTimestamp() is missing in 2.1.
        session.execute(
            f"INSERT INTO {keyspace}.schema_migrations (version, description, applied_at) VALUES (%s, %s, %s)",
            (migration.version, migration.description, datetime.now(UTC)),
        )
        applied.append(migration.version)
    return applied


def result_schema_steps() -> list[Statement]:
    """What a result version's keyspace holds: the versioned tables as the latest migration has them, and their
    indexes; nothing else (no ingest facts, no service tables, no schema_migrations: its schema is the main one's)."""
    tables: list[Statement] = [CreateTable(t, LATEST) for t in RESULT_TABLES if t.exists_at(LATEST)]
    indexes: list[Statement] = [
        CreateIndex(t, i) for t in RESULT_TABLES if t.exists_at(LATEST) for i in t.indexes_at(LATEST)
    ]
    return [*tables, *indexes]


def apply_result_schema(session: Any, keyspace: str) -> None:
    """Create a result version's keyspace (with the main keyspace's replication) and in it the versioned tables and
    their indexes, with the same CQL apply_schema runs; idempotent (IF NOT EXISTS throughout).

    A later migration that changes a versioned table must change each version's keyspace too."""
    check_keyspace_name(keyspace, what="a result version's keyspace")
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication()}")
    release = session.execute("SELECT release_version FROM system.local").one().release_version
    for step in result_schema_steps():
        session.execute(cql_of(step, keyspace, release))


def _columns(session: Any, keyspace: str, table: Table) -> list[str]:
    """The table's columns as the server has them now (a result's column names hold on every version)."""
    return list(session.execute(f"SELECT * FROM {keyspace}.{table.name} LIMIT 1").column_names)


def schema_version(session: Any, *, keyspace: str = KEYSPACE) -> int:
    rows = session.execute(f"SELECT version FROM {keyspace}.schema_migrations")
    return max((row.version for row in rows), default=0)
