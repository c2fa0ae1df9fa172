"""Cloud-side pure logic: numpy decoding, validation verdicts, time buckets, schema text."""

from __future__ import annotations

import numpy as np
import pytest
from fleetsense.cloud import schema
from fleetsense.cloud.decode import decode_batch
from fleetsense.cloud.sample_store import hour_bucket_ms
from fleetsense.cloud.validate import check_message

from fleetsense import wire


def message(vehicle_id: str = "van-001", scales: tuple[float, ...] = (0.5, 0.5, 0.5)) -> bytes:
    return wire.encode(
        wire.Batch(
            vehicle_id=vehicle_id,
            seq=3,
            start_time_us=10_000_000,
            sample_period_us=10_000,
            kind=wire.Kind.ACCEL,
            scales=scales,
            samples=((2, -4, 6), (8, 10, -12)),
        )
    )


def test_numpy_decode_matches_the_reference_decoder() -> None:
    decoded = decode_batch(message())
    reference = wire.decode(message())
    np.testing.assert_allclose(decoded.values_si, np.array(reference.samples) * 0.5)
    assert decoded.sample_time_us.tolist() == [10_000_000, 10_010_000]


def test_good_message_is_accepted() -> None:
    verdict = check_message("fleet.van-001.telemetry", message())
    assert verdict.reason is None and verdict.batch is not None


@pytest.mark.parametrize(
    ("routing_key", "body", "reason"),
    [
        ("fleet.van-002.telemetry", message("van-001"), "payload names vehicle 'van-001'"),
        ("fleet.van-001.telemetry", b"garbage", "undecodable"),
        ("somewhere.else", message(), "bad routing key"),
        ("fleet.van-001.telemetry", message(scales=(float("nan"), 1.0, 1.0)), "non-finite"),
    ],
)
def test_bad_messages_get_a_reason(routing_key: str, body: bytes, reason: str) -> None:
    verdict = check_message(routing_key, body)
    assert verdict.batch is None
    assert reason in (verdict.reason or "")


def test_hour_buckets() -> None:
    hour_us = 3_600_000_000
    assert hour_bucket_ms(5 * hour_us + 17) == 5 * hour_us // 1000
    assert hour_bucket_ms(5 * hour_us - 1) == 4 * hour_us // 1000


def test_migrations_are_numbered_in_order_and_idempotent_by_construction() -> None:
    versions = [m.version for m in schema.MIGRATIONS]
    assert versions == sorted(set(versions)) and versions[0] == 1
    for migration in schema.MIGRATIONS:
        for statement in migration.statements:
            assert "IF NOT EXISTS" in statement
            # CQL 3.2 (Cassandra 2.1) has none of these; production's 4.x/5.x would accept them.
            for newer in (" date,", "MATERIALIZED VIEW", "GROUP BY", "toTimestamp", "dateOf"):
                assert newer not in statement
