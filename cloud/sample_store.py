"""Writing decoded batches to Cassandra: prepared, idempotent (deterministic keys), one unlogged batch per
partition, and synchronous, so a batch is stored before the operator that wrote it reports it done."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fleetsense.cloud.decode import DecodedBatch
from fleetsense.cloud.schema import SAMPLE_TABLES

from fleetsense import wire

HOUR_US = 3_600_000_000
EXCERPT_BYTES = 256  # enough to see what a bad message looked like, bounded so junk cannot fill the table


def hour_bucket_ms(sample_time_us: int) -> int:
    return (sample_time_us - sample_time_us % HOUR_US) // 1000


class SampleStore:
    def __init__(self, session: Any, keyspace: str) -> None:
        self._session = session
        self._insert_sample = {
            kind: session.prepare(
                f"INSERT INTO {keyspace}.{table} (vehicle_id, hour_bucket, seq, sample_index, sample_time, "
                f"{', '.join(wire.CHANNEL_NAMES[kind])}) VALUES (?, ?, ?, ?, ?{', ?' * len(wire.CHANNEL_NAMES[kind])})"
            )
            for kind, table in SAMPLE_TABLES.items()
        }
        self._insert_hour = session.prepare(
            f"INSERT INTO {keyspace}.vehicle_hours (vehicle_id, hour_bucket) VALUES (?, ?)"
        )
        self._upsert_vehicle = session.prepare(
            f"INSERT INTO {keyspace}.vehicles (vehicle_id, last_seq, last_sample_time) VALUES (?, ?, ?) "
            "USING TIMESTAMP ?"
        )
        self._insert_rejected = session.prepare(
            f"INSERT INTO {keyspace}.rejected_messages (day_bucket, received_at, routing_key, reason, excerpt, "
            "size_bytes) VALUES (?, ?, ?, ?, ?, ?)"
        )

    @staticmethod
    def _new_batch() -> Any:
        from cassandra.query import BatchStatement, BatchType

        # Unlogged and single-partition: no batchlog cost, applied as one mutation by the replica.
        return BatchStatement(batch_type=BatchType.UNLOGGED)

    def write(self, batch: DecodedBatch) -> int:
        header = batch.header
        vid = header.vehicle_id
        insert = self._insert_sample[header.kind]
        times_us: list[int] = batch.sample_time_us.tolist()
        values: list[list[float]] = batch.values_si.tolist()
        by_bucket: dict[int, Any] = {}
        for index, (time_us, channels) in enumerate(zip(times_us, values, strict=True)):
            bucket = hour_bucket_ms(time_us)
            statement = by_bucket.get(bucket)
            if statement is None:
                statement = by_bucket[bucket] = self._new_batch()
            statement.add(insert, (vid, bucket, header.seq, index, time_us // 1000, *channels))
        futures = [self._session.execute_async(statement) for statement in by_bucket.values()]
        futures += [self._session.execute_async(self._insert_hour, (vid, bucket)) for bucket in by_bucket]
        if times_us:
            last_us = times_us[-1]
            futures.append(
                self._session.execute_async(self._upsert_vehicle, (vid, header.seq, last_us // 1000, last_us))
            )
        for future in futures:
            future.result()  # raises on failure: the job restarts from its checkpoint and the broker redelivers
        return len(times_us)

    def reject(self, routing_key: str, reason: str, message: bytes) -> None:
        now = time.gmtime()
        self._session.execute(
            self._insert_rejected,
            (
                time.strftime("%Y-%m-%d", now),
                uuid.uuid1(),
                routing_key,
                reason[:1000],
                message[:EXCERPT_BYTES],
                len(message),
            ),
        )
