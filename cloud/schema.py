"""The Cassandra data model, applied idempotently as numbered migrations.

Every statement must run on Cassandra 2.1 (the local stack) and on 4.x/5.x (production): CQL 3.2 only, so no
`date` type, no materialized views, no GROUP BY.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleetsense.wire import CHANNEL_NAMES, Kind

KEYSPACE = "fleetsense"
REPLICATION_ENV = "FLEETSENSE_CQL_REPLICATION"
LOCAL_REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# double for pressure: float's 24-bit mantissa would round 101325.37 Pa to 0.01 Pa steps at best.
DOUBLE_COLUMNS = frozenset({"pressure_pa"})


def sample_table(table: str, kind: Kind) -> str:
    """A raw-sample table for one kind of batch; its value columns are the wire format's channel names.

    One partition per vehicle and UTC hour: 360,000 rows at 100 Hz, well inside Cassandra's comfort.
    (seq, sample_index) is the sample's identity, so a redelivered batch overwrites itself.
    """
    values = "".join(
        f"{name} {'double' if name in DOUBLE_COLUMNS else 'float'},\n                " for name in CHANNEL_NAMES[kind]
    )
    return f"""CREATE TABLE IF NOT EXISTS {{ks}}.{table} (
                vehicle_id text,
                hour_bucket timestamp,
                seq bigint,
                sample_index int,
                sample_time timestamp,
                {values}PRIMARY KEY ((vehicle_id, hour_bucket), seq, sample_index)
            ) WITH CLUSTERING ORDER BY (seq DESC, sample_index DESC)"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="raw accelerometer samples, vehicles seen, rejected messages",
        statements=(
            # One partition per vehicle and UTC hour: 360,000 rows at 100 Hz, well inside Cassandra's comfort.
            # (seq, sample_index) is the sample's identity, so a redelivered batch overwrites itself.
            sample_table("accel_samples", Kind.ACCEL),
            # Which hour buckets hold a vehicle's samples, so readers never scan.
            """CREATE TABLE IF NOT EXISTS {ks}.vehicle_hours (
                vehicle_id text,
                hour_bucket timestamp,
                PRIMARY KEY (vehicle_id, hour_bucket)
            ) WITH CLUSTERING ORDER BY (hour_bucket DESC)""",
            # Written with USING TIMESTAMP = sample time, so a replayed old batch never overwrites newer state.
            """CREATE TABLE IF NOT EXISTS {ks}.vehicles (
                vehicle_id text PRIMARY KEY,
                last_seq bigint,
                last_sample_time timestamp
            )""",
            """CREATE TABLE IF NOT EXISTS {ks}.rejected_messages (
                day_bucket text,
                received_at timeuuid,
                routing_key text,
                reason text,
                excerpt blob,
                size_bytes int,
                PRIMARY KEY (day_bucket, received_at)
            ) WITH CLUSTERING ORDER BY (received_at DESC)""",
        ),
    ),
    Migration(
        version=2,
        description="six-channel IMU samples and barometer samples (wire format v2)",
        statements=(
            sample_table("imu_samples", Kind.IMU),
            sample_table("environment_samples", Kind.BARO),
        ),
    ),
)

# Where each kind of batch is stored; its value columns are the wire format's channel names.
SAMPLE_TABLES: dict[Kind, str] = {
    Kind.ACCEL: "accel_samples",
    Kind.IMU: "imu_samples",
    Kind.BARO: "environment_samples",
}


def replication() -> str:
    return os.environ.get(REPLICATION_ENV, LOCAL_REPLICATION)


def apply_schema(session: Any, *, keyspace: str = KEYSPACE) -> list[int]:
    """Create the keyspace and run every migration not yet recorded; returns the versions applied now."""
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication()}")
    session.execute(
        f"""CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations (
            version int PRIMARY KEY,
            description text,
            applied_at timestamp
        )"""
    )
    done = {row.version for row in session.execute(f"SELECT version FROM {keyspace}.schema_migrations")}
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        # IF NOT EXISTS everywhere: a migration cut off halfway is simply run again.
        for statement in migration.statements:
            session.execute(statement.format(ks=keyspace))
        # The time comes from the client: dateOf() is gone in 5.0 and toTimestamp() is missing in 2.1.
        session.execute(
            f"INSERT INTO {keyspace}.schema_migrations (version, description, applied_at) VALUES (%s, %s, %s)",
            (migration.version, migration.description, datetime.now(UTC)),
        )
        applied.append(migration.version)
    return applied


def schema_version(session: Any, *, keyspace: str = KEYSPACE) -> int:
    rows = session.execute(f"SELECT version FROM {keyspace}.schema_migrations")
    return max((row.version for row in rows), default=0)
