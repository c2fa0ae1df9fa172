"""Cassandra in the secure profile: every session logs in, and each user can do only its part.

A secure node of its own (no broker, no Flink: quicker on a shared machine), started and provisioned by the same
code as `fleetsense stack up --profile secure`, on ports 50 above the test stack's.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cassandra import Unauthorized
from fleetsense.cloud.cassandra_session import CassandraLoginRefused, connect, open_cluster
from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.query import latest_seen
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.cloud.store import CassandraWriter

from fleetsense.errors import FleetsenseError
from fleetsense.stack import jobs
from fleetsense.stack.cassandra import Cassandra
from fleetsense.stack.cassandra_auth import (
    CREDENTIALS_ENV,
    DEFAULT_SUPERUSER,
    JOB,
    OPERATOR,
    READER,
    USERS,
    credentials_dir,
    login,
    session_as,
)
from fleetsense.stack.cassandra_dist import cassandra_version
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.process import pid_alive
from fleetsense.stack.report import print_vehicle_report
from fleetsense.stack.secrets import Credentials, write_private

from .conftest import test_data_dir as _test_data_dir
from .helpers import unique_vehicle

SAMPLE_TIME_US = 1_795_000_000_000_000


@pytest.fixture(scope="module")
def secure() -> Iterator[StackConfig]:
    base = StackConfig.for_tests(_test_data_dir() / "secure-cassandra")
    config = replace(base, ports=base.ports.offset(50), name=f"{base.name}-secure-cql", profile="secure")
    node = Cassandra(config)
    node.stop()  # a node left behind by a killed run
    shutil.rmtree(config.data_dir, ignore_errors=True)
    try:
        node.start()
        node.apply_schema()  # what `stack up` does once every component answers
    except FleetsenseError as exc:
        pytest.fail(f"the secure Cassandra did not come up:\n{exc.render()}", pytrace=False)
    yield config
    pid = node._pid()
    node.stop()
    assert pid is None or not pid_alive(pid), f"Cassandra (pid {pid}) still runs after stop"


def _log_in(config: StackConfig, creds: Credentials | None) -> None:
    with connect(config.cql_contact, login=creds) as session:
        session.execute("SELECT release_version FROM system.local")


def _username(config: StackConfig, role: str) -> str:
    creds = login(config, role)
    assert creds is not None
    return creds.username


def test_a_session_without_credentials_is_refused(secure: StackConfig, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(CassandraLoginRefused, match="refused a session without credentials"):
        _log_in(secure, None)
    # Said once, by our error: not also by the driver's ERROR log with its traceback.
    assert "Control connection failed" not in caplog.text


def test_the_well_known_default_superuser_cannot_log_in(secure: StackConfig) -> None:
    with pytest.raises(CassandraLoginRefused, match="user 'cassandra'"):
        _log_in(secure, DEFAULT_SUPERUSER)


def test_a_wrong_password_is_refused_with_a_hint_naming_the_users_credentials_file(
    secure: StackConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = tmp_path / f"{READER}.json"
    write_private(wrong, f'{{"username": "{_username(secure, READER)}", "password": "not-the-password"}}')
    monkeypatch.setenv(CREDENTIALS_ENV, str(tmp_path))
    with pytest.raises(CassandraLoginRefused) as refused, session_as(secure, READER):
        pass
    assert str(wrong) in (refused.value.hint or "")


# Each refusal on its own line: (who, what). {ks} is the keyspace, {reader} the reader's username.
REFUSED = [
    (READER, "INSERT INTO {ks}.vehicles (vehicle_id, last_seq) VALUES ('intruder', 1)"),
    (READER, "DELETE FROM {ks}.vehicles WHERE vehicle_id = 'anyone'"),
    (READER, "TRUNCATE {ks}.vehicles"),
    (READER, "DROP TABLE {ks}.vehicles"),
    (READER, "CREATE USER intruder WITH PASSWORD 'intruder-password' SUPERUSER"),
    (JOB, "DROP TABLE {ks}.vehicles"),
    (JOB, "DROP KEYSPACE {ks}"),
    (JOB, "ALTER TABLE {ks}.vehicles ADD intruder text"),
    (JOB, "CREATE TABLE {ks}.intruder (k int PRIMARY KEY)"),
    (JOB, "CREATE USER intruder WITH PASSWORD 'intruder-password' SUPERUSER"),
    (JOB, "ALTER USER {reader} WITH PASSWORD 'taken-over'"),
    (JOB, "GRANT MODIFY ON KEYSPACE {ks} TO {reader}"),
    (JOB, "SELECT * FROM system_auth.roles"),  # the password hashes (2.1 had them in system_auth.credentials)
]


@pytest.mark.parametrize(("role", "statement"), REFUSED, ids=[f"{role}: {cql[:40]}" for role, cql in REFUSED])
def test_a_user_is_refused_what_it_was_not_granted(secure: StackConfig, role: str, statement: str) -> None:
    cql = statement.format(ks=KEYSPACE, reader=_username(secure, READER))
    with session_as(secure, role) as session, pytest.raises(Unauthorized):
        session.execute(cql)


def test_the_job_stores_rows_through_the_login_in_its_settings_file(secure: StackConfig, tmp_path: Path) -> None:
    """The path of a submitted job: the settings `job submit` writes (0600), read back by the job, its session
    opened with the login they carry, rows written by the job's writer; the reader then sees them.
    (The job's _connect passes settings.cassandra_login() to open_cluster the same way.)"""
    settings_file = tmp_path / "telemetry-ingest.json"
    write_private(settings_file, jobs.ingest_settings(secure).to_json())
    assert settings_file.stat().st_mode & 0o077 == 0
    settings = IngestJobSettings.from_file(settings_file)
    assert settings.cassandra_username == USERS[JOB].username
    assert settings.cassandra_password not in repr(settings)

    vehicle = unique_vehicle("secure-job")
    cluster = open_cluster((settings.cassandra_host, settings.cassandra_port), login=settings.cassandra_login())
    try:
        writer = CassandraWriter(cluster.connect(), settings.keyspace)
        writer.write_all([("vehicle", (vehicle, 7, SAMPLE_TIME_US // 1000, SAMPLE_TIME_US))])
    finally:
        cluster.shutdown()
    with session_as(secure, READER) as session:
        stored = latest_seen(session, KEYSPACE, vehicle)
    assert stored is not None and stored.last_seq == 7


def test_fleetsense_query_reads_as_the_reader(secure: StackConfig, capsys: pytest.CaptureFixture[str]) -> None:
    print_vehicle_report(secure)
    out = capsys.readouterr().out
    assert "VEHICLE" in out or "no samples" in out


def test_the_operator_administers_schema_and_users(secure: StackConfig) -> None:
    with session_as(secure, OPERATOR) as session:
        for cql in (
            f"CREATE TABLE {KEYSPACE}.operator_probe (k int PRIMARY KEY)",
            f"ALTER TABLE {KEYSPACE}.operator_probe ADD v text",
            f"DROP TABLE {KEYSPACE}.operator_probe",
            "CREATE USER probe_user WITH PASSWORD 'probe-password' NOSUPERUSER",
            f"GRANT SELECT ON KEYSPACE {KEYSPACE} TO probe_user",
            "DROP USER probe_user",
        ):
            session.execute(cql)


def _grants(session: Any, username: str) -> set[tuple[str, str]]:
    return {(row.resource, row.permission) for row in session.execute(f"LIST ALL PERMISSIONS OF {username}")}


def test_each_user_holds_exactly_its_grants_and_only_the_operator_is_a_superuser(secure: StackConfig) -> None:
    with session_as(secure, OPERATOR) as session:
        users = {row.name: row.super for row in session.execute("LIST USERS")}
        assert users == {_username(secure, role): user.superuser for role, user in USERS.items()}
        for role, user in USERS.items():
            if not user.superuser:
                wanted = {(f"<keyspace {KEYSPACE}>", permission) for permission in user.keyspace_permissions}
                assert _grants(session, _username(secure, role)) == wanted, role


def test_the_nodes_data_and_secrets_are_private_and_no_password_is_logged(secure: StackConfig) -> None:
    node = Cassandra(secure)
    for directory in (node.state_dir, node.log_dir, credentials_dir(secure)):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    passwords = []
    for role in USERS:
        path = credentials_dir(secure) / f"{role}.json"
        assert path.stat().st_mode & 0o777 == 0o600, path
        creds = login(secure, role)
        assert creds is not None and len(creds.password) >= 32
        passwords.append(creds.password)
    logs = [path for path in node.log_dir.rglob("*") if path.is_file()]
    assert logs, "expected Cassandra's logs"
    for path in logs:
        text = path.read_bytes()
        assert not any(password.encode() in text for password in passwords), f"a password is in {path}"
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                line = (proc / "cmdline").read_bytes()
            except OSError:
                continue  # exited meanwhile
            assert not any(password.encode() in line for password in passwords), f"a password on pid {proc.name}"


def test_up_again_and_a_restart_keep_the_users_and_never_bring_the_default_superuser_back(
    secure: StackConfig,
) -> None:
    node = Cassandra(secure)
    node.start()  # `stack up` on a running stack
    node.apply_schema()
    node.stop()
    node.start()
    node.apply_schema()
    assert node.healthy()
    with pytest.raises(CassandraLoginRefused):
        _log_in(secure, DEFAULT_SUPERUSER)
    with session_as(secure, OPERATOR) as session:
        assert DEFAULT_SUPERUSER.username not in {row.name for row in session.execute("LIST USERS")}
        assert _grants(session, _username(secure, READER)) == {(f"<keyspace {KEYSPACE}>", "SELECT")}
    creds = login(secure, JOB)
    assert isinstance(creds, Credentials)
    with connect(secure.cql_contact, login=creds) as session:
        session.execute(f"SELECT vehicle_id FROM {KEYSPACE}.vehicles LIMIT 1")


def test_an_external_secure_cluster_is_used_with_the_credentials_it_is_given(
    secure: StackConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secure node seen as an external cluster (--cassandra HOST:PORT) whose administrator put the users'
    files in $FLEETSENSE_CASSANDRA_CREDENTIALS: `stack up` checks it and applies the schema as the operator."""
    host, port = secure.cql_contact
    external = replace(StackConfig.for_tests(tmp_path / "data"), profile="secure").with_cassandra(f"{host}:{port}")
    given = tmp_path / "given"
    given.mkdir(mode=0o700)
    for role in (OPERATOR, READER):
        shutil.copy(credentials_dir(secure) / f"{role}.json", given / f"{role}.json")
    monkeypatch.setenv(CREDENTIALS_ENV, str(given))
    node = Cassandra(external)
    node.start()  # checks the cluster answers the operator's login; starts nothing
    node.apply_schema()  # provisions the reader (its file is here), leaves the job alone (no file)
    assert node.status().health == f"ok (Cassandra {cassandra_version()})"  # the external node's own release
    with session_as(external, READER) as session:
        session.execute(f"SELECT vehicle_id FROM {KEYSPACE}.vehicles LIMIT 1")
    with pytest.raises(FleetsenseError, match=r"needs the Cassandra job user's credentials in .*job\.json"):
        jobs.ingest_settings(external)

    write_private(given / f"{OPERATOR}.json", '{"username": "operator", "password": "not-the-password"}')
    with pytest.raises(FleetsenseError, match="refused the operator's login") as refused:
        node.start()
    assert str(given / f"{OPERATOR}.json") in (refused.value.hint or "")
