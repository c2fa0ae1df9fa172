"""The Cassandra schema, applied idempotently as numbered migrations derived from the declarations in
cloud/tables.py: migration N creates each table declared `since=N` with the columns it had at N, adds each column
declared `since=N` to an older table, drops each table declared `dropped=N`, and copies each column a new one
`replaces` (Cassandra 2.1 renames no column). A migration is only a version and a description here.

Every statement must run on Cassandra 2.1 (the local stack) and on 4.x/5.x (production): CQL 3.2 only, so no
`date` type, no materialized views, no GROUP BY.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleetsense.cloud.column_copy import copy_column
from fleetsense.cloud.table_model import Column, Table
from fleetsense.cloud.tables import QUARANTINE_TTL_S, REJECTED_TTL_S, SAMPLE_TTL_S, TABLES

log = logging.getLogger(__name__)

KEYSPACE = "fleetsense"
REPLICATION_ENV = "FLEETSENSE_CQL_REPLICATION"
LOCAL_REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"

__all__ = ["KEYSPACE", "MIGRATIONS", "QUARANTINE_TTL_S", "REJECTED_TTL_S", "SAMPLE_TTL_S", "apply_schema"]


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
)


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
        return f"ALTER TABLE {{ks}}.{self.table.name} ADD {self.column.name} {self.column.cql_type}"


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


Step = CreateTable | AddColumn | DropTable | CopyColumn


def steps(version: int) -> list[Step]:
    """What migration `version` does, in order: create tables, add columns, drop tables, copy columns."""
    created: list[Step] = [CreateTable(t, version) for t in TABLES if t.since == version]
    added: list[Step] = [AddColumn(t, c) for t in TABLES if t.since < version for c in t.columns if c.since == version]
    dropped: list[Step] = [DropTable(t) for t in TABLES if t.dropped == version]
    copied: list[Step] = [
        CopyColumn(t, c.replaces, c.name) for t in TABLES for c in t.columns if c.since == version and c.replaces
    ]
    return [*created, *added, *dropped, *copied]


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


def cql_of(step: CreateTable | AddColumn | DropTable, keyspace: str, release_version: str) -> str:
    """The statement of a schema step for a keyspace on a server of `release_version`."""
    return step.cql(lambda window_hours: time_series_compaction(release_version, window_hours)).replace(
        "{ks}", keyspace
    )


def replication() -> str:
    return os.environ.get(REPLICATION_ENV, LOCAL_REPLICATION)


def apply_schema(session: Any, *, keyspace: str = KEYSPACE, up_to: int | None = None) -> list[int]:
    """Create the keyspace and run every migration not yet recorded (up to version `up_to`, default all); returns
    the versions applied now. A migration cut off halfway (a crash, a lost connection) is simply run again: tables
    are created IF NOT EXISTS, a column is added only if missing, and a copy skips what it has copied."""
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
            elif not (isinstance(step, AddColumn) and step.column.name in _columns(session, keyspace, step.table)):
                session.execute(cql_of(step, keyspace, release))
        # The time comes from the client: dateOf() is gone in 5.0 and toTimestamp() is missing in 2.1.
        session.execute(
            f"INSERT INTO {keyspace}.schema_migrations (version, description, applied_at) VALUES (%s, %s, %s)",
            (migration.version, migration.description, datetime.now(UTC)),
        )
        applied.append(migration.version)
    return applied


def _columns(session: Any, keyspace: str, table: Table) -> list[str]:
    """The table's columns as the server has them now (a result's column names hold on every version)."""
    return list(session.execute(f"SELECT * FROM {keyspace}.{table.name} LIMIT 1").column_names)


def schema_version(session: Any, *, keyspace: str = KEYSPACE) -> int:
    rows = session.execute(f"SELECT version FROM {keyspace}.schema_migrations")
    return max((row.version for row in rows), default=0)
