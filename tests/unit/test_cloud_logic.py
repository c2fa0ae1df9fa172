"""Cloud-side pure logic: numpy decoding, validation verdicts, time buckets, compaction choice, coalescing writes
(the tables and their statements: test_tables.py)."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pytest
from fleetsense.cloud import schema
from fleetsense.cloud.decode import decode_batch
from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.store import (
    batch_slices,
    coalesce,
    day_buckets,
    hour_bucket_ms,
)
from fleetsense.cloud.validate import check_message

from fleetsense import wire
from fleetsense.errors import ConfigError

NOW_US = 1_790_000_000_000_000  # 2026-09-21
NO_FLAGS = wire.Flags(0)

BATCH_BYTES_40K = 40_000  # the job's default write_batch_kb


def message(
    vehicle_id: str = "van-001",
    scales: tuple[float, ...] = (0.5, 0.5, 0.5),
    *,
    start_time_us: int = 10_000_000,
    samples: tuple[tuple[int, ...], ...] = ((2, -4, 6), (8, 10, -12)),
    kind: wire.Kind = wire.Kind.ACCEL,
    flags: wire.Flags = NO_FLAGS,
) -> bytes:
    return wire.encode(
        wire.Batch(
            vehicle_id=vehicle_id,
            seq=3,
            start_time_us=start_time_us,
            sample_period_us=10_000,
            kind=kind,
            scales=scales,
            offsets=(0.0,) * len(scales),
            samples=samples,
            flags=flags,
        )
    )


def test_numpy_decode_matches_the_reference_decoder() -> None:
    decoded = decode_batch(message())
    reference = wire.decode(message())
    np.testing.assert_allclose(decoded.values_si, np.array(reference.samples) * 0.5)
    assert decoded.sample_time_us.tolist() == [10_000_000, 10_010_000]


def test_good_message_is_accepted() -> None:
    verdict = check_message("fleet.van-001.telemetry", message(start_time_us=NOW_US - 2_000_000), now_us=NOW_US)
    assert verdict.reason is None and verdict.batch is not None


@pytest.mark.parametrize(
    ("routing_key", "body", "reason"),
    [
        ("fleet.van-002.telemetry", message("van-001"), "payload names vehicle 'van-001'"),
        ("fleet.van-001.telemetry", b"garbage", "undecodable"),
        ("somewhere.else", message(), "bad routing key"),
        ("fleet.van-001.telemetry", message(scales=(float("nan"), 1.0, 1.0)), "non-finite"),
        ("fleet.van-001.telemetry", message(scales=(0.1, 0.1, 0.1), samples=((20000, 0, 0),)), "impossible ax_m_s2"),
        (
            "fleet.van-001.telemetry",
            message(
                kind=wire.Kind.BARO, scales=(10.0, 0.01), samples=((2000, 2000),), start_time_us=NOW_US
            ),  # 20 kPa: higher than Everest's summit
            "impossible pressure_pa",
        ),
        ("fleet.van-001.telemetry", message(start_time_us=NOW_US + 3_600_000_000), "in the future"),
        (
            "fleet.van-001.telemetry",
            message(flags=wire.Flags.CLOCK_UNSYNCED),
            "more than 30 days old (the device says its clock is not synchronised)",
        ),
        ("fleet.van-001.telemetry", b"x" * (wire.MAX_MESSAGE_BYTES + 1), "exceeds the limit"),
    ],
)
def test_bad_messages_get_a_reason(routing_key: str, body: bytes, reason: str) -> None:
    verdict = check_message(routing_key, body, now_us=NOW_US)
    assert verdict.batch is None
    assert reason in (verdict.reason or "")


def test_hour_buckets() -> None:
    hour_us = 3_600_000_000
    assert hour_bucket_ms(5 * hour_us + 17) == 5 * hour_us // 1000
    assert hour_bucket_ms(5 * hour_us - 1) == 4 * hour_us // 1000


def test_compaction_is_chosen_by_server_version() -> None:
    assert "SizeTiered" in schema.time_series_compaction("2.1.0", 1)  # DTCS arrived in 2.1.1
    assert "DateTiered" in schema.time_series_compaction("2.1.1", 1)
    assert "DateTiered" in schema.time_series_compaction("3.0.7", 1)
    assert "TimeWindow" in schema.time_series_compaction("3.0.8", 24)
    assert "'compaction_window_size': 24" in schema.time_series_compaction("5.0.2", 24)
    assert "TimeWindow" in schema.time_series_compaction("4.1.5-SNAPSHOT", 1)


def test_an_unsynchronised_clock_with_plausible_times_is_accepted() -> None:
    body = message(start_time_us=NOW_US - 1_000_000, flags=wire.Flags.CLOCK_UNSYNCED)
    assert check_message("fleet.van-001.telemetry", body, now_us=NOW_US).batch is not None


def test_an_unknown_vehicle_class_is_refused_with_the_known_ones() -> None:
    from fleetsense.cloud.profiles import check_vehicle_class

    from fleetsense.errors import ConfigError

    assert check_vehicle_class("truck") == "truck"
    with pytest.raises(ConfigError, match="unknown vehicle class 'bus'"):
        check_vehicle_class("bus")


def test_block_batches_are_bounded_by_rows_and_bytes_and_keep_every_row_once() -> None:
    assert batch_slices([2_000] * 40, 16, BATCH_BYTES_40K) == [(0, 16), (16, 32), (32, 40)]
    # A 64 KiB message is over the byte bound on its own: it still goes, alone.
    assert batch_slices([30_000, 30_000, 65_536, 100, 100], 16, BATCH_BYTES_40K) == [(0, 1), (1, 2), (2, 3), (3, 5)]
    assert batch_slices([], 16, BATCH_BYTES_40K) == []
    sizes = [(i * 7919) % 9_000 for i in range(500)]
    slices = batch_slices(sizes, 16, BATCH_BYTES_40K)
    assert [i for start, end in slices for i in range(start, end)] == list(range(500))
    assert all(
        end - start <= 16 and (end - start == 1 or sum(sizes[start:end]) <= BATCH_BYTES_40K) for start, end in slices
    )


def test_coalesce_keeps_each_rows_last_write_and_of_a_timestamped_row_its_newest() -> None:
    writes = [
        ("minute", ("v1", "2026-11-26", 60, 1)),
        ("block", ("v1", 0, 7, "imu")),
        ("minute", ("v1", "2026-11-26", 120, 1)),
        ("vehicle", ("v1", 8, 2_000, 2_000)),
        ("minute", ("v1", "2026-11-26", 60, 2)),  # the first minute again: only these values count
        ("block", ("v1", 0, 7, "imu")),  # a redelivery within the bundle
        ("vehicle", ("v1", 7, 1_000, 1_000)),  # sent later but older: the database would keep seq 8
        ("vehicle", ("v2", 3, 500, 500)),
        ("vehicle", ("v2", 4, 600, 600)),  # newer: replaces seq 3, in v2's first place
        ("minute", ("v2", "2026-11-26", 60, 5)),
    ]
    assert coalesce(writes) == [
        ("minute", ("v1", "2026-11-26", 60, 2)),
        ("block", ("v1", 0, 7, "imu")),
        ("minute", ("v1", "2026-11-26", 120, 1)),
        ("vehicle", ("v1", 8, 2_000, 2_000)),
        ("vehicle", ("v2", 4, 600, 600)),
        ("minute", ("v2", "2026-11-26", 60, 5)),
    ]


def _job_settings(**overrides: str) -> IngestJobSettings:
    connections = {"amqp_host": "h", "amqp_port": 1, "amqp_vhost": "/", "amqp_username": "u", "amqp_password": "p"}
    base = IngestJobSettings(
        **connections, amqp_queue="q", cassandra_host="c", cassandra_port=2, keyspace="k", connector_jar="j"
    )
    return base.with_overrides(overrides)


def test_job_settings_take_their_overrides_and_the_writers_batch_bounds() -> None:
    settings = _job_settings(write_batch_rows="1", write_batch_kb="4", parallelism="16", profile_refresh_s="0.5")
    assert (settings.write_batch_rows, settings.write_batch_kb, settings.parallelism) == (1, 4, 16)
    assert settings.profile_refresh_s == 0.5
    assert _job_settings(amqp_heartbeat_s="2", gap_wait_ms="4000").amqp_heartbeat_s == 2  # 2 x 2 s fits in 4 s


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"parallelism": "0"}, "parallelism=0 is below its least value, 1"),
        ({"write_batch_rows": "0"}, "write_batch_rows=0 is below"),
        ({"max_writes": "-3"}, "max_writes=-3 is below"),
        ({"bundle_messages": "0"}, "bundle_messages=0 is below"),
        ({"profile_refresh_s": "0"}, "profile_refresh_s=0.0 is below"),
        ({"checkpoint_interval_ms": "5"}, "checkpoint_interval_ms=5 is below its least value, 10"),
        ({"parallelism": "17"}, "parallelism=17 is more than the 16 shards can use"),
        ({"shards": "2", "parallelism": "3"}, "parallelism=3 is more than the 2 shards"),
        ({"python_execution_mode": "fork"}, "python_execution_mode='fork': thread or process"),
        ({"vehicle_class": "bus"}, "unknown vehicle class 'bus'"),
        ({"write_batch_kb": "big"}, "write_batch_kb='big' is not a int"),
        ({"amqp_heartbeat_s": "0"}, "amqp_heartbeat_s must be 1..60 s, got 0"),
        # A dead TaskManager's messages would come back after the restarted job stopped waiting for them.
        ({"gap_wait_ms": "5000"}, "amqp_heartbeat_s=5 and gap_wait_ms=5000: a dead reader's messages come back"),
        ({"amqp_heartbeat_s": "8"}, "amqp_heartbeat_s=8 and gap_wait_ms=10000"),
    ],
)
def test_job_settings_refuse_values_the_job_cannot_run_with(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _job_settings(**overrides)


def test_day_buckets_cover_every_utc_day_a_range_touches() -> None:
    midnight_us = 1_795_737_600_000_000  # 2026-11-27T00:00:00Z
    nov = [date(2026, 11, day) for day in (26, 27, 28, 29)]
    assert day_buckets(midnight_us - 13_000_000, midnight_us - 1) == nov[:1]
    assert day_buckets(midnight_us - 13_000_000, midnight_us + 160_000_000) == nov[:2]
    assert day_buckets(midnight_us, midnight_us) == nov[1:2]
    assert day_buckets(midnight_us - 1, midnight_us + 2 * 86_400_000_000) == nov
    with pytest.raises(ValueError, match="before"):
        day_buckets(midnight_us, midnight_us - 1)


def test_the_job_functions_close_cleanly_after_an_open_that_never_ran_or_failed() -> None:
    """Flink closes a task's functions after a failed open() too; close() must stop what was started and never
    raise over the error that failed the task."""
    from fleetsense.cloud.jobs.telemetry_ingest import ShardStream, StoreStatus

    settings = _job_settings()
    ShardStream(settings).close()
    StoreStatus(settings).close()

    class BrokenCluster:
        shutdowns = 0

        def shutdown(self) -> None:
            BrokenCluster.shutdowns += 1
            raise RuntimeError("connection already gone")

    half_open = StoreStatus(settings)
    half_open._cluster = BrokenCluster()
    half_open.close()
    assert BrokenCluster.shutdowns == 1
