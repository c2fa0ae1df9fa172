"""Cassandra logins without a node: which profile logs in, where each user's credentials come from, the CQL that
provisions them, and the job settings that carry the job's login."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from fleetsense.cloud.cassandra_session import CqlLogin
from fleetsense.cloud.job_settings import IngestJobSettings

from fleetsense.errors import ConfigError
from fleetsense.stack.cassandra import Cassandra, cassandra_yaml
from fleetsense.stack.cassandra_auth import (
    CREDENTIALS_ENV,
    JOB,
    OPERATOR,
    READER,
    USERS,
    credentials_file,
    login,
    user_statements,
)
from fleetsense.stack.layout import ExternalCassandra, StackConfig
from fleetsense.stack.secrets import Credentials


def _config(tmp_path: Path, profile: str, *, external: bool = False) -> StackConfig:
    config = replace(StackConfig.for_tests(tmp_path), profile=profile)
    return replace(config, cassandra=ExternalCassandra(host="db.example", port=9042)) if external else config


def test_only_the_secure_profile_turns_on_logins_and_grants(tmp_path: Path) -> None:
    dev, secure = _config(tmp_path, "dev"), _config(tmp_path, "secure")
    assert cassandra_yaml(dev, tmp_path)["authenticator"] == "AllowAllAuthenticator"
    assert cassandra_yaml(dev, tmp_path)["authorizer"] == "AllowAllAuthorizer"
    assert cassandra_yaml(secure, tmp_path)["authenticator"] == "PasswordAuthenticator"
    assert cassandra_yaml(secure, tmp_path)["authorizer"] == "CassandraAuthorizer"


def test_the_dev_profile_connects_without_a_login(tmp_path: Path) -> None:
    config = _config(tmp_path, "dev")
    assert all(login(config, role) is None for role in USERS)
    assert not credentials_file(config, OPERATOR).exists()


def test_the_secure_profile_generates_each_users_password_once_into_a_private_file(tmp_path: Path) -> None:
    config = _config(tmp_path, "secure")
    first = {role: login(config, role) for role in USERS}
    assert {role: creds.username for role, creds in first.items() if creds} == {
        role: user.username for role, user in USERS.items()
    }
    assert len({creds.password for creds in first.values() if creds}) == len(USERS)  # every user its own
    assert {role: login(config, role) for role in USERS} == first  # stable across calls
    assert credentials_file(config, JOB).parent.stat().st_mode & 0o777 == 0o700
    assert credentials_file(config, JOB).stat().st_mode & 0o777 == 0o600


def test_the_secure_profile_makes_cassandras_state_and_log_dirs_private(tmp_path: Path) -> None:
    node = Cassandra(_config(tmp_path, "secure"))
    node.write_config()
    assert node.state_dir.stat().st_mode & 0o777 == 0o700
    assert node.log_dir.stat().st_mode & 0o777 == 0o700


def test_an_external_cluster_uses_the_credentials_it_is_given_and_never_invents_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = tmp_path / "given"
    given.mkdir()
    (given / "reader.json").write_text(json.dumps({"username": "analyst", "password": "s3cret-enough"}))
    (given / "reader.json").chmod(0o600)
    monkeypatch.setenv(CREDENTIALS_ENV, str(given))
    dev = _config(tmp_path, "dev", external=True)
    assert login(dev, READER) == Credentials(username="analyst", password="s3cret-enough")
    assert login(dev, JOB) is None  # a cluster without logins, as before
    assert not (given / "job.json").exists()
    with pytest.raises(ConfigError, match=r"needs the Cassandra job user's credentials in .*job\.json"):
        login(_config(tmp_path, "secure", external=True), JOB)


def test_a_credentials_file_others_can_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CREDENTIALS_ENV, str(tmp_path))
    (tmp_path / "job.json").write_text(json.dumps({"username": "job", "password": "x" * 40}))
    (tmp_path / "job.json").chmod(0o644)
    with pytest.raises(ConfigError, match="can be read by other users") as refused:
        login(_config(tmp_path, "dev", external=True), JOB)
    assert refused.value.hint == f"chmod 600 {tmp_path / 'job.json'}"


def test_a_malformed_credentials_file_is_a_clear_error_that_never_quotes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CREDENTIALS_ENV, str(tmp_path))
    (tmp_path / "job.json").write_text('{"user": "job", "password": "leaky-secret"}')
    (tmp_path / "job.json").chmod(0o600)
    with pytest.raises(ConfigError) as refused:
        login(_config(tmp_path, "dev", external=True), JOB)
    assert "leaky-secret" not in refused.value.render() and "username" in refused.value.render()


def test_the_job_is_provisioned_with_select_and_modify_on_the_keyspace_only() -> None:
    creds = Credentials(username="fleetsense_job", password="it's-a-secret")
    statements = user_statements(USERS[JOB], creds, keyspace="fleetsense", exists=False)
    assert statements == [
        ("CREATE USER IF NOT EXISTS fleetsense_job WITH PASSWORD %s NOSUPERUSER", ("it's-a-secret",)),
        ("GRANT SELECT ON KEYSPACE fleetsense TO fleetsense_job", ()),
        ("GRANT MODIFY ON KEYSPACE fleetsense TO fleetsense_job", ()),
    ]
    assert all(creds.password not in cql for cql, _ in statements)  # bound by the driver, quoted there


@pytest.mark.parametrize(
    ("exists", "current", "setting"),
    [
        (False, False, ["CREATE USER IF NOT EXISTS fleetsense_job WITH PASSWORD %s NOSUPERUSER"]),
        (True, False, ["ALTER USER fleetsense_job WITH PASSWORD %s NOSUPERUSER"]),
        (True, True, []),
    ],
)
def test_the_password_is_set_by_at_most_one_statement(exists: bool, current: bool, setting: list[str]) -> None:
    # Cassandra 5.0 refuses a second password change of a role within 5 s: CREATE then ALTER would fail, and so
    # would two `stack up`s in a row that both set an unchanged password.
    creds = Credentials(username="fleetsense_job", password="pw")
    statements = user_statements(USERS[JOB], creds, keyspace="fleetsense", exists=exists, password_current=current)
    assert [cql for cql, values in statements if "PASSWORD" in cql] == setting
    assert statements[len(setting) if setting else 1][0].startswith("GRANT")


def test_the_operator_is_the_only_superuser_and_the_reader_only_reads() -> None:
    assert [role for role, user in USERS.items() if user.superuser] == [OPERATOR]
    assert USERS[READER].keyspace_permissions == ("SELECT",)
    reader = user_statements(USERS[READER], Credentials(username="r", password="p"), keyspace="k", exists=False)
    assert [cql for cql, _ in reader if cql.startswith("GRANT")] == ["GRANT SELECT ON KEYSPACE k TO r"]


@pytest.mark.parametrize("username", ["Job", "job; DROP KEYSPACE fleetsense", "", "1job", "jöb"])
def test_a_username_that_is_not_a_plain_identifier_is_refused(username: str) -> None:
    with pytest.raises(ConfigError, match="not a plain lowercase identifier"):
        user_statements(USERS[READER], Credentials(username=username, password="p"), keyspace="fleetsense", exists=True)


def _settings(**cassandra: str) -> IngestJobSettings:
    return IngestJobSettings(
        amqp_host="127.0.0.1",
        amqp_port=5672,
        amqp_vhost="fleet",
        amqp_username="flink",
        amqp_password="amqp-secret",
        amqp_queue="fleet.telemetry",
        cassandra_host="127.0.0.1",
        cassandra_port=9042,
        keyspace="fleetsense",
        connector_jar="/x.jar",
        **cassandra,  # type: ignore[arg-type]
    )


def test_the_job_settings_carry_the_jobs_login_through_their_file_and_never_show_it(tmp_path: Path) -> None:
    settings = _settings(cassandra_username="fleetsense_job", cassandra_password="cql-secret")
    path = tmp_path / "settings.json"
    path.write_text(settings.to_json())
    back = IngestJobSettings.from_file(path)
    assert back.cassandra_login() == CqlLogin(username="fleetsense_job", password="cql-secret")
    assert "cql-secret" not in repr(back) and "cql-secret" not in repr(back.cassandra_login())
    assert _settings().cassandra_login() is None  # a cluster without logins


@pytest.mark.parametrize("key", ["cassandra_username", "cassandra_password"])
def test_the_jobs_cassandra_login_cannot_be_set_on_the_command_line(key: str) -> None:
    with pytest.raises(ConfigError, match="unknown job setting"):
        _settings().with_overrides({key: "someone-else"})


def test_a_username_without_a_password_is_refused_before_submission() -> None:
    with pytest.raises(ConfigError, match="give both or neither"):
        _settings(cassandra_username="fleetsense_job")
