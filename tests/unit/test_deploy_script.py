"""deploy/docker/fleetsense_deploy.py without a cluster: the job's settings from the JSON and the secret files, and
the clear errors a wrong file gets (bootstrap and submit talk to real services: docs/deployment.md says how they
were checked)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fleetsense.errors import ConfigError
from tests.unit.test_deploy_files import compose_job_settings, deploy_script


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    path = tmp_path / "secrets"
    path.mkdir()
    for name in deploy_script().ALL_SECRETS:
        (path / name).write_text(f"pw-{name}\n")
    return path


def write_settings(tmp_path: Path, values: dict[str, object]) -> Path:
    path = tmp_path / "job-settings.json"
    path.write_text(json.dumps(values))
    return path


def test_the_settings_command_writes_a_private_file_of_valid_settings(
    tmp_path: Path, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETSENSE_JOB_SETTINGS", str(write_settings(tmp_path, compose_job_settings())))
    monkeypatch.setenv("FLEETSENSE_SECRETS_DIR", str(secrets_dir))
    out = tmp_path / "run" / "settings.json"
    assert deploy_script().main(["settings", "--out", str(out)]) == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    written = json.loads(out.read_text())
    assert written["amqp_password"] == "pw-flink-amqp-password"  # stripped of the file's newline
    assert written["cassandra_password"] == "pw-cassandra-job-password"
    assert written["parallelism"] == compose_job_settings()["parallelism"]


def test_a_password_in_the_settings_json_is_refused(tmp_path: Path, secrets_dir: Path) -> None:
    path = write_settings(tmp_path, compose_job_settings() | {"amqp_password": "oops"})
    with pytest.raises(ConfigError, match="amqp_password: a password belongs in its secret file"):
        deploy_script().job_settings(path, secrets_dir)


def test_a_missing_secret_is_named_with_its_path(tmp_path: Path, secrets_dir: Path) -> None:
    (secrets_dir / "cassandra-job-password").unlink()
    with pytest.raises(ConfigError, match=r"cannot read the secret cassandra-job-password at .*secrets"):
        deploy_script().job_settings(write_settings(tmp_path, compose_job_settings()), secrets_dir)


def test_an_empty_secret_from_a_template_is_refused(tmp_path: Path, secrets_dir: Path) -> None:
    (secrets_dir / "flink-amqp-password").write_text("\n")
    with pytest.raises(ConfigError, match=r"the secret flink-amqp-password .* is empty"):
        deploy_script().job_settings(write_settings(tmp_path, compose_job_settings()), secrets_dir)


def test_a_bad_setting_is_refused_naming_the_file(tmp_path: Path, secrets_dir: Path) -> None:
    path = write_settings(tmp_path, compose_job_settings() | {"parallelism": 0})
    with pytest.raises(ConfigError, match=r"job-settings\.json: .*parallelism"):
        deploy_script().job_settings(path, secrets_dir)


def test_a_missing_variable_is_an_error_that_says_where_to_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FLEETSENSE_SECRETS_DIR", raising=False)
    assert deploy_script().main(["settings", "--out", str(tmp_path / "x.json")]) == 2
    assert "$FLEETSENSE_SECRETS_DIR is not set" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [("rmq1", ["rmq1"]), ("cas1,cas2, cas3", ["cas1", "cas2", "cas3"]), ("a,,b,", ["a", "b"])],
)
def test_a_host_list_is_split_on_commas(text: str, expected: list[str]) -> None:
    assert deploy_script().hosts(text) == expected


def test_an_empty_host_list_is_refused() -> None:
    with pytest.raises(ConfigError, match="no host in ' , '"):
        deploy_script().hosts(" , ")


def test_a_recorded_savepoint_is_resumed_from_once(tmp_path: Path) -> None:
    script = deploy_script()
    assert script.pending_savepoint(tmp_path) is None  # a first submit starts afresh
    script.record_savepoint(tmp_path, "file:/flink-shared/savepoints/savepoint-1")
    script.record_savepoint(tmp_path, "file:/flink-shared/savepoints/savepoint-2")  # a second stop: the newer one
    assert script.pending_savepoint(tmp_path) == "file:/flink-shared/savepoints/savepoint-2"
    script.savepoint_used(tmp_path, "a1b2")
    assert script.pending_savepoint(tmp_path) is None
    assert (tmp_path / "resumed-by-a1b2").read_text().strip() == "file:/flink-shared/savepoints/savepoint-2"
