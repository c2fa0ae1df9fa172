"""A job that writes its results into another keyspace and nothing else (issue 19), against the real Cassandra and a
local Flink: the Python writer and the connector's Java sink put the result tables' rows into a result version's
keyspace made by schema.apply_result_schema, a results-only job writes nothing into the main keyspace, the job's
graph has no status branch in that mode, and the result_versions table's conditional writes hold under racing
writers (cloud/result_versions.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud import result_versions as rv
from fleetsense.cloud import schema
from fleetsense.cloud import tables as t
from fleetsense.cloud.cassandra_session import CqlLogin
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.cloud.store import Binder, CassandraWriter
from fleetsense.cloud.table_model import USING_TIMESTAMP, Table, Write
from fleetsense.cloud.write_target import WRITES_ALL, WRITES_RESULTS, WriteTarget

from fleetsense.errors import ConfigError
from fleetsense.stack import cassandra_auth
from fleetsense.stack.cassandra_auth import JOB, OPERATOR, session_as
from fleetsense.stack.jobs import ingest_settings
from fleetsense.stack.layout import StackConfig

from .helpers import unique_vehicle

START_MS = 1_795_000_000_000
DAY = date(2026, 11, 18)
# What a replay writes beside its results; a results-only job must drop every one.
INGEST = (t.VEHICLES, t.VEHICLE_HOURS, t.BATCHES, t.SEQ_GAPS, t.LATE_ARRIVALS)
VERSIONS_KEYSPACE = "fleetsense_versions_test"  # a scratch main keyspace for the version table's tests


def _value(table: Table, column: str, vehicle: str) -> Any:
    """A value of a column's declared type (the key columns the test reads back by: the vehicle and fixed times)."""
    cql_type = table.column(column).cql_type
    if column == "vehicle_id":
        return vehicle
    if column == "kind" and cql_type == t.TEXT:
        return "harsh_brake"
    return {
        t.TEXT: "x",
        t.INT: 1,
        t.BIGINT: 7,
        t.FLOAT: 0.5,
        t.DOUBLE: 0.5,
        t.BOOLEAN: True,
        t.BLOB: b"\x01\x02",
        t.TIMESTAMP: START_MS,
        t.DAY: DAY,
        t.COUNTS: {"harsh_brake": 1},
        t.TEXT_SET: {"x"},
    }[cql_type]


def _write(table: Table, vehicle: str) -> Write:
    values = {column: _value(table, column, vehicle) for column in table.written_columns}
    if table.own_timestamp:
        values[USING_TIMESTAMP] = START_MS * 1000
    return table.row(**values)


def _writes(vehicle: str) -> list[Write]:
    return [_write(table, vehicle) for table in (*t.RESULT_TABLES, *INGEST)]


def _stored(session: Any, keyspace: str, table: Table, vehicle: str) -> int:
    """Rows of `vehicle` in its partition of `table` in `keyspace` (fleet_events' partition is an hour of them all)."""
    keys = table.partition_key
    cql = table.select("vehicle_id", where=keys).format(ks=keyspace)
    rows = session.execute(cql, tuple(_value(table, key, vehicle) for key in keys))
    return sum(1 for row in rows if row.vehicle_id == vehicle)


def _where(session: Any, vehicle: str, main: str, results: str) -> dict[str, tuple[int, int]]:
    """Each table's rows of the vehicle: (in the main keyspace, in the results keyspace)."""
    return {
        table.name: (
            _stored(session, main, table, vehicle),
            _stored(session, results, table, vehicle) if table.versioned else 0,
        )
        for table in (*t.RESULT_TABLES, *INGEST)
    }


@pytest.fixture(scope="module")
def result_keyspaces(stack: StackConfig) -> Iterator[list[str]]:
    """Two result versions' keyspaces (versions 2 and 3 of the main keyspace), made as `job reprocess` will: by the
    operator, with the job's grants when logins are on."""
    names = [rv.keyspace_of(KEYSPACE, n) for n in (2, 3)]
    with session_as(stack, OPERATOR) as operator:
        for name in names:
            schema.apply_result_schema(operator, name)
            schema.apply_result_schema(operator, name)  # idempotent
            login = cassandra_auth.login(stack, JOB)
            if login is not None:
                for permission in cassandra_auth.USERS[JOB].keyspace_permissions:
                    operator.execute(f"GRANT {permission} ON KEYSPACE {name} TO {login.username}")
        yield names


def test_a_result_keyspace_holds_exactly_the_five_result_tables(cql: Any, result_keyspaces: list[str]) -> None:
    for name in result_keyspaces:
        found = {row.table_name for row in cql.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (name,)
        )}  # fmt: skip
        assert found == {table.name for table in t.RESULT_TABLES}
        indexes = {row.index_name for row in cql.execute(
            "SELECT index_name FROM system_schema.indexes WHERE keyspace_name = %s", (name,)
        )}  # fmt: skip
        assert indexes == {"vehicle_events_kind_sai", "fleet_events_kind_sai"}


def test_the_python_writer_of_a_results_only_job_writes_the_results_keyspace_and_nothing_else(
    cql: Any, result_keyspaces: list[str]
) -> None:
    results = result_keyspaces[0]
    vehicle = unique_vehicle("results-python")
    writer = CassandraWriter(cql, WriteTarget(keyspace=KEYSPACE, results_keyspace=results, writes=WRITES_RESULTS))
    writer.write_all(_writes(vehicle))
    stored = _where(cql, vehicle, KEYSPACE, results)
    assert stored == {table.name: (0, 1 if table.versioned else 0) for table in (*t.RESULT_TABLES, *INGEST)}

    # The live job after a promote: everything written, its results into the version's keyspace.
    live = unique_vehicle("results-live")
    CassandraWriter(cql, WriteTarget(keyspace=KEYSPACE, results_keyspace=results, writes=WRITES_ALL)).write_all(
        _writes(live)
    )
    stored = _where(cql, live, KEYSPACE, results)
    assert stored == {table.name: (0, 1) if table.versioned else (1, 0) for table in (*t.RESULT_TABLES, *INGEST)}


def _run_sink(stack: StackConfig, records: list[bytes], *, results_keyspace: str) -> None:
    """Write `records` through the connector's Java sink in a local Flink job, its statements bound to a
    results-only target. The connector jar goes onto this process's JVM classpath first (as
    tests/integration/test_cassandra_sink.py does): `cassandra_sink` looks its Java class up there."""
    from fleetsense.cloud.cassandra_sink import CassandraSinkSettings, cassandra_sink
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
            results_keyspace=results_keyspace,
            writes=WRITES_RESULTS,
            login=CqlLogin(username=login.username, password=login.password) if login else None,
        )
    )
    java_records = get_gateway().jvm.java.util.ArrayList()
    for record in records:
        java_records.add(record)
    DataStream(env._j_stream_execution_environment.fromCollection(java_records)).sink_to(sink).name("sink")
    env.execute("results-only cassandra sink")


def test_the_java_sink_of_a_results_only_job_writes_the_results_keyspace_and_nothing_else(
    stack: StackConfig, cql: Any, result_keyspaces: list[str]
) -> None:
    results = result_keyspaces[1]
    target = WriteTarget(keyspace=KEYSPACE, results_keyspace=results, writes=WRITES_RESULTS)
    binder = Binder(cql, target)  # the analysis operator's binding, as in the job
    vehicles = [unique_vehicle(f"results-java-{n}") for n in range(5)]
    records = [record for v in vehicles if (record := binder.sink_record(_writes(v))) is not None]
    assert len(records) == len(vehicles)
    _run_sink(stack, records, results_keyspace=results)
    for vehicle in vehicles:
        stored = _where(cql, vehicle, KEYSPACE, results)
        assert stored == {table.name: (0, 1 if table.versioned else 0) for table in (*t.RESULT_TABLES, *INGEST)}


def test_a_results_only_jobs_graph_has_no_status_branch_and_the_live_jobs_keeps_it(stack: StackConfig) -> None:
    from fleetsense.cloud.jobs.telemetry_ingest import build
    from pyflink.datastream import StreamExecutionEnvironment

    def plan(overrides: dict[str, str], **connection: str) -> str:
        import dataclasses

        settings = dataclasses.replace(ingest_settings(stack), **connection).with_overrides(overrides)
        env = StreamExecutionEnvironment.get_execution_environment()
        env.add_jars(Path(settings.connector_jar).resolve().as_uri())
        build(env, settings)
        return str(env.get_execution_plan())

    live = plan({})
    assert "vehicle status" in live and "amqp: fleet.status" in live and "cassandra sink" in live
    replay = plan({"writes": "results", "events_exchange": ""}, results_keyspace=rv.keyspace_of(KEYSPACE, 2))
    assert "vehicle status" not in replay and "amqp: fleet.status" not in replay
    assert "cassandra sink" in replay and "validate, deduplicate, analyse" in replay


# --- result_versions against the real Cassandra ----------------------------------------------------------------------


@pytest.fixture
def versions(stack: StackConfig) -> Iterator[Any]:
    """The operator's session on a fresh scratch main keyspace holding only the result_versions table, made with
    the CQL its migration runs."""
    with session_as(stack, OPERATOR) as operator:
        operator.execute(f"DROP KEYSPACE IF EXISTS {VERSIONS_KEYSPACE}", timeout=60)
        operator.execute(f"CREATE KEYSPACE {VERSIONS_KEYSPACE} WITH replication = {schema.replication()}")
        release = operator.execute("SELECT release_version FROM system.local").one().release_version
        operator.execute(schema.cql_of(schema.CreateTable(t.RESULT_VERSIONS, 10), VERSIONS_KEYSPACE, release))
        yield operator
        for n in range(2, 40):
            operator.execute(f"DROP KEYSPACE IF EXISTS {rv.keyspace_of(VERSIONS_KEYSPACE, n)}", timeout=60)
        operator.execute(f"DROP KEYSPACE IF EXISTS {VERSIONS_KEYSPACE}", timeout=60)


def test_migration_10_made_the_version_table_in_the_main_keyspace(cql: Any) -> None:
    assert schema.schema_version(cql) >= 10
    active, versions = rv.read_versions(cql, KEYSPACE)
    # Version 1 is active, whether or not a row records it (an earlier test may have flipped away and back).
    first = next(v for v in versions if v.version == 1)
    assert active == 1 and (first.results_keyspace, first.state) == (KEYSPACE, "active")


def _add(session: Any, **fields: Any) -> int:
    values = {
        "from_time": datetime(2026, 11, 7, tzinfo=UTC),
        "settings": {"thresholds": "van.harsh_brake_g=0.30"},
        "job_name": "fleetsense-reprocess",
    } | fields
    return rv.add_version(session, VERSIONS_KEYSPACE, **values)


def test_a_version_is_added_promoted_over_a_missing_pointer_rolled_back_and_promoted_again(versions: Any) -> None:
    assert _add(versions) == 2
    active, chain = rv.read_versions(versions, VERSIONS_KEYSPACE)
    assert active == 1 and [(v.version, v.state) for v in chain] == [(1, "active"), (2, "replaying")]
    v2 = chain[1]
    assert v2.results_keyspace == f"{VERSIONS_KEYSPACE}_r2" and v2.parent == 1
    assert v2.from_time == datetime(2026, 11, 7, tzinfo=UTC) and v2.settings == {"thresholds": "van.harsh_brake_g=0.30"}
    assert not rv.flip_active(versions, VERSIONS_KEYSPACE, 2, 1)  # 2 is not active
    # The first flip: the pointer is null (no row for version 1 at all): `IF active_version = null` holds.
    retire = datetime(2026, 12, 14, tzinfo=UTC)
    assert rv.flip_active(versions, VERSIONS_KEYSPACE, 1, 2, retire_after=retire)
    active, chain = rv.read_versions(versions, VERSIONS_KEYSPACE)
    assert active == 2 and [(v.version, v.state, v.recorded) for v in chain] == [
        (1, "retired", True),
        (2, "active", True),
    ]
    assert chain[0].retire_after == retire and chain[0].results_keyspace == VERSIONS_KEYSPACE
    assert not rv.flip_active(versions, VERSIONS_KEYSPACE, 1, 2)  # stale
    assert rv.flip_active(versions, VERSIONS_KEYSPACE, 2, 1)  # a rollback: the pointer now holds 1
    assert rv.flip_active(versions, VERSIONS_KEYSPACE, 1, 2)  # and forward from a pointer that holds 1
    assert rv.read_versions(versions, VERSIONS_KEYSPACE)[0] == 2


def test_racing_writers_claim_distinct_numbers_and_exactly_one_flip_wins(versions: Any) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(lambda n: _add(versions, job_name=f"writer-{n}"), range(16)))
    assert sorted(numbers) == list(range(2, 18))
    active, chain = rv.read_versions(versions, VERSIONS_KEYSPACE)
    assert [v.version for v in chain] == list(range(1, 18))
    assert {v.job_name for v in chain[1:]} == {f"writer-{n}" for n in range(16)}
    # Eight promotes of eight different versions race from the same expected active version: one wins.
    with ThreadPoolExecutor(max_workers=8) as pool:
        won = list(pool.map(lambda new: rv.flip_active(versions, VERSIONS_KEYSPACE, 1, new), range(2, 10)))
    assert won.count(True) == 1
    winner = 2 + won.index(True)
    active, chain = rv.read_versions(versions, VERSIONS_KEYSPACE)
    assert active == winner and [v.version for v in chain if v.state == "active"] == [winner]


def test_dropping_a_version_removes_its_keyspace_and_never_the_active_one_or_version_1(versions: Any) -> None:
    assert (_add(versions), _add(versions)) == (2, 3)
    for n in (2, 3):
        schema.apply_result_schema(versions, rv.keyspace_of(VERSIONS_KEYSPACE, n))
    assert rv.flip_active(versions, VERSIONS_KEYSPACE, 1, 2)
    rv.drop_version(versions, VERSIONS_KEYSPACE, 3)
    keyspaces = {row.keyspace_name for row in versions.execute("SELECT keyspace_name FROM system_schema.keyspaces")}
    assert f"{VERSIONS_KEYSPACE}_r3" not in keyspaces and f"{VERSIONS_KEYSPACE}_r2" in keyspaces
    assert VERSIONS_KEYSPACE in keyspaces
    chain = rv.read_versions(versions, VERSIONS_KEYSPACE)[1]
    assert [(v.version, v.state) for v in chain] == [(1, "retired"), (2, "active"), (3, "dropped")]
    rv.drop_version(versions, VERSIONS_KEYSPACE, 3)  # again: nothing left to do, no error
    assert not rv.flip_active(versions, VERSIONS_KEYSPACE, 2, 3)  # a dropped version is never promoted
    for version, says in ((2, "is the active one"), (1, "never dropped")):
        with pytest.raises(ConfigError, match=says):
            rv.drop_version(versions, VERSIONS_KEYSPACE, version)
    assert _add(versions) == 4  # 3's number (and keyspace name) is not given again
    started = time.monotonic()
    assert rv.set_state(versions, VERSIONS_KEYSPACE, 4, "retired", expected="replaying")
    assert not rv.set_state(versions, VERSIONS_KEYSPACE, 4, "retired", expected="replaying")
    assert time.monotonic() - started < 10
