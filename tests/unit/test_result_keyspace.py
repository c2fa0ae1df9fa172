"""A job that writes its results into another keyspace and nothing else (issue 19, the first build step): which
keyspace each statement writes, what a results-only job drops, the settings that refuse a replay that would reach
live readers, and the schema of a result version's keyspace. Pure: no server."""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fleetsense.cloud import schema
from fleetsense.cloud.cassandra_sink import CassandraSinkSettings, LiveEventSettings
from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.sink_records import decode
from fleetsense.cloud.store import KEY_VALUES, OWN_TIMESTAMP, Binder, CassandraWriter, coalesce
from fleetsense.cloud.tables import RESULT_TABLES, RESULT_WRITES, TABLES, TRIPS, VEHICLES, WRITTEN
from fleetsense.cloud.write_target import WRITES_ALL, WRITES_RESULTS, WriteTarget

from fleetsense.errors import ConfigError

RESULTS = ("vehicle_events", "fleet_events", "vehicle_minutes", "daily_scores", "trips")
START_MS = 1_795_000_000_000


def _settings(**values: Any) -> IngestJobSettings:
    connections = {"amqp_host": "h", "amqp_port": 1, "amqp_vhost": "/", "amqp_username": "u", "amqp_password": "p"}
    base: dict[str, Any] = {
        **connections,
        "amqp_queue": "q",
        "cassandra_host": "c",
        "cassandra_port": 2,
        "keyspace": "fleetsense",
        "connector_jar": "j",
    }
    return IngestJobSettings(**(base | values))


REPLAY = {"results_keyspace": "fleetsense_r2", "writes": WRITES_RESULTS, "events_exchange": ""}


# --- the declarations ------------------------------------------------------------------------------------------------


def test_the_five_result_tables_are_the_versioned_ones_and_their_statements_the_result_writes() -> None:
    assert {t.name for t in RESULT_TABLES} == set(RESULTS)
    assert {"event_by_vehicle", "event_by_fleet", "minute", "score", "trip"} == RESULT_WRITES
    assert WRITTEN.keys() >= RESULT_WRITES
    assert all(t.retired is None and t.dropped is None and t.writer == "job" for t in RESULT_TABLES)
    # Every other table the job writes is an ingest fact: not versioned.
    assert {t.name for t in WRITTEN.values() if t.write not in RESULT_WRITES} & set(RESULTS) == set()


def test_only_a_table_the_job_writes_can_be_versioned() -> None:
    with pytest.raises(ValueError, match="only a table the job writes"):
        dataclasses.replace(TRIPS, write=None)  # versioned, but nothing writes it
    with pytest.raises(ValueError, match="only a table the job writes"):
        dataclasses.replace(TRIPS, writer="service")


# --- which keyspace each statement writes ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WRITTEN))
def test_each_statement_writes_the_results_keyspace_if_it_is_a_result_and_the_main_one_otherwise(name: str) -> None:
    target = WriteTarget(keyspace="fleetsense", results_keyspace="fleetsense_r2")
    expected = "fleetsense_r2" if WRITTEN[name].versioned else "fleetsense"
    assert target.keyspace_of(name) == expected
    assert target.statements()[name].startswith(f"INSERT INTO {expected}.{WRITTEN[name].name} (")
    # The default: everything in the main keyspace, as before versions existed.
    assert WriteTarget(keyspace="fleetsense").keyspace_of(name) == "fleetsense"


def test_the_default_target_prepares_every_statement_exactly_as_before() -> None:
    from fleetsense.cloud.store import STATEMENTS

    assert WriteTarget(keyspace="ks").statements() == {name: cql.format(ks="ks") for name, cql in STATEMENTS.items()}


def test_a_results_only_job_prepares_and_keeps_only_the_result_statements() -> None:
    target = WriteTarget(keyspace="fleetsense", results_keyspace="fleetsense_r2", writes=WRITES_RESULTS)
    assert set(target.statements()) == RESULT_WRITES
    assert all(" fleetsense_r2." in cql for cql in target.statements().values())
    ingest = ["block", "vehicle", "hour", "gap", "late", "rejected", "rejected_source", "quarantine", "conflict"]
    for name in ingest:
        assert not target.keeps(name) and WriteTarget(keyspace="k").keeps(name)
    writes = [(name, ()) for name in [*ingest, "trip", "status", "agent_restart", "minute"]]
    assert target.kept(writes) == [("trip", ()), ("minute", ())]


def test_writes_must_be_all_or_results() -> None:
    with pytest.raises(ConfigError, match="neither of all, results"):
        WriteTarget(keyspace="k", writes="some")


# --- the binder and the Python writer follow the target --------------------------------------------------------------


class KeyspaceSession:
    """Prepares any statement: its bound values are the statement's name and the keyspace it writes, so a test sees
    where each write would go."""

    def __init__(self) -> None:
        self.prepared: list[str] = []

    def prepare(self, cql: str) -> Any:
        self.prepared.append(cql)
        match = re.match(r"INSERT INTO (\w+)\.(\w+) ", cql)
        assert match, cql
        keyspace, table = match.groups()

        def bind(values: Sequence[Any]) -> Any:
            if values and values[0] == "unwritable":
                raise TypeError("this value cannot be bound")
            return SimpleNamespace(values=[table.encode(), keyspace.encode()], keyspace=keyspace, routing_key=b"")

        return SimpleNamespace(bind=bind, consistency_level=None)


def _trip(vehicle: str) -> tuple[str, Any]:
    return TRIPS.row(
        vehicle_id=vehicle,
        start_time=START_MS,
        end_time=START_MS + 1000,
        duration_s=1.0,
        open=True,
        event_counts={},
        score=None,
    )


def _latest(vehicle: str) -> tuple[str, Any]:
    return VEHICLES.row(vehicle_id=vehicle, last_seq=1, last_sample_time=START_MS, using_timestamp_us=START_MS * 1000)


def test_the_binder_sends_result_rows_to_the_results_keyspace_and_the_rest_to_the_main_one() -> None:
    session = KeyspaceSession()
    binder = Binder(session, WriteTarget(keyspace="fleetsense", results_keyspace="fleetsense_r2"))
    record = binder.sink_record([_trip("van"), _latest("van")])
    assert record is not None
    assert [values for _, values in decode(record)] == [[b"trips", b"fleetsense_r2"], [b"vehicles", b"fleetsense"]]


def test_a_results_only_binder_drops_the_ingest_writes_before_the_sink() -> None:
    session = KeyspaceSession()
    binder = Binder(session, WriteTarget(keyspace="fleetsense", results_keyspace="fleetsense_r2", writes="results"))
    assert all(" fleetsense_r2." in cql for cql in session.prepared) and len(session.prepared) == len(RESULT_WRITES)
    record = binder.sink_record([_latest("van"), _trip("van"), ("hour", ("van", START_MS))])
    assert record is not None
    assert [name for name, _ in decode(record)] == ["trip"]
    assert binder.sink_record([_latest("van")]) is None  # nothing left: no record


def test_a_results_only_binder_drops_a_row_its_columns_cannot_hold_instead_of_writing_a_rejection() -> None:
    results = Binder(KeyspaceSession(), WriteTarget(keyspace="k", results_keyspace="k_r2", writes="results"))
    unwritable = ("trip", ("unwritable", *_trip("van")[1][1:]))
    assert results.sink_record([unwritable]) is None and results.unwritable == 1
    # The live job records it as a rejection (in its main keyspace), as it always did.
    live = Binder(KeyspaceSession(), WriteTarget(keyspace="k", results_keyspace="k_r2"))
    record = live.sink_record([unwritable])
    assert record is not None and [(n, v[1]) for n, v in decode(record)] == [("rejected", b"k")]


def test_the_python_writer_sends_each_kept_write_to_its_keyspace() -> None:
    writer = CassandraWriter(
        KeyspaceSession(), WriteTarget(keyspace="k", results_keyspace="k_r2", writes="results"), batch_rows=1
    )
    requests = writer.requests([_latest("van"), _trip("van"), _trip("bus")])
    assert [(bound.values[0], bound.keyspace) for bound, _ in requests] == [(b"trips", "k_r2"), (b"trips", "k_r2")]
    default = CassandraWriter(KeyspaceSession(), "k", batch_rows=1)  # a bare keyspace: everything there
    assert {bound.keyspace for bound, _ in default.requests([_latest("van"), _trip("van")])} == {"k"}


def _random_writes(rng: random.Random, names: list[str]) -> list[tuple[str, tuple[int, ...]]]:
    writes = []
    for _ in range(rng.randint(0, 40)):
        name = rng.choice(names)
        width = len(WRITTEN[name].written_columns) + (1 if name in OWN_TIMESTAMP else 0)
        # Few distinct keys, so rows are often rewritten and coalesced.
        writes.append((name, tuple(rng.randint(0, 3) for _ in range(width))))
    return writes


def test_seeded_random_write_lists_never_lose_a_result_write_and_never_let_an_ingest_write_through() -> None:
    """Over 5,000 random bundles of writes (every statement the job has, rows rewritten): a results-only binder's
    record holds exactly each result row's last write, in the results keyspace, and no other statement; the live
    binder's holds every row, each in its keyspace."""
    rng = random.Random(19)
    names = sorted(WRITTEN)
    results_target = WriteTarget(keyspace="main", results_keyspace="main_r7", writes=WRITES_RESULTS)
    live_target = WriteTarget(keyspace="main", results_keyspace="main_r7", writes=WRITES_ALL)
    results, live = Binder(KeyspaceSession(), results_target), Binder(KeyspaceSession(), live_target)
    for _ in range(5000):
        writes = _random_writes(rng, names)
        # The oracle: the tables' own flag, not RESULT_WRITES.
        expected_results = coalesce([w for w in writes if WRITTEN[w[0]].versioned])
        kept = results.rows(writes)
        assert kept == expected_results
        assert all(name in RESULT_WRITES for name, _ in kept)
        dropped = {(n, v[: KEY_VALUES[n]]) for n, v in writes if not WRITTEN[n].versioned}
        assert not dropped & {(n, v[: KEY_VALUES[n]]) for n, v in kept}
        record = results.sink_record(writes)
        if not expected_results:
            assert record is None
            continue
        assert record is not None
        sent = decode(record)
        assert [v for _, v in sent] == [[WRITTEN[n].name.encode(), b"main_r7"] for n, _ in expected_results]
        everything_record = live.sink_record(writes)
        assert everything_record is not None
        everything = decode(everything_record)
        keyspaces = [b"main_r7" if WRITTEN[n].versioned else b"main" for n, _ in coalesce(writes)]
        assert [v[1] for _, v in everything] == keyspaces


# --- the settings ----------------------------------------------------------------------------------------------------


def test_the_defaults_write_everything_into_the_job_keyspace() -> None:
    settings = _settings()
    assert (settings.results_keyspace, settings.writes) == ("", "all")
    target = settings.write_target()
    assert target == WriteTarget(keyspace="fleetsense") and target.results_in == "fleetsense"


def test_a_replay_with_its_own_keyspace_and_no_live_events_is_accepted() -> None:
    settings = _settings(**REPLAY)
    assert settings.write_target().keyspace_of("trip") == "fleetsense_r2"
    assert settings.write_target().keyspace_of("block") == "fleetsense"  # (dropped, but profiles are read there)
    # writes and events_exchange are settable; results_keyspace is not (the stack sets it, as keyspace).
    replay = _settings(results_keyspace="fleetsense_r2").with_overrides({"writes": "results", "events_exchange": ""})
    assert replay.writes == "results"
    with pytest.raises(ConfigError, match="results_keyspace"):
        _settings().with_overrides({"results_keyspace": "fleetsense_r2"})


def test_a_results_only_job_that_would_publish_live_events_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"events_exchange='fleet\.events'") as refused:
        _settings(results_keyspace="fleetsense_r2", writes="results")
    assert refused.value.hint == 'set events_exchange="" with writes=results'


@pytest.mark.parametrize("results_keyspace", ["", "fleetsense"])
def test_a_results_only_job_writing_into_its_own_keyspace_is_refused(results_keyspace: str) -> None:
    with pytest.raises(ConfigError, match="own keyspace 'fleetsense'") as refused:
        _settings(results_keyspace=results_keyspace, writes="results", events_exchange="")
    assert "fleetsense_r<N>" in (refused.value.hint or "")


@pytest.mark.parametrize("name", ["r2;DROP", "2fleet", "a" * 49, "fleet-r2", "ks.t"])
def test_a_results_keyspace_that_is_no_keyspace_name_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="is no keyspace name"):
        _settings(results_keyspace=name)


def test_the_live_job_may_write_its_results_into_a_promoted_versions_keyspace() -> None:
    settings = _settings(results_keyspace="fleetsense_r2")  # writes=all, live events on: the promoted live job
    assert settings.events_exchange and settings.write_target().keyspace_of("event_by_vehicle") == "fleetsense_r2"


def test_the_new_settings_survive_the_file_and_an_old_file_without_them_reads_as_before(tmp_path: Path) -> None:
    import json

    path = tmp_path / "job.json"
    path.write_text(_settings(**REPLAY).to_json())
    assert IngestJobSettings.from_file(path) == _settings(**REPLAY)
    old = {k: v for k, v in json.loads(_settings().to_json()).items() if k not in ("results_keyspace", "writes")}
    path.write_text(json.dumps(old))
    assert IngestJobSettings.from_file(path).write_target() == WriteTarget(keyspace="fleetsense")


def test_the_java_sinks_settings_carry_the_target_and_refuse_live_events_from_a_replay() -> None:
    sink = CassandraSinkSettings(host="c", port=1, keyspace="k", results_keyspace="k_r2", writes="results")
    assert sink.target == WriteTarget(keyspace="k", results_keyspace="k_r2", writes="results")
    assert "results_keyspace='k_r2'" in repr(sink)
    live = LiveEventSettings(
        host="h", port=1, virtual_host="/", username="u", password="secret", heartbeat_s=5, exchange="fleet.events"
    )
    with pytest.raises(ConfigError, match="must not publish live events"):
        CassandraSinkSettings(
            host="c", port=1, keyspace="k", results_keyspace="k_r2", writes="results", live_events=live
        )
    assert CassandraSinkSettings(host="c", port=1, keyspace="k", live_events=live).target.writes == "all"


# --- the schema of a result version's keyspace -----------------------------------------------------------------------


class RecordingSession:
    def __init__(self) -> None:
        self.ran: list[str] = []

    def execute(self, cql: str, values: Any = None) -> Any:
        if cql.startswith("SELECT release_version"):
            return SimpleNamespace(one=lambda: SimpleNamespace(release_version="5.0.9"))
        self.ran.append(cql)
        return []


def test_a_result_keyspace_holds_exactly_the_five_tables_and_their_indexes_with_apply_schemas_cql() -> None:
    session = RecordingSession()
    schema.apply_result_schema(session, "fleetsense_r2")
    assert session.ran[0] == f"CREATE KEYSPACE IF NOT EXISTS fleetsense_r2 WITH replication = {schema.replication()}"
    created = [re.match(r"CREATE TABLE IF NOT EXISTS fleetsense_r2\.(\w+) ", c) for c in session.ran[1:]]
    assert {m.group(1) for m in created if m} == set(RESULTS)
    indexes = [c for c in session.ran if c.startswith("CREATE INDEX")]
    assert indexes == [
        "CREATE INDEX IF NOT EXISTS vehicle_events_kind_sai ON fleetsense_r2.vehicle_events (kind) USING 'sai'",
        "CREATE INDEX IF NOT EXISTS fleet_events_kind_sai ON fleetsense_r2.fleet_events (kind) USING 'sai'",
    ]
    assert len(session.ran) == 1 + len(RESULTS) + len(indexes)
    # The same CQL the main keyspace's migrations ran for these tables (migration 8 made them).
    main = [
        schema.cql_of(step, "fleetsense_r2", "5.0.9")
        for step in schema.steps(8)
        if isinstance(step, schema.CreateTable | schema.CreateIndex) and step.table.versioned
    ]
    trips = next(t for t in TABLES if t.name == "trips")
    main.append(schema.cql_of(schema.CreateTable(trips, 3), "fleetsense_r2", "5.0.9"))
    assert sorted(session.ran[1:]) == sorted(main)


def test_a_result_keyspace_is_made_again_without_harm_and_needs_a_keyspace_name() -> None:
    first, second = RecordingSession(), RecordingSession()
    schema.apply_result_schema(first, "fleetsense_r3")
    schema.apply_result_schema(second, "fleetsense_r3")
    assert first.ran == second.ran and all(" IF NOT EXISTS " in cql for cql in first.ran)
    with pytest.raises(ConfigError, match="is no keyspace name"):
        schema.apply_result_schema(RecordingSession(), "x; DROP KEYSPACE fleetsense")


def test_the_version_table_is_created_by_migration_10_in_the_main_keyspace_with_its_static_pointer() -> None:
    [create] = [s for s in schema.steps(10) if isinstance(s, schema.CreateTable)]
    cql = schema.cql_of(create, "fleetsense", "5.0.9")
    assert create.table.name == "result_versions" and "active_version int static" in cql
    assert "PRIMARY KEY (fleet, version)" in cql
    assert schema.LATEST >= 10
    assert create.table not in RESULT_TABLES and create.table.write is None  # written by the CLI, not the job


def test_fuzz_a_results_keyspace_is_a_plain_identifier_or_refused() -> None:
    """Random text as results_keyspace: refused with a ConfigError, or a name that is safe unquoted in CQL."""
    rng = random.Random(31)
    alphabet = "abcXYZ019_-.; '\"é"
    for _ in range(3000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 52)))
        try:
            settings = _settings(results_keyspace=name)
        except ConfigError:
            continue
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,47}", settings.results_keyspace)
        assert f" {name}." in settings.write_target().statements()["trip"]
