"""The job's writer (cloud/store.py) against the real Cassandra: what its batches do to the rows."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from fleetsense.cloud.query import latest_seen
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.cloud.store import CassandraWriter, hour_bucket_ms

from .helpers import unique_vehicle

SAMPLE_TIME_US = 1_795_000_000_000_000


def _latest(cql: Any, vehicle: str) -> tuple[int, int]:
    """The vehicle's row: (last_seq, last_sample_time in ms)."""
    found = latest_seen(cql, KEYSPACE, vehicle)
    return found.last_seq, round(found.last_sample_time.replace(tzinfo=UTC).timestamp() * 1000)


def _vehicle(vehicle: str, seq: int, sample_time_us: int) -> tuple[str, tuple[Any, ...]]:
    return "vehicle", (vehicle, seq, sample_time_us // 1000, sample_time_us)


def _hour(vehicle: str, sample_time_us: int) -> tuple[str, tuple[Any, ...]]:
    return "hour", (vehicle, hour_bucket_ms(sample_time_us))


def test_a_batched_latest_seen_write_keeps_its_own_timestamp(cql: Any) -> None:
    """The vehicles row is written USING TIMESTAMP its sample time and now shares batches with other rows: a
    batch sent later with an older sample (a replayed backlog) must not overwrite it, a newer one must."""
    writer = CassandraWriter(cql, KEYSPACE)
    van, truck = unique_vehicle("writer-van"), unique_vehicle("writer-truck")
    newer_us, older_us = SAMPLE_TIME_US + 60_000_000, SAMPLE_TIME_US

    writer.write_all([_vehicle(van, 60, newer_us), _hour(van, newer_us)])
    # Several rows of one node: one unlogged batch, with the older write of the van sent last.
    writer.write_all([_hour(truck, older_us), _vehicle(truck, 1, older_us), _hour(van, older_us),
                      _vehicle(van, 0, older_us)])  # fmt: skip
    assert len(writer.requests([_hour(truck, older_us), _vehicle(van, 0, older_us)])) == 1  # really one batch
    assert _latest(cql, van) == (60, newer_us // 1000)
    assert _latest(cql, truck) == (1, older_us // 1000)

    writer.write_all([_hour(van, newer_us), _vehicle(van, 61, newer_us + 1_000_000)])
    assert _latest(cql, van) == (61, (newer_us + 1_000_000) // 1000)
