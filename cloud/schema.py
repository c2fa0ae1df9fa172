"""The Cassandra data model, applied idempotently as numbered migrations.

Every statement must run on Cassandra 2.1 (the local stack) and on 4.x/5.x (production): CQL 3.2 only, so no
`date` type, no materialized views, no GROUP BY.
"""

from __future__ import annotations

import os
import re
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

MIGRATIONS += (
    Migration(
        version=3,
        description="sample blocks with a TTL, driving events, trips, minute aggregates, scores, vehicle status",
        statements=(
            # One row per batch: the wire message itself (5-8 bytes a sample, CRC-checked), decoded by readers
            # with cloud.decode. 100x fewer writes than a row per sample. Partition: vehicle and UTC hour.
            """CREATE TABLE IF NOT EXISTS {ks}.sample_blocks (
                vehicle_id text,
                hour_bucket timestamp,
                seq bigint,
                kind int,
                start_time timestamp,
                sample_period_us int,
                sample_count int,
                flags int,
                message blob,
                PRIMARY KEY ((vehicle_id, hour_bucket), seq)
            ) WITH CLUSTERING ORDER BY (seq DESC)
              AND default_time_to_live = {sample_ttl_s}
              AND compaction = {compaction_hourly}""",
            # Events of every kind (harsh_brake, harsh_acceleration, harsh_corner_left/right, bump, stop,
            # temperature_excursion); `peak` is in `peak_unit` (g, degC). Keyed by start, so a replay overwrites.
            """CREATE TABLE IF NOT EXISTS {ks}.events_by_vehicle (
                vehicle_id text,
                day_bucket text,
                start_time timestamp,
                kind text,
                end_time timestamp,
                duration_ms int,
                peak float,
                peak_unit text,
                detected_at timestamp,
                PRIMARY KEY ((vehicle_id, day_bucket), start_time, kind)
            ) WITH CLUSTERING ORDER BY (start_time DESC, kind ASC)
              AND compaction = {compaction_daily}""",
            # The whole fleet's events of one UTC hour: bounded partitions, a day is 24 reads.
            """CREATE TABLE IF NOT EXISTS {ks}.events_by_fleet (
                day_bucket text,
                hour int,
                start_time timestamp,
                vehicle_id text,
                kind text,
                end_time timestamp,
                duration_ms int,
                peak float,
                peak_unit text,
                PRIMARY KEY ((day_bucket, hour), start_time, vehicle_id, kind)
            ) WITH CLUSTERING ORDER BY (start_time DESC, vehicle_id ASC, kind ASC)
              AND compaction = {compaction_daily}""",
            # Running totals of the minute, upserted after every batch (idempotent: a replay rewrites the same).
            """CREATE TABLE IF NOT EXISTS {ks}.minute_aggregates (
                vehicle_id text,
                day_bucket text,
                minute timestamp,
                sample_count int,
                moving_s float,
                max_longitudinal_g float,
                max_lateral_g float,
                rms_vertical_g float,
                event_counts map<text, int>,
                mean_temperature_c float,
                altitude_change_m float,
                updated_at timestamp,
                PRIMARY KEY ((vehicle_id, day_bucket), minute)
            ) WITH CLUSTERING ORDER BY (minute DESC)
              AND compaction = {compaction_daily}""",
            """CREATE TABLE IF NOT EXISTS {ks}.trips (
                vehicle_id text,
                start_time timestamp,
                end_time timestamp,
                duration_s float,
                open boolean,
                event_counts map<text, int>,
                score float,
                PRIMARY KEY (vehicle_id, start_time)
            ) WITH CLUSTERING ORDER BY (start_time DESC)""",
            """CREATE TABLE IF NOT EXISTS {ks}.driver_scores (
                vehicle_id text,
                day_bucket text,
                score float,
                driving_s float,
                event_counts map<text, int>,
                updated_at timestamp,
                PRIMARY KEY (vehicle_id, day_bucket)
            ) WITH CLUSTERING ORDER BY (day_bucket DESC)""",
            # Latest status per vehicle from its status messages and its last will ("connection lost").
            """CREATE TABLE IF NOT EXISTS {ks}.vehicle_status (
                vehicle_id text PRIMARY KEY,
                online boolean,
                reason text,
                status_time timestamp,
                received_at timestamp,
                outbox_depth int,
                dropped_total bigint,
                detail text
            )""",
            # What the sequencer gave up waiting for (or the device said it dropped) ...
            """CREATE TABLE IF NOT EXISTS {ks}.sequence_gaps (
                vehicle_id text,
                first_seq bigint,
                last_seq bigint,
                recorded_at timestamp,
                PRIMARY KEY (vehicle_id, first_seq)
            ) WITH CLUSTERING ORDER BY (first_seq DESC)""",
            # ... and batches that arrived after their gap was given up on: stored in sample_blocks, not analysed.
            """CREATE TABLE IF NOT EXISTS {ks}.late_batches (
                vehicle_id text,
                seq bigint,
                arrived_at timestamp,
                PRIMARY KEY (vehicle_id, seq)
            ) WITH CLUSTERING ORDER BY (seq DESC)""",
            # The rejected message's identity is a hash of its routing key and bytes: a redelivered bad message
            # lands on the same row instead of being recorded twice.
            """CREATE TABLE IF NOT EXISTS {ks}.rejected_by_day (
                day_bucket text,
                message_id text,
                received_at timestamp,
                routing_key text,
                reason text,
                excerpt blob,
                size_bytes int,
                PRIMARY KEY (day_bucket, message_id)
            )""",
            "DROP TABLE IF EXISTS {ks}.rejected_messages",
            "DROP TABLE IF EXISTS {ks}.accel_samples",
            "DROP TABLE IF EXISTS {ks}.imu_samples",
            "DROP TABLE IF EXISTS {ks}.environment_samples",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        version=4,
        description="vehicle profiles: each vehicle's class picks its event thresholds",
        statements=(
            """CREATE TABLE IF NOT EXISTS {ks}.vehicle_profiles (
                vehicle_id text PRIMARY KEY,
                vehicle_class text,
                updated_at timestamp
            )""",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        version=5,
        description="sequence epochs in the keys of raw batches, gaps and late batches; rejected messages by source "
        "and day with a TTL; reused seqs; sequence restarts",
        statements=(
            # A vehicle's batches are identified by (epoch, seq): a replaced device counts from 0 again in a new
            # epoch (docs/wire-format.md), so seq alone no longer names one batch. These replace sample_blocks,
            # sequence_gaps and late_batches (left in place, no longer written: their rows age out or stay as
            # they were).
            """CREATE TABLE IF NOT EXISTS {ks}.batches (
                vehicle_id text,
                hour_bucket timestamp,
                epoch bigint,
                seq bigint,
                kind int,
                start_time timestamp,
                sample_period_us int,
                sample_count int,
                flags int,
                message blob,
                PRIMARY KEY ((vehicle_id, hour_bucket), epoch, seq)
            ) WITH CLUSTERING ORDER BY (epoch ASC, seq DESC)
              AND default_time_to_live = {sample_ttl_s}
              AND compaction = {compaction_hourly}""",
            """CREATE TABLE IF NOT EXISTS {ks}.seq_gaps (
                vehicle_id text,
                epoch bigint,
                first_seq bigint,
                last_seq bigint,
                recorded_at timestamp,
                PRIMARY KEY (vehicle_id, epoch, first_seq)
            ) WITH CLUSTERING ORDER BY (epoch ASC, first_seq DESC)""",
            """CREATE TABLE IF NOT EXISTS {ks}.late_arrivals (
                vehicle_id text,
                epoch bigint,
                seq bigint,
                arrived_at timestamp,
                PRIMARY KEY (vehicle_id, epoch, seq)
            ) WITH CLUSTERING ORDER BY (epoch ASC, seq DESC)""",
            # One partition per source (the vehicle its routing key names) and UTC day: a noisy device fills only
            # its own partition, and the job records at most a few rows a minute per source (every rejection is
            # still counted). The message id (a hash of key and bytes) keeps a redelivery on the same row.
            """CREATE TABLE IF NOT EXISTS {ks}.rejected_by_source (
                source text,
                day_bucket text,
                message_id text,
                received_at timestamp,
                routing_key text,
                reason text,
                excerpt blob,
                size_bytes int,
                PRIMARY KEY ((source, day_bucket), message_id)
            ) WITH default_time_to_live = {rejected_ttl_s}""",
            # Which sources had rejections on a day (one row per source and day), so a reader never scans.
            """CREATE TABLE IF NOT EXISTS {ks}.rejected_sources (
                day_bucket text,
                source text,
                last_reason text,
                last_at timestamp,
                PRIMARY KEY (day_bucket, source)
            ) WITH default_time_to_live = {rejected_ttl_s}""",
            # A seq that came again with other content: both CRC-32s kept and the other copy whole; the first copy
            # is the one stored and analysed. `epoch` is the vehicle's sequence epoch (below) at the time.
            """CREATE TABLE IF NOT EXISTS {ks}.seq_conflicts (
                vehicle_id text,
                seq bigint,
                other_crc bigint,
                epoch bigint,
                first_crc bigint,
                recorded_at timestamp,
                message blob,
                PRIMARY KEY (vehicle_id, seq, other_crc)
            ) WITH CLUSTERING ORDER BY (seq DESC, other_crc ASC)""",
            # A device that started its sequence again (reflashed, replaced): the vehicle's sequence epoch counts
            # up, and the new sequence is stored and analysed from its first batch.
            """CREATE TABLE IF NOT EXISTS {ks}.sequence_restarts (
                vehicle_id text,
                epoch bigint,
                restarted_at timestamp,
                previous_next_seq bigint,
                first_seq bigint,
                PRIMARY KEY (vehicle_id, epoch)
            ) WITH CLUSTERING ORDER BY (epoch DESC)""",
            "DROP TABLE IF EXISTS {ks}.rejected_by_day",
        ),
    ),
)


def add_column(table: str, column: str, cql_type: str) -> str:
    """A column added to an existing table. CQL 3.2 has no ALTER ... ADD IF NOT EXISTS: `apply_schema` runs it only
    when the table lacks the column, so a migration cut off halfway can still simply run again."""
    return f"ALTER TABLE {{ks}}.{table} ADD {column} {cql_type}"


ADDED_COLUMN = re.compile(r"ALTER TABLE \{ks\}\.(\w+) ADD (\w+) ([\w<>, ]+)")

# What the status message says about restarts and storage (fleetsense/status.py), kept with the vehicle's latest
# status (the `status` statement in cloud/store.py writes them in this order).
STATUS_HEALTH_COLUMNS: tuple[tuple[str, str], ...] = (
    ("epoch", "bigint"),  # the sequence epoch the status speaks for (None: not stated)
    ("restarts", "int"),
    ("unclean_restarts", "int"),
    ("last_restart_lost_ms", "bigint"),
    ("storage_error", "text"),
    ("memory_batches", "int"),
    ("held_unsynced", "int"),
)

MIGRATIONS += (
    Migration(
        version=6,
        description="time quarantine (telemetry rejected for its time, kept whole to be re-admitted); restarts, "
        "time lost and storage faults from the status: latest values in vehicle_status, a history of restarts",
        statements=(
            # Every message rejected for its sample times ("in the future", "more than 30 days old"), whole, so
            # `fleetsense quarantine readmit` can publish it again, re-timed. One partition per vehicle and UTC
            # day of arrival (the batch's own times are what is wrong); the message id is the rejection's (a hash
            # of routing key and bytes), so a redelivery lands on the same row. Times of the batch are kept as
            # microseconds (bigint): a wrong clock may claim a year no timestamp reader can show.
            """CREATE TABLE IF NOT EXISTS {ks}.time_quarantine (
                vehicle_id text,
                day_bucket text,
                message_id text,
                received_at timestamp,
                routing_key text,
                reason text,
                epoch bigint,
                seq bigint,
                kind int,
                start_time_us bigint,
                end_time_us bigint,
                message blob,
                PRIMARY KEY ((vehicle_id, day_bucket), message_id)
            ) WITH default_time_to_live = {quarantine_ttl_s}""",
            # Which vehicles have quarantined messages on a day, so a reader never scans.
            """CREATE TABLE IF NOT EXISTS {ks}.quarantine_days (
                day_bucket text,
                vehicle_id text,
                last_reason text,
                last_at timestamp,
                PRIMARY KEY (day_bucket, vehicle_id)
            ) WITH default_time_to_live = {quarantine_ttl_s}""",
            # One row per restart of the agent, numbered as its status counts them (`restarts`) within a sequence
            # epoch (a new state directory counts from 0 again, in a new epoch): when it started by the cloud's
            # clock (arrival of the status minus its uptime), after a crash or a clean stop (None: not known),
            # and the milliseconds of samples lost across it (None: not known).
            """CREATE TABLE IF NOT EXISTS {ks}.agent_restarts (
                vehicle_id text,
                epoch bigint,
                restart int,
                started_at timestamp,
                unclean boolean,
                lost_ms bigint,
                reported_at timestamp,
                PRIMARY KEY (vehicle_id, epoch, restart)
            ) WITH CLUSTERING ORDER BY (epoch DESC, restart DESC)""",
            *(add_column("vehicle_status", column, cql_type) for column, cql_type in STATUS_HEALTH_COLUMNS),
        ),
    ),
)

REJECTED_TTL_S = 30 * 86_400
SAMPLE_TTL_S = int(os.environ.get("FLEETSENSE_SAMPLE_TTL_S", str(90 * 86_400)))
# Longer than a rejection's 30 days: a wrong clock may be found (and the data re-admitted) weeks later.
QUARANTINE_TTL_S = int(os.environ.get("FLEETSENSE_QUARANTINE_TTL_S", str(90 * 86_400)))


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
    release = session.execute("SELECT release_version FROM system.local").one().release_version
    placeholders = {
        "ks": keyspace,
        "sample_ttl_s": SAMPLE_TTL_S,
        "rejected_ttl_s": REJECTED_TTL_S,
        "quarantine_ttl_s": QUARANTINE_TTL_S,
        "compaction_hourly": time_series_compaction(release, 1),
        "compaction_daily": time_series_compaction(release, 24),
    }
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        # IF NOT EXISTS everywhere: a migration cut off halfway is simply run again.
        for statement in migration.statements:
            added = ADDED_COLUMN.match(statement)
            if added and added.group(2) in _columns(session, keyspace, added.group(1)):
                continue
            session.execute(statement.format(**placeholders))
        # The time comes from the client: dateOf() is gone in 5.0 and toTimestamp() is missing in 2.1.
        session.execute(
            f"INSERT INTO {keyspace}.schema_migrations (version, description, applied_at) VALUES (%s, %s, %s)",
            (migration.version, migration.description, datetime.now(UTC)),
        )
        applied.append(migration.version)
    return applied


def _columns(session: Any, keyspace: str, table: str) -> list[str]:
    """The table's columns as the server has them now (a result's column names hold on every version)."""
    return list(session.execute(f"SELECT * FROM {keyspace}.{table} LIMIT 1").column_names)


def schema_version(session: Any, *, keyspace: str = KEYSPACE) -> int:
    rows = session.execute(f"SELECT version FROM {keyspace}.schema_migrations")
    return max((row.version for row in rows), default=0)
