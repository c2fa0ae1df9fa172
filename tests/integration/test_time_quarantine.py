"""Issue 13 on the real stack, cloud side: batches with a wrong clock are kept whole in the time quarantine and come
back re-timed through `fleetsense quarantine readmit` (stored and analysed once, however often re-admitted); the
agent's restarts, time lost and storage faults from its status reach vehicle_status and the restart history."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fleetsense.cloud import quarantine as q
from fleetsense.cloud.query import blocks, rejected
from fleetsense.cloud.result_rows import quarantine_writes
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.cloud.store import STATEMENTS, day_bucket, day_buckets

from fleetsense import wire
from fleetsense.stack import quarantine as operator_commands
from fleetsense.stack.layout import Ports, StackConfig
from fleetsense.status import VehicleStatus

from .helpers import eventually, provision_vehicle, unique_vehicle
from .test_adversity import connected, imu_batch

BOUND_S = 90.0  # stored within this (a shared, slow machine)
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
EPOCH = 314


def held(cql: Any, vid: str) -> list[q.Quarantined]:
    today = day_bucket(time.time_ns() // 1000)
    return q.quarantined(cql, KEYSPACE, vid, today)


def stored(cql: Any, vid: str) -> list[tuple[int, int, int, int]]:
    """(epoch, seq, start ms, flags) of the vehicle's stored batches."""
    rows = blocks(cql, KEYSPACE, vid, with_message=True)
    return sorted(
        (row.epoch, row.seq, round(row.start_time.timestamp() * 1000), int(wire.decode_header(row.message).flags))
        for row in rows
    )


def minute_samples(cql: Any, vid: str, start_us: int) -> int:
    total = 0
    for day in day_buckets(start_us, start_us + 10 * 60_000_000):
        rows = cql.execute(
            f"SELECT sample_count FROM {KEYSPACE}.vehicle_minutes WHERE vehicle_id = %s AND day_bucket = %s",
            (vid, day),
        )
        total += sum(row.sample_count for row in rows)
    return total


def cli(stack: StackConfig, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """`fleetsense ... quarantine` as an operator types it, pointed at the test stack: its ports are the default ones
    moved by one offset (checked for the two the command uses)."""
    from fleetsense.cli import main

    offset = stack.ports.amqp - Ports().amqp
    moved = Ports().offset(offset)
    assert (moved.amqp, moved.cql) == (stack.ports.amqp, stack.ports.cql)
    capsys.readouterr()
    code = main(["--data-dir", str(stack.data_dir), "--ports-offset", str(offset), "quarantine", *argv])
    return code, capsys.readouterr().out


def test_batches_with_a_wrong_clock_are_quarantined_whole_and_readmitted_once_with_their_true_times(
    stack: StackConfig,
    operator_client: Any,
    ingest_job: str,
    cql: Any,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    behind, ahead = unique_vehicle("behind"), unique_vehicle("ahead")
    offsets_us = {behind: -40 * DAY_US, ahead: HOUR_US}  # a clock 40 days behind, one an hour ahead
    true_start_us = time.time_ns() // 1000 - 120_000_000
    sent = {
        vid: [imu_batch(vid, seq, true_start_us + seq * 1_000_000 + offset, epoch=EPOCH) for seq in range(5)]
        for vid, offset in offsets_us.items()
    }
    passwords = {vid: provision_vehicle(operator_client, stack, vid, tmp_path).broker.password for vid in sent}
    for vid, bodies in sent.items():
        with connected(stack, vid, passwords[vid]) as client:
            for body in bodies:
                client.publish(f"fleet/{vid}/telemetry", body, qos=1).wait_for_publish(10)

    # Kept whole, beside their rejection rows; nothing stored as a batch.
    rules = {behind: "more than 30 days old", ahead: "in the future"}
    for vid, bodies in sent.items():
        rows = eventually(lambda vid=vid: held(cql, vid), lambda r: len(r) >= 5, timeout_s=BOUND_S)
        assert sorted(row.message for row in rows) == sorted(bodies)
        assert [(row.epoch, row.seq) for row in rows] == [(EPOCH, seq) for seq in range(5)]
        assert all(rules[vid] in row.reason and row.routing_key == f"fleet.{vid}.telemetry" for row in rows)
        assert stored(cql, vid) == []
        now_us = time.time_ns() // 1000
        reasons = [row.reason for row in rejected(cql, KEYSPACE, vid, day_buckets(now_us - DAY_US, now_us))]
        assert len(reasons) == 5 and all(rules[vid] in reason for reason in reasons)
    code, listed = cli(stack, capsys, "list", "--vehicle", behind)
    assert code == 0 and listed.count("\n") == 1, listed
    assert f"{behind} " in listed and "5 message(s)" in listed and "more than 30 days old: 5" in listed

    # Re-admitted with the wrong sign first: still an hour and more ahead, so quarantined again (new bytes, new
    # rows, with the reason), and the originals deleted once the broker confirmed the copies.
    first = operator_commands.readmit(stack, vehicle_id=ahead, day=None, shift_us=HOUR_US)
    assert (first.published, first.failed) == (5, [])
    again = eventually(
        lambda: held(cql, ahead), lambda r: {row.message for row in r}.isdisjoint(sent[ahead]) and len(r) >= 5,
        timeout_s=BOUND_S,
    )  # fmt: skip
    assert len(again) == 5 and all("in the future" in row.reason for row in again)
    assert all(wire.decode_header(row.message).flags & wire.Flags.CLOCK_STEPPED for row in again)

    # The right shifts bring them back with their true times, flagged CLOCK_STEPPED, and analysed.
    code, said = cli(stack, capsys, "readmit", "--vehicle", behind, "--shift-s", str(40 * 86_400))
    assert code == 0 and f"{behind}: re-admitted 5 message(s) shifted by +3.456e+06 s" in said, said
    result = operator_commands.readmit(stack, vehicle_id=ahead, day=None, shift_us=-2 * HOUR_US)
    assert (result.published, result.failed) == (5, [])
    expected = [(EPOCH, seq, (true_start_us + seq * 1_000_000) // 1000) for seq in range(5)]
    for vid in sent:
        rows = eventually(lambda vid=vid: stored(cql, vid), lambda r: len(r) >= 5, timeout_s=BOUND_S)
        assert [row[:3] for row in rows] == expected
        assert all(flags & wire.Flags.CLOCK_STEPPED for *_, flags in rows)
        # Analysed: the vehicle's minutes count its 500 samples once it goes idle and is flushed (15 s).
        counted = eventually(
            lambda vid=vid: minute_samples(cql, vid, true_start_us), lambda n: n >= 500, timeout_s=BOUND_S
        )
        assert counted == 500
        assert held(cql, vid) == []
        index = cql.execute(
            f"SELECT vehicle_id FROM {KEYSPACE}.quarantined_vehicles WHERE day_bucket = %s AND vehicle_id = %s",
            (day_bucket(time.time_ns() // 1000), vid),
        ).one()
        assert index is None, "an emptied day keeps its index row"

    # A second readmit finds nothing; one cut off between its confirms and its deletes (the rows put back) publishes
    # the same copies again, which the job drops as duplicates of (epoch, seq): nothing changes.
    assert operator_commands.readmit(stack, vehicle_id=behind, day=None, shift_us=40 * DAY_US).published == 0
    originals = [imu_batch(behind, seq, true_start_us + seq * 1_000_000 - 40 * DAY_US, epoch=EPOCH) for seq in range(5)]
    now_ms = time.time_ns() // 1_000_000
    for body in originals:
        header = wire.decode_header(body)
        for name, values in quarantine_writes(f"fleet.{behind}.telemetry", header, body, "put back", now_ms=now_ms):
            cql.execute(STATEMENTS[name].format(ks=KEYSPACE).replace("?", "%s"), values)
    assert operator_commands.readmit(stack, vehicle_id=behind, day=None, shift_us=40 * DAY_US).published == 5
    # A marker behind the copies in the vehicle's queue order: once it is quarantined, the copies were processed.
    marker = imu_batch(behind, 99, true_start_us - 40 * DAY_US, epoch=EPOCH)
    with connected(stack, behind, passwords[behind]) as client:
        client.publish(f"fleet/{behind}/telemetry", marker, qos=1).wait_for_publish(10)
    eventually(lambda: held(cql, behind), lambda r: any(row.seq == 99 for row in r), timeout_s=BOUND_S)
    time.sleep(20)  # past an idle flush, which would write the minutes again had the copies been analysed
    assert [row[:3] for row in stored(cql, behind)] == expected
    assert minute_samples(cql, behind, true_start_us) == 500


def test_a_crash_with_12_s_lost_is_stored_once_and_a_storage_fault_status_with_its_dropped_range(
    stack: StackConfig,
    operator_client: Any,
    ingest_job: str,
    cql: Any,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    vid = unique_vehicle("restarted")
    config = provision_vehicle(operator_client, stack, vid, tmp_path)

    def status(**fields: Any) -> bytes:
        # The agent repeats its counts in every status (the time lost across its last restart too).
        base = {"vehicle_id": vid, "online": True, "epoch": 7, "restarts": 3, "unclean_restarts": 3}
        return VehicleStatus(**(base | {"last_restart_lost_ms": 12_000} | fields)).to_json()

    crash = status(reason="connected", uptime_s=2.0)
    sent_at_ms = time.time_ns() // 1_000_000
    with connected(stack, vid, config.broker.password) as client:
        client.publish(f"fleet/{vid}/status", crash, qos=1).wait_for_publish(10)
        first = eventually(
            lambda: list(cql.execute(f"SELECT * FROM {KEYSPACE}.agent_restarts WHERE vehicle_id = %s", (vid,))),
            bool,
            timeout_s=BOUND_S,
        )
        # The same counts again: the status resent, then heartbeats; then the disk fills (storage fault, 10 batches
        # dropped from the memory ring).
        client.publish(f"fleet/{vid}/status", crash, qos=1).wait_for_publish(10)
        client.publish(f"fleet/{vid}/status", status(reason="heartbeat", uptime_s=32.0), qos=1).wait_for_publish(10)
        fault = status(
            reason="heartbeat",
            uptime_s=62.0,
            storage_error="database or disk is full",
            memory_batches=600,
            dropped_total=10,
            dropped_ranges=[(40, 49)],
        )
        client.publish(f"fleet/{vid}/status", fault, qos=1).wait_for_publish(10)

    def latest() -> Any:
        return cql.execute(f"SELECT * FROM {KEYSPACE}.vehicle_status WHERE vehicle_id = %s", (vid,)).one()

    row = eventually(latest, lambda r: r is not None and r.storage_error is not None, timeout_s=BOUND_S)
    assert (row.epoch, row.restarts, row.unclean_restarts, row.last_restart_lost_ms) == (7, 3, 3, 12_000)
    assert (row.storage_error, row.memory_batches, row.dropped_total) == ("database or disk is full", 600, 10)
    history = list(cql.execute(f"SELECT * FROM {KEYSPACE}.agent_restarts WHERE vehicle_id = %s", (vid,)))
    assert [(r.epoch, r.restart, r.unclean, r.lost_ms) for r in history] == [(7, 3, True, 12_000)]
    assert history[0].reported_at == first[0].reported_at, "a resent status rewrote the restart row"
    started_ms = round(history[0].started_at.timestamp() * 1000)
    assert sent_at_ms - 2_000 - 1_000 <= started_ms <= sent_at_ms + BOUND_S * 1000
    gaps = list(
        cql.execute(f"SELECT epoch, first_seq, last_seq FROM {KEYSPACE}.seq_gaps WHERE vehicle_id = %s", (vid,))
    )
    assert [(g.epoch, g.first_seq, g.last_seq) for g in gaps] == [(7, 40, 49)]
    # `fleetsense query` says it where it shows the status.
    from fleetsense.stack.report import print_vehicle_report

    capsys.readouterr()
    print_vehicle_report(stack, vehicles=[vid])
    report = capsys.readouterr().out
    assert "restarts 3 (3 after a crash), last lost 12.0 s" in report, report
    assert "STORAGE FAULT: database or disk is full (600 batches in memory)" in report
    assert "restart 3 " in report and "after a crash: 12.0 s of samples lost" in report
