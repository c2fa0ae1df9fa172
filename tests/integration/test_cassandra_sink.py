"""The connector's Java Cassandra sink against the real database, driven by a local Flink (in this process's
PyFlink JVM) from a fixed list of records: many rapid rewrites of the same rows, many of them in flight at once and
many retried after a client-side time-out (the write may have been applied anyway), and the newest must be stored
every time (docs/cloud-etl.md, "Write order")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fleetsense.cloud.cassandra_session import CqlLogin
from fleetsense.cloud.cassandra_sink import CassandraSinkSettings, cassandra_sink
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.cloud.store import Binder
from fleetsense.cloud.tables import TRIPS, VEHICLES

from fleetsense.stack.jobs import ingest_settings
from fleetsense.stack.layout import StackConfig

from .helpers import unique_vehicle

REWRITES = 150  # records, each rewriting every vehicle's rows once
VEHICLES_N = 20
START_MS = 1_795_000_000_000


def _trip(vehicle: str, version: int) -> tuple[str, Any]:
    """The open trip, rewritten with a longer duration each time (the row the Python writer used to wait for)."""
    return TRIPS.row(
        vehicle_id=vehicle,
        start_time=START_MS,
        end_time=START_MS + 1000 * version,
        duration_s=float(version),
        open=True,
        event_counts={},
        score=None,
    )


def _latest(vehicle: str, version: int, *, sample_ms: int) -> tuple[str, Any]:
    """The latest-seen row, written USING TIMESTAMP its sample time (µs)."""
    return VEHICLES.row(
        vehicle_id=vehicle, last_seq=version, last_sample_time=sample_ms, using_timestamp_us=sample_ms * 1000
    )


def _run_sink(stack: StackConfig, records: list[bytes], *, request_timeout_ms: int) -> float:
    """Write `records` through the sink in a local Flink job at parallelism 1; the job's run time in seconds."""
    from pyflink.datastream import DataStream, StreamExecutionEnvironment
    from pyflink.java_gateway import get_gateway

    job = ingest_settings(stack)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.add_jars(Path(job.connector_jar).resolve().as_uri())
    env.set_parallelism(1)
    login = job.cassandra_login()
    sink = cassandra_sink(
        CassandraSinkSettings(
            host=job.cassandra_host,
            port=job.cassandra_port,
            keyspace=KEYSPACE,
            login=CqlLogin(username=login.username, password=login.password) if login else None,
            max_in_flight=256,
            attempts=40,
            first_backoff_ms=1,
            request_timeout_ms=request_timeout_ms,
        )
    )
    # The records as Java byte[] (PyFlink's from_collection cannot carry byte arrays: ClassCastException).
    java_records = get_gateway().jvm.java.util.ArrayList()
    for record in records:
        java_records.add(record)
    DataStream(env._j_stream_execution_environment.fromCollection(java_records)).sink_to(sink).name("sink")
    started = time.monotonic()
    env.execute("cassandra sink write order")
    return time.monotonic() - started


def test_rapid_rewrites_of_the_same_rows_through_the_sink_store_the_newest(stack: StackConfig, cql: Any) -> None:
    binder = Binder(cql, KEYSPACE)  # the job's own binding: the values' bytes as the analysis operator sends them
    vehicles = [unique_vehicle(f"sink-order-{n}") for n in range(VEHICLES_N)]
    records: list[bytes] = []
    for version in range(REWRITES):
        writes = [_trip(v, version) for v in vehicles]
        writes += [_latest(v, version, sample_ms=START_MS + version) for v in vehicles]
        record = binder.sink_record(writes)
        assert record is not None
        records.append(record)
    # Last of all, an older batch seen again (a replayed backlog): its own timestamp is older, so it must lose.
    replayed = binder.sink_record([_latest(v, 0, sample_ms=START_MS) for v in vehicles])
    assert replayed is not None
    # A 25 ms request time-out under this load: many writes time out in the client and are sent again while the
    # first send may still be applied; each keeps the timestamp of its first send, so none can overwrite a newer.
    _run_sink(stack, [*records, replayed], request_timeout_ms=25)

    for vehicle in vehicles:
        trip = cql.execute(
            TRIPS.select("duration_s", "end_time", where=("vehicle_id",)).format(ks=KEYSPACE), (vehicle,)
        ).one()
        assert trip.duration_s == REWRITES - 1, f"{vehicle}: an older rewrite of the open trip won"
        latest = cql.execute(VEHICLES.select("last_seq", where=("vehicle_id",)).format(ks=KEYSPACE), (vehicle,)).one()
        assert latest.last_seq == REWRITES - 1, f"{vehicle}: an older latest-seen row won"


def test_an_upgrade_from_the_python_writer_to_the_java_sink_mid_stream_loses_and_duplicates_nothing(
    stack: StackConfig, operator_client: Any, cql: Any, tmp_path: Path
) -> None:
    """An installation running the job of before the sink (its savepoint has the old sink operator) upgrades onto
    the Java sink: the vehicles' state carries over and every sample and event is stored once."""
    import dataclasses
    import threading

    from fleetsense.cloud.query import sample_keys
    from fleetsense.edge.runtime import send_outbox

    from fleetsense import wire
    from fleetsense.stack import jobs

    from .helpers import expected_keys, provision_vehicle
    from .test_analytics_pipeline import assert_events_match, record_scripted_drive, wait_for_events

    jobs.cancel_ingest(stack)
    job_id, _ = jobs.submit_ingest(stack, {"sink": "python"})
    jobs.cluster(stack).wait_running(job_id, timeout_s=120)
    config = provision_vehicle(operator_client, stack, unique_vehicle("sink-upgrade"), tmp_path)
    config = dataclasses.replace(config, outbox=dataclasses.replace(config.outbox, replay_rate_per_s=8.0))
    drive = record_scripted_drive(config, seed=29)
    left: list[int] = []
    sender = threading.Thread(target=lambda: left.append(send_outbox(drive.config, timeout_s=240)))
    sender.start()
    time.sleep(8)
    old, savepoint, new = jobs.upgrade_ingest(stack, {"sink": "java"})
    sender.join()
    assert left == [0] and old != new and savepoint
    assert jobs.submitted_setting(stack, "sink") == "java"
    assert_events_match(wait_for_events(cql, drive, timeout_s=120), drive.expected_events)
    assert sample_keys(cql, KEYSPACE, drive.config.vehicle_id) == expected_keys(drive.batches, wire.Kind.IMU)
