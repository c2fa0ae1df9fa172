"""Issue 12 on the real stack: what one careless or hostile device sends must not stop, crash or silently skew the
fleet's stream. Each test publishes crafted MQTT messages as a provisioned vehicle and checks Cassandra and the
job's restart count."""

from __future__ import annotations

import json
import random
import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from fleetsense.cloud.schema import KEYSPACE
from paho.mqtt.enums import CallbackAPIVersion

from fleetsense import wire
from fleetsense.stack.layout import LOOPBACK, StackConfig

from .helpers import eventually, provision_vehicle, unique_vehicle

GAP_WAIT_S = 10  # the job's default gap_wait_ms
STORE_BOUND_S = 60.0


@contextmanager
def connected(stack: StackConfig, vid: str, password: str) -> Iterator[mqtt.Client]:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=vid)
    client.username_pw_set(vid, password)
    client.connect(LOOPBACK, stack.ports.mqtt)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def imu_batch(vid: str, seq: int, start_us: int, **changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "vehicle_id": vid,
        "seq": seq,
        "start_time_us": start_us,
        "sample_period_us": 10_000,
        "kind": wire.Kind.IMU,
        "scales": (0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001),
        "samples": [(0, 0, 9807, 0, 0, 0)] * 100,  # at rest
    }
    fields.update(changes)
    return wire.encode(wire.Batch(**fields))


def stored_seqs(cql: Any, vid: str) -> set[int]:
    from fleetsense.cloud.query import sample_keys

    return {seq for seq, _ in sample_keys(cql, KEYSPACE, vid)}


def gap_rows(cql: Any, vid: str) -> list[tuple[int, int]]:
    rows = cql.execute(f"SELECT first_seq, last_seq FROM {KEYSPACE}.seq_gaps WHERE vehicle_id = %s", (vid,))
    return sorted((row.first_seq, row.last_seq) for row in rows)


def restarts(stack: StackConfig) -> int:
    from fleetsense.stack import jobs

    running = jobs.cluster(stack).running(jobs.INGEST_JOB_NAME)
    assert running is not None, "the ingest job is not running"
    return jobs.cluster(stack).restarts(running.job_id)


def test_two_gaps_from_one_vehicle_stop_nothing_and_its_batches_are_released_with_the_gaps_recorded(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    """Issue 12's first bug: a vehicle at rest sends seqs 0, 1, 3, 5 and falls silent. The job's shard timer used
    to spin at one timestamp for ever, and no vehicle's data was stored any more. A second vehicle keeps sending
    throughout: its batches must keep arriving, and the first vehicle's gaps must be recorded."""
    restarts_before = restarts(stack)
    gappy, steady = unique_vehicle("gappy"), unique_vehicle("steady")
    gappy_config = provision_vehicle(operator_client, stack, gappy, tmp_path)
    steady_config = provision_vehicle(operator_client, stack, steady, tmp_path)
    start_us = time.time_ns() // 1000 - 60_000_000
    with connected(stack, gappy, gappy_config.broker.password) as client:
        for seq in (0, 1, 3, 5):
            client.publish(f"fleet/{gappy}/telemetry", imu_batch(gappy, seq, start_us + seq * 1_000_000), qos=1)
        client.publish(f"fleet/{gappy}/telemetry", b"", qos=1).wait_for_publish(10)  # rejected, flushes the acks
    sent: list[int] = []
    with connected(stack, steady, steady_config.broker.password) as client:
        # 40 s of batches: past both gap deadlines (10 s each) and the idle flush (15 s) of the gappy vehicle.
        for seq in range(40):
            client.publish(f"fleet/{steady}/telemetry", imu_batch(steady, seq, start_us + seq * 1_000_000), qos=1)
            sent.append(seq)
            time.sleep(1)
    stored = eventually(lambda: stored_seqs(cql, steady), lambda s: len(s) >= len(sent), timeout_s=STORE_BOUND_S)
    assert stored == set(sent), "the steady vehicle's batches stopped being stored"
    gaps = eventually(lambda: gap_rows(cql, gappy), lambda g: len(g) >= 2, timeout_s=STORE_BOUND_S)
    assert gaps == [(2, 2), (4, 4)]
    assert stored_seqs(cql, gappy) == {0, 1, 3, 5}
    assert restarts(stack) == restarts_before


def _with_crc(message: bytes) -> bytes:
    return message[:-4] + struct.pack(">I", zlib.crc32(message[:-4]))


def fuzz_sample(vid: str, now_us: int, rng: random.Random, n: int) -> list[bytes]:
    """Mutated valid batches (bytes flipped, cut short, header fields overwritten, the CRC fixed up half the time so
    the mutation reaches the checks behind it) with seqs far from the good ones (100..), and random bytes."""
    out = []
    for i in range(n):
        raw = bytearray(imu_batch(vid, 100 + i, now_us - 10_000_000 + i * 1000, epoch=rng.choice((0, 7))))
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(6 + len(vid), len(raw))] = rng.randrange(256)
        if rng.random() < 0.2:
            raw = raw[: rng.randrange(len(raw))]
        if rng.random() < 0.1:
            raw = bytearray(rng.randbytes(rng.randint(0, 200)))
        out.append(_with_crc(bytes(raw)) if len(raw) > 4 and rng.random() < 0.5 else bytes(raw))
    return out


def test_hostile_messages_are_rejected_with_their_reasons_and_the_job_never_restarts(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    """Messages that once crashed the job (a seq of 2^63, status fields of the wrong type, JSON nested 1,000 deep)
    and 40 fuzzed ones (tests/unit/test_message_fuzz.py sends thousands through the job's code without the stack):
    each is rejected with a reason or stored, the job's restart count does not move, and the vehicle's good batches
    after them are stored."""
    from fleetsense.cloud.query import rejected
    from fleetsense.cloud.store import day_buckets

    restarts_before = restarts(stack)
    vid = unique_vehicle("hostile")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)
    now_us = time.time_ns() // 1000
    big_seq = bytearray(imu_batch(vid, 2**63 - 1, now_us))
    big_seq[6 + len(vid)] = 0xFF
    telemetry = {_with_crc(bytes(big_seq)): "not below 2^63", b"FS\x09" + bytes(40): "unsupported wire version 9"}
    good = {"v": 1, "vehicle_id": vid, "online": True, "reason": "heartbeat"}
    statuses = {
        json.dumps(good | {"online": "yes"}).encode(): "online must be true or false",
        json.dumps(good | {"reason": 5}).encode(): "reason must be text",
        json.dumps(good | {"sensors": [1]}).encode(): "sensors must be an object",
        json.dumps(good | {"outbox_depth": 1e30}).encode(): "outbox_depth must be a whole number",
        json.dumps(good | {"dropped_ranges": [[0, 2**64]]}).encode(): "is outside",
        b"[" * 1000 + b"]" * 1000: "nests deeper",
    }
    fuzzed = fuzz_sample(vid, now_us, random.Random(12), 40)
    with connected(stack, vid, config.broker.password) as client:
        for body in [*telemetry, *fuzzed]:
            client.publish(f"fleet/{vid}/telemetry", body, qos=1).wait_for_publish(10)
        for body in statuses:
            client.publish(f"fleet/{vid}/status", body, qos=1).wait_for_publish(10)
        for seq in range(7, 11):
            client.publish(f"fleet/{vid}/telemetry", imu_batch(vid, seq, now_us + (seq - 7) * 1_000_000), qos=1)
        client.publish(f"fleet/{vid}/status", json.dumps(good).encode(), qos=1).wait_for_publish(10)

    expected = [*telemetry.values(), *statuses.values()]

    def reasons() -> list[str]:
        return [row.reason for row in rejected(cql, KEYSPACE, vid, day_buckets(now_us - 86_400_000_000, now_us))]

    found = eventually(reasons, lambda r: len(r) >= len(expected), timeout_s=STORE_BOUND_S)
    for reason in expected:
        assert any(reason in text for text in found), (reason, found)
    stored = eventually(lambda: stored_seqs(cql, vid), lambda s: s >= {7, 8, 9, 10}, timeout_s=STORE_BOUND_S)
    assert stored >= {7, 8, 9, 10}  # (a fuzzed batch that is still valid is stored too)
    status = cql.execute(f"SELECT online, reason FROM {KEYSPACE}.vehicle_status WHERE vehicle_id = %s", (vid,)).one()
    assert status is not None and status.online and status.reason == "heartbeat"
    assert restarts(stack) == restarts_before


def test_a_replaced_device_counting_from_0_again_is_stored_and_analysed(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    """A reflashed or replaced Pi restarts at seq 0. A v3 device names its new sequence epoch; a v2 device can only
    flag RESTARTED | GAP_BEFORE. Both new sequences are stored beside the old one (nothing overwritten), analysed,
    and recorded in sequence_restarts; a seq reused with other content is recorded as a conflict."""
    restarts_before = restarts(stack)
    v3, v2 = unique_vehicle("replaced3"), unique_vehicle("replaced2")
    configs = {vid: provision_vehicle(operator_client, stack, vid, tmp_path) for vid in (v3, v2)}
    start_us = time.time_ns() // 1000 - 120_000_000
    reflashed = wire.Flags.RESTARTED | wire.Flags.GAP_BEFORE
    sends = {
        v3: [imu_batch(v3, s, start_us + s * 1_000_000, epoch=111) for s in range(5)]
        + [imu_batch(v3, s, start_us + (60 + s) * 1_000_000, epoch=222) for s in range(5)],
        v2: [imu_batch(v2, s, start_us + s * 1_000_000) for s in range(5)]
        + [imu_batch(v2, 0, start_us + 60_000_000, flags=reflashed)]
        + [imu_batch(v2, s, start_us + (60 + s) * 1_000_000) for s in range(1, 5)]
        # a faulty device: seq 4 again, other content
        + [imu_batch(v2, 4, start_us + 64_000_000, samples=[(0, 0, 9000, 0, 0, 0)] * 100)],
    }
    for vid, bodies in sends.items():
        with connected(stack, vid, configs[vid].broker.password) as client:
            for body in bodies:
                client.publish(f"fleet/{vid}/telemetry", body, qos=1).wait_for_publish(10)

    def batches(vid: str) -> list[tuple[int, int]]:
        from fleetsense.cloud.query import blocks

        return sorted((row.epoch, row.seq) for row in blocks(cql, KEYSPACE, vid))

    stored = eventually(lambda: batches(v3), lambda b: len(b) >= 10, timeout_s=STORE_BOUND_S)
    assert stored == [(111, s) for s in range(5)] + [(222, s) for s in range(5)]
    stored = eventually(lambda: batches(v2), lambda b: len(b) >= 10, timeout_s=STORE_BOUND_S)
    assert stored == [(0, s) for s in range(5)] + [(1, s) for s in range(5)]
    for vid, epoch in ((v3, 222), (v2, 1)):
        rows = list(
            cql.execute(f"SELECT epoch, first_seq FROM {KEYSPACE}.sequence_restarts WHERE vehicle_id = %s", (vid,))
        )
        assert [(row.epoch, row.first_seq) for row in rows] == [(epoch, 0)]
    conflicts = list(cql.execute(f"SELECT seq, epoch FROM {KEYSPACE}.seq_conflicts WHERE vehicle_id = %s", (v2,)))
    assert [(row.seq, row.epoch) for row in conflicts] == [(4, 1)]
    # Analysed: the minute rows count every sample of both sequences once the vehicle goes idle and is flushed.
    from fleetsense.cloud.store import day_buckets

    def counted(vid: str) -> int:
        total = 0
        for day in day_buckets(start_us, start_us + 70_000_000):
            rows = cql.execute(
                f"SELECT sample_count FROM {KEYSPACE}.vehicle_minutes WHERE vehicle_id = %s AND day_bucket = %s",
                (vid, day),
            )
            total += sum(row.sample_count for row in rows)
        return total

    for vid in (v3, v2):
        assert eventually(lambda vid=vid: counted(vid), lambda n: n >= 1000, timeout_s=STORE_BOUND_S) == 1000
    assert restarts(stack) == restarts_before
