"""Driver-behaviour analytics through the whole pipeline: a scripted drive with known ground truth, run by the
real edge agent on simulated chips, published over MQTT, analysed by the Flink job, read back from Cassandra."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from fleetsense.cloud.query import events_between, sample_keys
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.cloud.store import day_buckets
from fleetsense.edge.runtime import send_outbox
from fleetsense.sim.mounting import Mounting
from fleetsense.sim.scenarios import harsh_events_drive
from fleetsense.sim.vehicle import SensorErrors, Vehicle
from paho.mqtt.enums import CallbackAPIVersion

from fleetsense import wire
from fleetsense.cluster.verdict import event_tolerance_s
from fleetsense.device_config import EdgeConfig
from fleetsense.load.virtual_drive import record_drive
from fleetsense.stack.layout import LOOPBACK, StackConfig

from .helpers import eventually, expected_keys, outbox_batches, provision_vehicle, unique_vehicle


@dataclass(frozen=True)
class ScriptedDrive:
    config: EdgeConfig
    batches: list[wire.Batch]
    expected_events: list[tuple[str, float]]  # (cloud kind, start as UTC seconds)
    start_wall_s: float
    end_wall_s: float


def record_scripted_drive(config: EdgeConfig, *, seed: int, hours_ago: float = 0.0) -> ScriptedDrive:
    script = harsh_events_drive()
    vehicle = Vehicle(
        script, seed=seed, mounting=Mounting.random(seed), sensor_errors=SensorErrors.typical_mpu6050(seed)
    )
    seconds = script.duration_s + 5.0
    start_wall_ns = time.time_ns() - int((seconds + hours_ago * 3600) * 1e9)
    record_drive(config, seconds=seconds, start_wall_ns=start_wall_ns, vehicle=vehicle)
    expected = sorted((r.kind, start_wall_ns / 1e9 + r.start_s) for r in vehicle.ground_truth.events())
    start_s = start_wall_ns / 1e9
    return ScriptedDrive(config, outbox_batches(config), expected, start_s, start_s + seconds)


def drive_window_us(drive: ScriptedDrive) -> tuple[int, int]:
    """From the drive's first sample to well after its last: a drive near midnight spans two day buckets."""
    return int(drive.start_wall_s * 1e6), int((drive.end_wall_s + 600) * 1e6)


def stored_events(cql: Any, drive: ScriptedDrive) -> list[tuple[str, float]]:
    rows = events_between(cql, KEYSPACE, drive.config.vehicle_id, *drive_window_us(drive))
    return sorted((row.kind, row.start_time.timestamp()) for row in rows)


def minute_rows(cql: Any, vid: str, drive: ScriptedDrive) -> list[Any]:
    return [
        row
        for day in day_buckets(*drive_window_us(drive))
        for row in cql.execute(
            f"SELECT minute, sample_count, event_counts FROM {KEYSPACE}.vehicle_minutes WHERE vehicle_id = %s "
            "AND day_bucket = %s",
            (vid, day),
        )
    ]


def assert_events_match(found: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert sorted(kind for kind, _ in found) == sorted(kind for kind, _ in expected), (found, expected)
    for kind in {k for k, _ in expected}:
        starts = sorted(t for k, t in found if k == kind)
        truth = sorted(t for k, t in expected if k == kind)
        tolerance = event_tolerance_s(kind)
        for got, want in zip(starts, truth, strict=True):
            assert abs(got - want) <= tolerance, f"{kind} starts at {got:.2f}, ground truth {want:.2f}"


def wait_for_events(cql: Any, drive: ScriptedDrive, timeout_s: float = 90.0) -> list[tuple[str, float]]:
    eventually(lambda: stored_events(cql, drive), lambda f: len(f) >= len(drive.expected_events), timeout_s=timeout_s)
    time.sleep(3)  # anything extra the job would still write shows up too
    return stored_events(cql, drive)


def test_a_scripted_drive_yields_exactly_its_events_aggregates_and_trip(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    drive = record_scripted_drive(
        provision_vehicle(operator_client, stack, unique_vehicle("script"), tmp_path), seed=11
    )
    assert send_outbox(drive.config, timeout_s=120) == 0
    assert_events_match(wait_for_events(cql, drive), drive.expected_events)

    vid = drive.config.vehicle_id
    imu = expected_keys(drive.batches, wire.Kind.IMU)
    assert sample_keys(cql, KEYSPACE, vid) == imu
    # The low-pass filter holds the last samples back until the vehicle has been silent for the idle flush.
    minutes = eventually(
        lambda: minute_rows(cql, vid, drive), lambda rows: sum(r.sample_count for r in rows) >= len(imu), timeout_s=45
    )
    assert sum(row.sample_count for row in minutes) == len(imu)
    harsh = sum(n for row in minutes for kind, n in (row.event_counts or {}).items())
    assert harsh == sum(1 for kind, _ in drive.expected_events if kind != "stop")
    trips = list(cql.execute(f"SELECT start_time, score FROM {KEYSPACE}.trips WHERE vehicle_id = %s", (vid,)))
    assert trips and all(0 <= row.score <= 100 for row in trips)


def publish_raw(config: EdgeConfig, stack: StackConfig, payloads: list[bytes]) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=config.vehicle_id)
    client.username_pw_set(config.vehicle_id, config.broker.password)
    client.connect(LOOPBACK, stack.ports.mqtt)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(f"fleet/{config.vehicle_id}/telemetry", payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_duplicated_and_reordered_batches_are_counted_once(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    from fleetsense.stack import jobs

    drive = record_scripted_drive(provision_vehicle(operator_client, stack, unique_vehicle("dup"), tmp_path), seed=12)
    flink = jobs.cluster(stack)
    job = flink.running(jobs.INGEST_JOB_NAME)
    assert job is not None
    failed_checkpoints, restarts = flink.last_checkpoint(job.job_id)["failed"], flink.restarts(job.job_id)
    payloads = [wire.encode(batch) for batch in drive.batches]
    shuffled: list[bytes] = []
    rng = random.Random(5)
    for start in range(0, len(payloads), 8):  # reorder within windows of 8, and send a third of them twice
        window = payloads[start : start + 8]
        rng.shuffle(window)
        shuffled += window + [p for p in window if rng.random() < 0.33]
    publish_raw(drive.config, stack, shuffled)
    assert len(shuffled) > len(payloads)
    assert_events_match(wait_for_events(cql, drive), drive.expected_events)
    vid = drive.config.vehicle_id
    assert sample_keys(cql, KEYSPACE, vid) == expected_keys(drive.batches, wire.Kind.IMU)
    imu = expected_keys(drive.batches, wire.Kind.IMU)
    counted = eventually(
        lambda: minute_rows(cql, vid, drive), lambda rows: sum(r.sample_count for r in rows) >= len(imu), timeout_s=45
    )
    assert sum(row.sample_count for row in counted) == len(imu)
    # Batches waited in map state meanwhile: every checkpoint still succeeded and the job never restarted.
    assert flink.last_checkpoint(job.job_id)["failed"] == failed_checkpoints
    assert flink.restarts(job.job_id) == restarts


def test_a_backlog_from_hours_ago_is_analysed_in_full_while_a_live_vehicle_keeps_flowing(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    from fleetsense.stack import jobs

    flink = jobs.cluster(stack)
    bundle_counters = ("amqpPolls", "amqpPolledMessages")
    before = flink.counters(ingest_job, bundle_counters)
    offline = record_scripted_drive(
        provision_vehicle(operator_client, stack, unique_vehicle("backlog"), tmp_path), seed=13, hours_ago=3.0
    )
    live = record_scripted_drive(provision_vehicle(operator_client, stack, unique_vehicle("live"), tmp_path), seed=14)
    with ThreadPoolExecutor(2) as pool:  # both at once: the old backlog and the live vehicle interleave
        left = list(pool.map(lambda d: send_outbox(d.config, timeout_s=120), (offline, live)))
    assert left == [0, 0]
    assert_events_match(wait_for_events(cql, offline), offline.expected_events)
    assert_events_match(wait_for_events(cql, live), live.expected_events)
    assert sample_keys(cql, KEYSPACE, offline.config.vehicle_id) == expected_keys(offline.batches, wire.Kind.IMU)
    # A backlog drains faster than the job takes it one by one: the source hands it over in bundles.
    sent = len(offline.batches) + len(live.batches)
    after = eventually(
        lambda: flink.counters(ingest_job, bundle_counters),
        lambda now: now["amqpPolledMessages"] - before["amqpPolledMessages"] >= sent,
        timeout_s=30,  # Flink's REST metrics lag by up to ~10 s
    )
    polls = after["amqpPolls"] - before["amqpPolls"]
    assert (after["amqpPolledMessages"] - before["amqpPolledMessages"]) / polls > 1.5, (before, after)


def test_vehicle_status_goes_online_with_the_agent_and_offline_with_its_last_will(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    from fleetsense.stack import manager

    from .test_edge_agent import start_agent

    vid = unique_vehicle("status")
    path = manager.provision_vehicle(stack, operator_client, vid, out_dir=tmp_path)

    def status() -> Any:
        return cql.execute(
            f"SELECT online, reason, outbox_depth FROM {KEYSPACE}.vehicle_status WHERE vehicle_id = %s", (vid,)
        ).one()

    agent = start_agent(path)
    try:
        online = eventually(status, lambda row: row is not None and row.online, timeout_s=60)
        assert online is not None and online.online and online.reason in ("connected", "heartbeat")
    finally:
        agent.kill()  # SIGKILL: no goodbye, the broker publishes the last will
        agent.wait()
    offline = eventually(status, lambda row: row is not None and not row.online, timeout_s=60)
    assert offline is not None and not offline.online and offline.reason == "connection lost"


def test_a_vehicles_class_picks_its_event_thresholds(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    from fleetsense.cloud.profiles import set_vehicle_class

    van = record_scripted_drive(provision_vehicle(operator_client, stack, unique_vehicle("van"), tmp_path), seed=15)
    truck = record_scripted_drive(provision_vehicle(operator_client, stack, unique_vehicle("truck"), tmp_path), seed=15)
    set_vehicle_class(cql, KEYSPACE, [truck.config.vehicle_id], "truck")  # before the job first sees it
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda d: send_outbox(d.config, timeout_s=120), (van, truck))) == [0, 0]
    assert_events_match(wait_for_events(cql, van), van.expected_events)
    # The same drive judged as a truck: its lower thresholds also flag the ordinary 0.24 g and 0.28 g manoeuvres.
    truck_events = eventually(
        lambda: stored_events(cql, truck), lambda f: len(f) > len(truck.expected_events), timeout_s=60
    )
    assert len(truck_events) > len(truck.expected_events)


def test_a_class_changed_while_the_job_tracks_the_vehicle_applies_to_its_next_batches(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    from fleetsense.cloud.profiles import set_vehicle_class

    from fleetsense.stack import jobs

    config = provision_vehicle(operator_client, stack, unique_vehicle("reclass"), tmp_path)
    as_van = record_scripted_drive(config, seed=15, hours_ago=0.25)  # well before the second drive
    assert send_outbox(config, timeout_s=120) == 0
    assert_events_match(wait_for_events(cql, as_van), as_van.expected_events)

    set_vehicle_class(cql, KEYSPACE, [config.vehicle_id], "truck")
    refresh_s = float(jobs.submitted_setting(stack, "profile_refresh_s") or 60.0)
    time.sleep(refresh_s + 3.0)  # every subtask has re-read the profiles
    as_truck = record_scripted_drive(config, seed=15)
    assert send_outbox(config, timeout_s=120) == 0

    def second_drive() -> list[tuple[str, float]]:
        return [event for event in stored_events(cql, as_truck) if event[1] >= as_truck.start_wall_s - 1.0]

    # The same drive again, now judged as a truck: the lower thresholds also flag its ordinary manoeuvres, as
    # for a vehicle that was a truck from the start (test_a_vehicles_class_picks_its_event_thresholds).
    found = eventually(second_drive, lambda f: len(f) > len(as_truck.expected_events), timeout_s=60)
    assert len(found) > len(as_truck.expected_events)
    first_drive = [event for event in stored_events(cql, as_van) if event[1] < as_truck.start_wall_s - 1.0]
    assert_events_match(first_drive, as_van.expected_events)  # the first drive unchanged
