"""Every Cassandra table fleetsense has ever had, declared once as data: columns (type, unit, meaning), keys and
their order, TTL, compaction, SAI indexes, the consistency its writers and readers use, why the table exists, the
migration that made it (and dropped it), and the job's statement that writes it. Everything else is derived
(cloud/table_model.py): the migrations' CREATE, ALTER and CREATE INDEX statements and table copies
(cloud/schema.py), the prepared INSERTs and their key lengths (cloud/store.py), the rows built by column name
(cloud/result_rows.py, cloud/status_rows.py), readers' SELECTs and the table reference in docs/cloud-etl.md
(cloud/table_docs.py).

Adding a column is one `Column(..., since=N)` here plus `Migration(version=N, ...)` in cloud/schema.py.
Every type is one of the constants below. The server is Cassandra 5.0 (migration 8 on needs it: `date`, SAI);
the tables of migrations 1-7 are declared as CQL 3.2 (Cassandra 2.1) built them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fleetsense.cloud.table_model import LOCAL_ONE, Column, Index, Order, Table, Ttl

from fleetsense import quantities
from fleetsense.wire import CHANNEL_NAMES, Kind

# --- CQL types: spelled here only, so a move to a newer Cassandra changes them in one place -----------------------
TEXT = "text"
INT = "int"
BIGINT = "bigint"
FLOAT = "float"
DOUBLE = "double"
BOOLEAN = "boolean"
BLOB = "blob"
TIMEUUID = "timeuuid"
TIMESTAMP = "timestamp"  # bound as ms since 1970 (UTC), read back as a naive UTC datetime
DAY = "date"  # a UTC day: bound as a datetime.date, read back as a cassandra.util.Date (== the datetime.date)
DAY_TEXT = TEXT  # a UTC day as text, "YYYY-MM-DD": the day keys of migrations 3-7 (CQL 3.2 has no `date`)
COUNTS = "map<text, int>"  # event kind -> events (every counted kind of fleetsense.event_kinds)
TEXT_SET = "set<text>"

# --- consistency: writes LOCAL_QUORUM, reads LOCAL_QUORUM unless a declaration says why not -------------------------
# With replication factor 1 (the local stack) every level is the same; on a ring of 3 (issue 16) they are not.
WRITE_CONSISTENCY_WHY = (
    "LOCAL_QUORUM: the job acknowledges its input to the broker once its writes are acknowledged, so a write held by "
    "one replica that fails before the others have it would be lost for good"
)
READ_CONSISTENCY_WHY = (
    "LOCAL_QUORUM: a quorum read overlaps every quorum write, so a reader sees whatever was stored before it asked"
)

# --- TTLs ---------------------------------------------------------------------------------------------------------
REJECTED_TTL = Ttl(30 * 86_400)
SAMPLE_TTL = Ttl(90 * 86_400, env="FLEETSENSE_SAMPLE_TTL_S")
# Longer than a rejection's 30 days: a wrong clock may be found (and the data re-admitted) weeks later.
QUARANTINE_TTL = Ttl(90 * 86_400, env="FLEETSENSE_QUARANTINE_TTL_S")
REJECTED_TTL_S, SAMPLE_TTL_S, QUARANTINE_TTL_S = REJECTED_TTL.seconds, SAMPLE_TTL.seconds, QUARANTINE_TTL.seconds
# The service layer's (issue 17): a browser session lives 12 h; a webhook's delivery log and its idempotency marks 30 d.
SESSION_TTL = Ttl(12 * 3_600)
DELIVERY_TTL = Ttl(30 * 86_400)

ASC, DESC = Order.ASC, Order.DESC


def _col(
    name: str, cql_type: str, meaning: str, unit: str = "", *, since: int | None = None, replaces: str | None = None
) -> Column:
    return Column(name=name, cql_type=cql_type, unit=unit, meaning=meaning, since=since, replaces=replaces)


# Columns several tables share, with the same meaning everywhere.
VEHICLE_ID = _col("vehicle_id", TEXT, "the vehicle, as its routing key names it (the broker authenticated it)")
DAY_BUCKET = _col("day_bucket", DAY, "UTC day of the row's time")
DAY_TEXT_BUCKET = _col("day_bucket", DAY_TEXT, "UTC day of the row's time, YYYY-MM-DD")
HOUR_BUCKET = _col("hour_bucket", TIMESTAMP, "start of the UTC hour of the batch's first sample", "ms")
EPOCH = _col("epoch", BIGINT, "the vehicle's sequence epoch (a replaced device counts from 0 again in a new one)")
SEQ = _col("seq", BIGINT, "the batch's sequence number within its epoch")
KIND = _col("kind", INT, "wire kind: 1 accelerometer, 2 IMU, 3 barometer")
WIRE_MESSAGE = _col("message", BLOB, "the wire message, every byte (docs/wire-format.md)")
EVENT_KIND = _col("kind", TEXT, "the event's kind (fleetsense.event_kinds: harsh_brake, bump, stop, ...)")
EVENT_COUNTS = _col("event_counts", COUNTS, "events of each counted kind", "events")
REJECTION = (
    _col("message_id", TEXT, "first 32 hex digits of SHA-256(routing key, 0x00, bytes): a redelivery is one row"),
    _col("received_at", TIMESTAMP, "when the job received it", "ms"),
    _col("routing_key", TEXT, "where it came from (first 300 characters)"),
    _col("reason", TEXT, "why it was rejected (first 1,000 characters)"),
    _col("excerpt", BLOB, "its first 256 bytes (all of it for a fault of ours)"),
    _col("size_bytes", INT, "its whole size", "bytes"),
)


def _sample_table(name: str, kind: Kind, *, since: int) -> Table:
    """A per-sample table of migrations 1-2: its value columns are the wire format's channel names."""
    return Table(
        name=name,
        why="one row per sample (replaced by one row per batch in migration 3: 100x fewer writes)",
        columns=(
            VEHICLE_ID,
            HOUR_BUCKET,
            SEQ,
            _col("sample_index", INT, "the sample's index in its batch"),
            _col("sample_time", TIMESTAMP, "the sample's time", "ms"),
            *(
                # double for pressure: float's 24-bit mantissa would round 101325.37 Pa to 0.01 Pa steps at best.
                _col(
                    channel,
                    DOUBLE if channel == "pressure_pa" else FLOAT,
                    quantities.BY_KEY[channel].description,
                    quantities.BY_KEY[channel].unit,
                )
                for channel in CHANNEL_NAMES[kind]
            ),
        ),
        partition_key=("vehicle_id", "hour_bucket"),
        clustering=(("seq", DESC), ("sample_index", DESC)),
        since=since,
        dropped=3,
    )


ACCEL_SAMPLES = _sample_table("accel_samples", Kind.ACCEL, since=1)
IMU_SAMPLES = _sample_table("imu_samples", Kind.IMU, since=2)
ENVIRONMENT_SAMPLES = _sample_table("environment_samples", Kind.BARO, since=2)

REJECTED_MESSAGES = Table(
    name="rejected_messages",
    why="rejected messages under a random key (replaced by rejected_by_day's content hash in migration 3)",
    columns=(
        DAY_TEXT_BUCKET,
        _col("received_at", TIMEUUID, "when it arrived, made unique"),
        *(c for c in REJECTION if c.name not in ("message_id", "received_at")),
    ),
    partition_key=("day_bucket",),
    clustering=(("received_at", DESC),),
    since=1,
    dropped=3,
)

VEHICLE_HOURS = Table(
    name="vehicle_hours",
    why="which hours hold a vehicle's batches, so readers never scan",
    columns=(VEHICLE_ID, HOUR_BUCKET),
    partition_key=("vehicle_id",),
    clustering=(("hour_bucket", DESC),),
    since=1,
    write="hour",
)

VEHICLES = Table(
    name="vehicles",
    why="the latest batch seen per vehicle; written USING TIMESTAMP = its sample time, so a replayed old batch never "
    "overwrites a newer one",
    columns=(
        VEHICLE_ID,
        _col("last_seq", BIGINT, "seq of the newest batch seen"),
        _col("last_sample_time", TIMESTAMP, "time of that batch's last sample", "ms"),
    ),
    partition_key=("vehicle_id",),
    since=1,
    write="vehicle",
    own_timestamp=True,
)

_BATCH_COLUMNS = (
    _col("start_time", TIMESTAMP, "the batch's first sample time", "ms"),
    _col("sample_period_us", INT, "time between samples", "µs"),
    _col("sample_count", INT, "samples in the batch"),
    _col("flags", INT, "the wire header's flags (CLOCK_UNSYNCED, GAP_BEFORE, CLOCK_STEPPED)"),
    WIRE_MESSAGE,
)

SAMPLE_BLOCKS = Table(
    name="sample_blocks",
    why="one row per batch keyed by seq alone (replaced by batches; its rows age out by their TTL)",
    columns=(VEHICLE_ID, HOUR_BUCKET, SEQ, KIND, *_BATCH_COLUMNS),
    partition_key=("vehicle_id", "hour_bucket"),
    clustering=(("seq", DESC),),
    ttl=SAMPLE_TTL,
    compaction_window_hours=1,
    since=3,
    retired=5,
)

BATCHES = Table(
    name="batches",
    why="the wire message as received, one row per batch (5-8 bytes a sample, decoded by readers with "
    "cloud.decode); one partition per vehicle and UTC hour; (epoch, seq) names a batch, so a redelivery overwrites "
    "itself",
    columns=(VEHICLE_ID, HOUR_BUCKET, EPOCH, SEQ, KIND, *_BATCH_COLUMNS),
    partition_key=("vehicle_id", "hour_bucket"),
    clustering=(("epoch", ASC), ("seq", DESC)),
    ttl=SAMPLE_TTL,
    compaction_window_hours=1,
    since=5,
    write="block",
)

_EVENT_COLUMNS = (
    _col("end_time", TIMESTAMP, "when it ended", "ms"),
    _col("duration_ms", INT, "how long it lasted", "ms"),
    _col("peak", FLOAT, "its peak, in peak_unit: g (driving, bump), s (a stop's length), degC (temperature)"),
    _col("peak_unit", TEXT, "the unit of peak (fleetsense.event_kinds)"),
)
EVENT_START = _col("start_time", TIMESTAMP, "when the event started", "ms")

EVENTS_BY_VEHICLE_V7 = Table(
    name="events_by_vehicle",
    why="a vehicle's events of a UTC day; keyed by start and kind, so a replay overwrites",
    columns=(
        VEHICLE_ID,
        DAY_TEXT_BUCKET,
        EVENT_START,
        EVENT_KIND,
        *_EVENT_COLUMNS,
        _col("detected_at", TIMESTAMP, "when the job detected it", "ms"),
    ),
    partition_key=("vehicle_id", "day_bucket"),
    clustering=(("start_time", DESC), ("kind", ASC)),
    compaction_window_hours=24,
    since=3,
    retired=8,  # its day key is text: copied into its successor (a CQL date key) in migration 8
)

EVENTS_BY_FLEET_V7 = Table(
    name="events_by_fleet",
    why="the whole fleet's events of one UTC hour: bounded partitions, a day is 24 reads",
    columns=(
        DAY_TEXT_BUCKET,
        _col("hour", INT, "UTC hour of day of the start, 0-23"),
        EVENT_START,
        VEHICLE_ID,
        EVENT_KIND,
        *_EVENT_COLUMNS,
    ),
    partition_key=("day_bucket", "hour"),
    clustering=(("start_time", DESC), ("vehicle_id", ASC), ("kind", ASC)),
    compaction_window_hours=24,
    since=3,
    retired=8,  # its day key is text: copied into its successor (a CQL date key) in migration 8
)

MINUTE_AGGREGATES_V7 = Table(
    name="minute_aggregates",
    why="running totals of each minute, upserted after every batch (idempotent: a replay rewrites the same)",
    columns=(
        VEHICLE_ID,
        DAY_TEXT_BUCKET,
        _col("minute", TIMESTAMP, "start of the UTC minute", "ms"),
        _col("sample_count", INT, "IMU samples analysed in the minute"),
        # Its old name: the analytics call it driving_s, as driver_scores does. Cassandra 2.1 renames no column, so
        # driving_s was added and filled from it (migration 7). Kept, not dropped: the job being upgraded still
        # writes it until it stops (a dropped column would fail its prepared INSERT), and a rollback stays possible.
        _col("moving_s", FLOAT, "what driving_s meant before migration 7: no longer written or read", "s"),
        _col("driving_s", FLOAT, "time the vehicle was moving in the minute", "s", since=7, replaces="moving_s"),
        _col("max_longitudinal_g", FLOAT, "largest |longitudinal acceleration|", "g"),
        _col("max_lateral_g", FLOAT, "largest |lateral acceleration|", "g"),
        _col("rms_vertical_g", FLOAT, "RMS of vertical acceleration minus gravity", "g"),
        EVENT_COUNTS,
        _col("mean_temperature_c", FLOAT, "mean cabin temperature (null without barometer samples)", "degC"),
        _col("altitude_change_m", FLOAT, "altitude change over the minute, from pressure (null without)", "m"),
        _col("updated_at", TIMESTAMP, "when the job last wrote the row", "ms"),
    ),
    partition_key=("vehicle_id", "day_bucket"),
    clustering=(("minute", DESC),),
    compaction_window_hours=24,
    since=3,
    retired=8,  # its day key is text: copied into its successor (a CQL date key) in migration 8
)

TRIPS = Table(
    name="trips",
    why="one row per trip, the open one rewritten as it grows",
    columns=(
        VEHICLE_ID,
        _col("start_time", TIMESTAMP, "when the trip started", "ms"),
        _col("end_time", TIMESTAMP, "when it ended (so far, while open)", "ms"),
        _col("duration_s", FLOAT, "its length", "s"),
        _col("open", BOOLEAN, "still going"),
        EVENT_COUNTS,
        _col("score", FLOAT, "the trip's driver score, 0-100 (docs/analytics.md)", "points"),
    ),
    partition_key=("vehicle_id",),
    clustering=(("start_time", DESC),),
    since=3,
    write="trip",
    versioned=True,
)

DRIVER_SCORES_V7 = Table(
    name="driver_scores",
    why="a vehicle's score per UTC day, rewritten as the day goes on",
    columns=(
        VEHICLE_ID,
        DAY_TEXT_BUCKET,
        _col("score", FLOAT, "the day's driver score, 0-100 (docs/analytics.md)", "points"),
        _col("driving_s", FLOAT, "time the vehicle was moving that day", "s"),
        EVENT_COUNTS,
        _col("updated_at", TIMESTAMP, "when the job last wrote the row", "ms"),
    ),
    partition_key=("vehicle_id",),
    clustering=(("day_bucket", DESC),),
    since=3,
    retired=8,  # its day key is text: copied into its successor (a CQL date key) in migration 8
)

VEHICLE_STATUS = Table(
    name="vehicle_status",
    why="the latest status per vehicle, from its status messages and its last will; written in arrival order (a "
    "last will is composed at connect time, so its own time is older than the heartbeats it follows)",
    columns=(
        VEHICLE_ID,
        _col("online", BOOLEAN, "connected, as the status or the last will says"),
        _col("reason", TEXT, "heartbeat, connected, stopping, or connection lost (the last will)"),
        _col("status_time", TIMESTAMP, "the status's own time (null: the device's clock was not known good)", "ms"),
        _col("received_at", TIMESTAMP, "when the job received it", "ms"),
        _col("outbox_depth", INT, "batches waiting in the device's outbox"),
        _col("dropped_total", BIGINT, "batches the device ever dropped"),
        _col("detail", TEXT, "JSON: agent version, clock synced, uptime, sensor health, next seq, set-aside rows"),
        # What the status message says about restarts and storage (fleetsense/status.py), null when it does not.
        _col("epoch", BIGINT, "the sequence epoch the status speaks for", since=6),
        _col("restarts", INT, "starts of the agent after the first since its state directory was made", since=6),
        _col("unclean_restarts", INT, "of those, how many followed no recorded clean stop (a crash)", since=6),
        _col("last_restart_lost_ms", BIGINT, "samples lost across the last restart", "ms", since=6),
        _col("storage_error", TEXT, "the outbox's current storage fault (null when storage works)", since=6),
        _col("memory_batches", INT, "batches held in memory while storage fails", since=6),
        _col("held_unsynced", INT, "batches held on the device until its clock is known good", since=6),
        # The driver badge in the vehicle's reader (issue 17): the service's badge sweep makes it an assignment.
        _col(
            "badge_id", TEXT, "the RFID badge the vehicle's reader holds (null: none, or an agent without one)", since=9
        ),
    ),
    partition_key=("vehicle_id",),
    since=3,
    write="status",
)

_GAP = (
    _col("first_seq", BIGINT, "first seq of the gap"),
    _col("last_seq", BIGINT, "last seq of the gap"),
    _col("recorded_at", TIMESTAMP, "when the job gave up on it (or the device declared it)", "ms"),
)
SEQUENCE_GAPS = Table(
    name="sequence_gaps",
    why="gaps keyed by seq alone (replaced by seq_gaps)",
    columns=(VEHICLE_ID, *_GAP),
    partition_key=("vehicle_id",),
    clustering=(("first_seq", DESC),),
    since=3,
    retired=5,
)
SEQ_GAPS = Table(
    name="seq_gaps",
    why="what the sequencer gave up waiting for, or the device said it dropped",
    columns=(VEHICLE_ID, EPOCH, *_GAP),
    partition_key=("vehicle_id",),
    clustering=(("epoch", ASC), ("first_seq", DESC)),
    since=5,
    write="gap",
)

_ARRIVED = _col("arrived_at", TIMESTAMP, "when it arrived", "ms")
LATE_BATCHES = Table(
    name="late_batches",
    why="late batches keyed by seq alone (replaced by late_arrivals)",
    columns=(VEHICLE_ID, SEQ, _ARRIVED),
    partition_key=("vehicle_id",),
    clustering=(("seq", DESC),),
    since=3,
    retired=5,
)
LATE_ARRIVALS = Table(
    name="late_arrivals",
    why="batches that arrived after their gap was given up on: stored in batches, not analysed",
    columns=(VEHICLE_ID, EPOCH, SEQ, _ARRIVED),
    partition_key=("vehicle_id",),
    clustering=(("epoch", ASC), ("seq", DESC)),
    since=5,
    write="late",
)

REJECTED_BY_DAY = Table(
    name="rejected_by_day",
    why="rejections of a day keyed by content hash (replaced by per-source partitions in migration 5)",
    columns=(DAY_TEXT_BUCKET, *REJECTION),
    partition_key=("day_bucket",),
    clustering=(("message_id", ASC),),
    since=3,
    dropped=5,
)

VEHICLE_PROFILES = Table(
    name="vehicle_profiles",
    why="each vehicle's class, which picks its event thresholds (written by `fleetsense vehicle-class`)",
    columns=(
        VEHICLE_ID,
        _col("vehicle_class", TEXT, "car, van or truck"),
        _col("updated_at", TIMESTAMP, "when it was set: a newer setting wins", "ms"),
    ),
    partition_key=("vehicle_id",),
    since=4,
    read_consistency=LOCAL_ONE,
    consistency_why="the job re-reads every profile each 60 s: a read that misses a setting just made sees it at the "
    "next refresh",
)

REJECTED_BY_SOURCE_V7 = Table(
    name="rejected_by_source",
    why="rejected input, one partition per source (the vehicle its routing key names) and UTC day: a noisy device "
    "fills only its own; at most a few rows a minute per source (cloud/rejections.py), every rejection counted",
    columns=(_col("source", TEXT, "the vehicle the routing key names, or '' for none"), DAY_TEXT_BUCKET, *REJECTION),
    partition_key=("source", "day_bucket"),
    clustering=(("message_id", ASC),),
    ttl=REJECTED_TTL,
    since=5,
    retired=8,  # its day key is text: copied into its successor (a CQL date key) in migration 8
)

_LAST = (
    _col("last_reason", TEXT, "the reason of the latest"),
    _col("last_at", TIMESTAMP, "when the latest was received", "ms"),
)
REJECTED_SOURCES_V7 = Table(
    name="rejected_sources",
    why="which sources had rejections on a day, so a reader never scans",
    columns=(DAY_TEXT_BUCKET, _col("source", TEXT, "the vehicle the routing key names, or '' for none"), *_LAST),
    partition_key=("day_bucket",),
    clustering=(("source", ASC),),
    ttl=REJECTED_TTL,
    since=5,
    retired=8,  # its day key is text: copied into its successor (a CQL date key) in migration 8
)

SEQ_CONFLICTS = Table(
    name="seq_conflicts",
    why="a seq that came again with other content: both CRC-32s and the other copy whole; the first copy is the one "
    "stored and analysed",
    columns=(
        VEHICLE_ID,
        SEQ,
        _col("other_crc", BIGINT, "CRC-32 of the other copy"),
        _col("epoch", BIGINT, "the vehicle's sequence epoch at the time"),
        _col("first_crc", BIGINT, "CRC-32 of the copy stored"),
        _col("recorded_at", TIMESTAMP, "when the other copy arrived", "ms"),
        _col("message", BLOB, "the other copy, every byte"),
    ),
    partition_key=("vehicle_id",),
    clustering=(("seq", DESC), ("other_crc", ASC)),
    since=5,
    write="conflict",
)

SEQUENCE_RESTARTS = Table(
    name="sequence_restarts",
    why="a device that started its sequence again (reflashed, replaced): the vehicle's sequence epoch counts up",
    columns=(
        VEHICLE_ID,
        _col("epoch", BIGINT, "the new sequence's epoch"),
        _col("restarted_at", TIMESTAMP, "when the job saw it", "ms"),
        _col("previous_next_seq", BIGINT, "the seq the old sequence expected next (null: beyond a bigint)"),
        _col("first_seq", BIGINT, "the new sequence's first seq"),
    ),
    partition_key=("vehicle_id",),
    clustering=(("epoch", DESC),),
    since=5,
    write="restart",
)

TIME_QUARANTINE_V7 = Table(
    name="time_quarantine",
    why="every message rejected for its sample times, whole, so `fleetsense quarantine readmit` can publish it "
    "again, re-timed; one partition per vehicle and UTC day of arrival (the batch's own times are what is wrong)",
    columns=(
        _col("vehicle_id", TEXT, "the vehicle its routing key names (the payload names the same)"),
        _col("day_bucket", DAY_TEXT, "UTC day the cloud received it, YYYY-MM-DD"),
        REJECTION[0],
        _col("received_at", TIMESTAMP, "when the job received it", "ms"),
        _col("routing_key", TEXT, "fleet.<vehicle>.telemetry: where a readmission publishes it"),
        _col("reason", TEXT, "the rejection's reason (in the future, more than 30 days old, clock not synchronised)"),
        _col("epoch", BIGINT, "the batch's sequence epoch (0: v1/v2), from its header"),
        _col("seq", BIGINT, "the batch's seq, from its header"),
        KIND,
        # bigint, not timestamp: a wrong clock may claim a year no timestamp reader can show.
        _col("start_time_us", BIGINT, "the batch's first sample time as the device claimed it", "µs since 1970"),
        _col("end_time_us", BIGINT, "its last sample time (capped at 2^63-1)", "µs since 1970"),
        WIRE_MESSAGE,
    ),
    partition_key=("vehicle_id", "day_bucket"),
    clustering=(("message_id", ASC),),
    ttl=QUARANTINE_TTL,
    since=6,
    retired=8,  # its day key is text: copied into its successor (a CQL date key) in migration 8
)

QUARANTINE_DAYS_V7 = Table(
    name="quarantine_days",
    why="which vehicles have quarantined messages on a day, so a reader never scans",
    columns=(DAY_TEXT_BUCKET, VEHICLE_ID, *_LAST),
    partition_key=("day_bucket",),
    clustering=(("vehicle_id", ASC),),
    ttl=QUARANTINE_TTL,
    since=6,
    retired=8,  # its day key is text: copied into its successor (a CQL date key) in migration 8
)

AGENT_RESTARTS = Table(
    name="agent_restarts",
    why="one row per restart of the agent, numbered as its status counts them within a sequence epoch",
    columns=(
        VEHICLE_ID,
        _col("epoch", BIGINT, "the status's sequence epoch (a new state directory counts from 0 again)"),
        _col("restart", INT, "the restart's number, as the status's restarts counts it"),
        _col("started_at", TIMESTAMP, "arrival of the status that showed it minus its uptime (null: missed)", "ms"),
        _col("unclean", BOOLEAN, "after a crash (true), a clean stop (false), or not known (null)"),
        _col("lost_ms", BIGINT, "samples lost across it (null: not known or missed)", "ms"),
        _col("reported_at", TIMESTAMP, "arrival of the status that first showed it", "ms"),
    ),
    partition_key=("vehicle_id",),
    clustering=(("epoch", DESC), ("restart", DESC)),
    since=6,
    write="agent_restart",
)

# --- migration 8: every table keyed by a day gets a successor keyed by a CQL date -----------------------------------
# A key column's type cannot be altered, so each is a new table with the same columns (those its predecessor still
# writes), its day key a `date`, and migration 8 copies its predecessor's rows (cloud/table_copy.py). The job writes
# the successor under the statement name its predecessor had.


def _dated(old: Table, *, name: str, write: str, indexes: tuple[Index, ...] = (), versioned: bool = False) -> Table:
    """The successor of `old` (a table keyed by a text day): the columns it still writes, its day a CQL date."""
    columns = tuple(
        replace(
            c,
            cql_type=DAY if c.cql_type == DAY_TEXT and c.name == "day_bucket" else c.cql_type,
            meaning=c.meaning.replace(", YYYY-MM-DD", ""),
            since=None,
            replaces=None,
        )
        for c in old.columns
        if c.name in old.written_columns
    )
    return replace(
        old,
        name=name,
        columns=columns,
        since=8,
        retired=None,
        write=write,
        replaces=old.name,
        indexes=indexes,
        versioned=versioned,
    )


EVENTS_BY_VEHICLE = _dated(
    EVENTS_BY_VEHICLE_V7,
    name="vehicle_events",
    write="event_by_vehicle",
    indexes=(Index(column="kind", why="a vehicle's events of one kind on a day, without ALLOW FILTERING"),),
    versioned=True,
)
EVENTS_BY_FLEET = _dated(
    EVENTS_BY_FLEET_V7,
    name="fleet_events",
    write="event_by_fleet",
    indexes=(Index(column="kind", why="the fleet's events of one kind, in an hour or across every partition"),),
    versioned=True,
)
MINUTE_AGGREGATES = _dated(MINUTE_AGGREGATES_V7, name="vehicle_minutes", write="minute", versioned=True)
DRIVER_SCORES = _dated(DRIVER_SCORES_V7, name="daily_scores", write="score", versioned=True)
REJECTED_BY_SOURCE = _dated(REJECTED_BY_SOURCE_V7, name="source_rejections", write="rejected")
REJECTED_SOURCES = _dated(REJECTED_SOURCES_V7, name="rejection_sources", write="rejected_source")
TIME_QUARANTINE = _dated(TIME_QUARANTINE_V7, name="quarantined_messages", write="quarantine")
QUARANTINE_DAYS = _dated(QUARANTINE_DAYS_V7, name="quarantined_vehicles", write="quarantine_day")


# --- migration 9: the service layer's own tables (issue 17), written by `fleetsense serve`, never by the job -------
# One fleet per installation; `fleet_id` is its partition ("default"), so every list an operator sees (vehicles,
# drivers, users, webhooks) is one bounded partition and a read never scans.
FLEET_ID = _col("fleet_id", TEXT, 'the fleet (one per installation: "default")')
DRIVER_ID = _col("driver_id", TEXT, "the driver, as the fleet names them (letters, digits, - and _)")
USERNAME = _col("username", TEXT, "an operator's login name")
_SET_AT = (
    _col("set_by", TEXT, "who set it: an operator's username, `badge` (read by the vehicle's agent) or `cli`"),
    _col("set_at", TIMESTAMP, "when it was set", "ms"),
)
_ASSIGNMENT = (
    _col("valid_to", TIMESTAMP, "when it ends (exclusive; null: still running)", "ms"),
    _col("source", TEXT, "api, cli or badge"),
    *_SET_AT,
)
VALID_FROM = _col("valid_from", TIMESTAMP, "when the driver took the vehicle (inclusive)", "ms")


def _service(**fields: Any) -> Table:
    return Table(since=9, writer="service", **fields)


FLEET_VEHICLES = _service(
    name="fleet_vehicles",
    why="every vehicle of the fleet in one partition: the fleet view reads it, never `vehicles` whole",
    columns=(
        FLEET_ID,
        VEHICLE_ID,
        _col("label", TEXT, "what operators call it (plate, fleet number); null: its id"),
        _col("registered_at", TIMESTAMP, "when it joined the fleet", "ms"),
    ),
    partition_key=("fleet_id",),
    clustering=(("vehicle_id", ASC),),
    write="fleet_vehicle",
)
DRIVERS = _service(
    name="drivers",
    why="the driver registry: every driver of the fleet in one partition, one row each",
    columns=(
        FLEET_ID,
        DRIVER_ID,
        _col("name", TEXT, "the driver's name"),
        _col("employee_no", TEXT, "the employer's number for them (optional)"),
        _col("badge_id", TEXT, "their RFID badge, as the vehicle's reader reports it (optional)"),
        _col("manager", TEXT, "username of the manager who coaches them (optional): their review queue"),
        _col("created_at", TIMESTAMP, "when they were registered", "ms"),
        _col("retired_at", TIMESTAMP, "when they left (null: active); their results are kept", "ms"),
    ),
    partition_key=("fleet_id",),
    clustering=(("driver_id", ASC),),
    write="driver",
)
DRIVERS_BY_BADGE = _service(
    name="drivers_by_badge",
    why="a badge read by a vehicle's agent names its driver in one lookup",
    columns=(_col("badge_id", TEXT, "the RFID badge"), FLEET_ID, DRIVER_ID),
    partition_key=("badge_id",),
    write="driver_badge",
)
VEHICLE_ASSIGNMENTS = _service(
    name="vehicle_assignments",
    why="who had a vehicle when (fleetsense.service.attribution): a vehicle's assignments, newest first; never "
    "overlapping, so the start names one",
    columns=(VEHICLE_ID, VALID_FROM, DRIVER_ID, *_ASSIGNMENT),
    partition_key=("vehicle_id",),
    clustering=(("valid_from", DESC),),
    write="vehicle_assignment",
)
DRIVER_ASSIGNMENTS = _service(
    name="driver_assignments",
    why="the same assignments by driver (written with vehicle_assignments in one logged batch): a driver's "
    "scorecard reads the vehicles and times they drove",
    columns=(DRIVER_ID, VALID_FROM, VEHICLE_ID, *_ASSIGNMENT),
    partition_key=("driver_id",),
    clustering=(("valid_from", DESC), ("vehicle_id", ASC)),
    write="driver_assignment",
)
REVIEW_STATES = ("new", "reviewed", "coached", "dismissed")
EVENT_REVIEWS = _service(
    name="event_reviews",
    why="the coaching workflow: each reviewed event's state, keyed as vehicle_events is, so a day's events and "
    "their reviews are two reads of the same partition key",
    columns=(
        VEHICLE_ID,
        DAY_BUCKET,
        EVENT_START,
        EVENT_KIND,
        _col("state", TEXT, "new, reviewed, coached or dismissed (a false positive: left out of every score)"),
        _col("note", TEXT, "what the reviewer wrote"),
        _col("reviewed_by", TEXT, "the reviewer's username"),
        _col("reviewed_at", TIMESTAMP, "when", "ms"),
        DRIVER_ID,
    ),
    partition_key=("vehicle_id", "day_bucket"),
    clustering=(("start_time", DESC), ("kind", ASC)),
    write="event_review",
)
REVIEW_QUEUE = _service(
    name="review_queue",
    why="the harsh events awaiting review, per manager: one query lists a manager's queue; a review removes the row",
    columns=(
        _col("manager", TEXT, "the username of the driver's manager (`unassigned`: nobody's yet)"),
        EVENT_START,
        VEHICLE_ID,
        EVENT_KIND,
        DRIVER_ID,
        _col("peak", FLOAT, "the event's peak, in peak_unit"),
        _col("peak_unit", TEXT, "the unit of peak"),
        _col("queued_at", TIMESTAMP, "when the service queued it", "ms"),
    ),
    partition_key=("manager",),
    clustering=(("start_time", DESC), ("vehicle_id", ASC), ("kind", ASC)),
    write="review_queued",
)
USERS = _service(
    name="users",
    why="operator accounts: one partition lists them all; a login reads one row",
    columns=(
        FLEET_ID,
        USERNAME,
        _col("password_hash", TEXT, "argon2id (memory-hard), with its parameters and salt; never the password"),
        _col("role", TEXT, "admin, manager or viewer"),
        _col("created_at", TIMESTAMP, "when it was made", "ms"),
        _col("disabled_at", TIMESTAMP, "when it was disabled (null: active): it can no longer log in", "ms"),
        _col(
            "sessions_from",
            TIMESTAMP,
            "sessions begun before this are over (set by a password change or a disable; null: none ended)",
            "ms",
        ),
    ),
    partition_key=("fleet_id",),
    clustering=(("username", ASC),),
    write="user",
)
_TOKEN = (
    _col("name", TEXT, "what it is for, as its creator said"),
    _col("created_at", TIMESTAMP, "when it was made", "ms"),
    _col("revoked_at", TIMESTAMP, "when it was revoked (null: valid)", "ms"),
)
API_TOKENS = _service(
    name="api_tokens",
    why="API tokens by the SHA-256 of their secret (the secret itself is shown once and never stored)",
    columns=(
        _col("token_hash", TEXT, "hex SHA-256 of the token"),
        USERNAME,
        _col("token_id", TEXT, "its id"),
        *_TOKEN,
    ),
    partition_key=("token_hash",),
    write="api_token",
)
USER_TOKENS = _service(
    name="user_tokens",
    why="a user's tokens, to list and revoke them",
    columns=(USERNAME, _col("token_id", TEXT, "its id"), _col("token_hash", TEXT, "hex SHA-256"), *_TOKEN),
    partition_key=("username",),
    clustering=(("token_id", ASC),),
    write="user_token",
)
SESSIONS = _service(
    name="sessions",
    why="browser sessions by the SHA-256 of their cookie; they expire by TTL",
    columns=(
        _col("session_hash", TEXT, "hex SHA-256 of the session cookie"),
        USERNAME,
        _col("csrf_token", TEXT, "the session's CSRF token (sent back in a header on every change)"),
        _col("created_at", TIMESTAMP, "when the user logged in", "ms"),
    ),
    partition_key=("session_hash",),
    ttl=SESSION_TTL,
    write="session",
)
WEBHOOK_ID = _col("webhook_id", TEXT, "the webhook's id")
EVENT_KEY = _col("event_key", TEXT, "the event's deterministic key: vehicle/start ms/kind (a replay has the same)")
WEBHOOKS = _service(
    name="webhooks",
    why="the fleet's webhooks: where events of which kinds are delivered, and the secret that signs them",
    columns=(
        FLEET_ID,
        WEBHOOK_ID,
        _col("url", TEXT, "where deliveries are POSTed"),
        _col("kinds", TEXT_SET, "the event kinds delivered (empty: every kind)"),
        _col("secret", TEXT, "the HMAC-SHA256 key of its signatures (stored: the service must sign with it)"),
        _col("created_by", TEXT, "the admin who made it"),
        _col("created_at", TIMESTAMP, "when", "ms"),
        _col("disabled_at", TIMESTAMP, "when it was disabled (null: active)", "ms"),
    ),
    partition_key=("fleet_id",),
    clustering=(("webhook_id", ASC),),
    write="webhook",
)
WEBHOOK_DELIVERIES = _service(
    name="webhook_deliveries",
    why="every delivery attempt of a webhook, per UTC day, newest first: its delivery log",
    columns=(
        WEBHOOK_ID,
        DAY_BUCKET,
        _col("attempted_at", TIMESTAMP, "when the attempt was made", "ms"),
        EVENT_KEY,
        _col("attempt", INT, "1 for the first try"),
        _col("status_code", INT, "the receiver's HTTP status (null: no answer)"),
        _col("error", TEXT, "why it failed (null: delivered)"),
        _col("duration_ms", INT, "how long the attempt took", "ms"),
    ),
    partition_key=("webhook_id", "day_bucket"),
    clustering=(("attempted_at", DESC), ("event_key", ASC)),
    ttl=DELIVERY_TTL,
    write="webhook_delivery",
)
WEBHOOK_DELIVERED = _service(
    name="webhook_delivered",
    why="the events a webhook has delivered, by key: a replayed or re-published event is delivered once",
    columns=(WEBHOOK_ID, EVENT_KEY, _col("delivered_at", TIMESTAMP, "when the receiver acknowledged it", "ms")),
    partition_key=("webhook_id", "event_key"),
    ttl=DELIVERY_TTL,
    write="webhook_delivered",
)
SERVICE_TABLES: tuple[Table, ...] = (
    FLEET_VEHICLES,
    DRIVERS,
    DRIVERS_BY_BADGE,
    VEHICLE_ASSIGNMENTS,
    DRIVER_ASSIGNMENTS,
    EVENT_REVIEWS,
    REVIEW_QUEUE,
    USERS,
    API_TOKENS,
    USER_TOKENS,
    SESSIONS,
    WEBHOOKS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_DELIVERED,
)

# --- migration 10: result versions (issue 19, Kappa reprocessing) ----------------------------------------------------
# The versioned tables above hold what the analysis computes; a reprocessing job recomputes them into a keyspace of
# their own (fleetsense_r<N>), and this table, in the main keyspace, records each version and which one is active.
RESULT_VERSION_STATES = ("replaying", "active", "retired", "dropped")
RESULT_VERSIONS = Table(
    name="result_versions",
    why="every result version (a keyspace of the versioned tables, cloud/result_versions.py) and, in a static "
    "column, the active one: one read returns the pointer and the chain; written with conditional updates (LWT) "
    "by the CLI (`fleetsense job reprocess`, `job promote`), never by the job",
    columns=(
        _col("fleet", TEXT, 'the fleet (one per installation: "default")'),
        _col("version", INT, "the result version: 1 is the main keyspace's own tables"),
        Column(
            name="active_version",
            cql_type=INT,
            meaning="static, one per partition: the version readers use (null: none promoted yet, so version 1)",
            static=True,
        ),
        _col("results_keyspace", TEXT, "the keyspace holding the version's result tables (fleetsense_r<N>)"),
        _col("parent", INT, "the version it was reprocessed from (null: version 1)"),
        _col("from_time", TIMESTAMP, "where its replay started: days before it are read from the parent", "ms"),
        _col("settings_json", TEXT, "the result-affecting job settings it was computed with, as JSON"),
        _col("job_name", TEXT, "the Flink job that computes it"),
        _col("state", TEXT, "replaying, active, retired or dropped (its keyspace removed)"),
        _col("created_at", TIMESTAMP, "when it was made", "ms"),
        _col(
            "claim",
            TEXT,
            "a random id of the command that last wrote the row: a write whose answer timed out is known by it",
        ),
        _col("promoted_at", TIMESTAMP, "when it last became the active version", "ms"),
        _col("retire_after", TIMESTAMP, "a retired version's keyspace may be dropped from then on", "ms"),
    ),
    partition_key=("fleet",),
    clustering=(("version", ASC),),
    since=10,
    consistency_why="every write is a conditional update (Paxos, LOCAL_SERIAL); a quorum read sees each one committed",
)

# In the order the migrations first created them.
TABLES: tuple[Table, ...] = (
    ACCEL_SAMPLES,
    VEHICLE_HOURS,
    VEHICLES,
    REJECTED_MESSAGES,
    IMU_SAMPLES,
    ENVIRONMENT_SAMPLES,
    SAMPLE_BLOCKS,
    EVENTS_BY_VEHICLE_V7,
    EVENTS_BY_FLEET_V7,
    MINUTE_AGGREGATES_V7,
    TRIPS,
    DRIVER_SCORES_V7,
    VEHICLE_STATUS,
    SEQUENCE_GAPS,
    LATE_BATCHES,
    REJECTED_BY_DAY,
    VEHICLE_PROFILES,
    BATCHES,
    SEQ_GAPS,
    LATE_ARRIVALS,
    REJECTED_BY_SOURCE_V7,
    REJECTED_SOURCES_V7,
    SEQ_CONFLICTS,
    SEQUENCE_RESTARTS,
    TIME_QUARANTINE_V7,
    QUARANTINE_DAYS_V7,
    AGENT_RESTARTS,
    EVENTS_BY_VEHICLE,
    EVENTS_BY_FLEET,
    MINUTE_AGGREGATES,
    DRIVER_SCORES,
    REJECTED_BY_SOURCE,
    REJECTED_SOURCES,
    TIME_QUARANTINE,
    QUARANTINE_DAYS,
    *SERVICE_TABLES,
    RESULT_VERSIONS,
)

# The job's statements: name -> the table it writes.
WRITTEN: dict[str, Table] = {t.write: t for t in TABLES if t.write is not None and t.writer == "job"}
# The service layer's (fleetsense.service.store prepares them).
SERVICE_WRITTEN: dict[str, Table] = {t.write: t for t in TABLES if t.write is not None and t.writer == "service"}
# What the analysis computes: the tables each result version has its own copy of, and the statements writing them.
RESULT_TABLES: tuple[Table, ...] = tuple(t for t in TABLES if t.versioned)
RESULT_WRITES: frozenset[str] = frozenset(t.write for t in RESULT_TABLES if t.write is not None)
# Each statement's write consistency (a CQL level name): what the Python writer and the Java sink prepare it at.
WRITE_CONSISTENCY: dict[str, str] = {name: table.write_consistency for name, table in WRITTEN.items()}
