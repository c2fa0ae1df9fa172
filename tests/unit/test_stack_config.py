"""Local-stack configuration rendered for each component, and the CLI's error handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fleetsense.cloud.jobctl import checkpoint_summary

from fleetsense import cli
from fleetsense.errors import ConfigError, StackError
from fleetsense.stack.cassandra import cassandra_yaml
from fleetsense.stack.flink import flink_settings
from fleetsense.stack.jobs import checkpoint_lines
from fleetsense.stack.layout import ExternalCassandra, Ports, StackConfig
from fleetsense.stack.secrets import load_or_create


def test_test_ports_never_collide_with_the_default_stack() -> None:
    default, test = Ports().fixed(), Ports.for_tests().fixed()
    assert not set(default.values()) & set(test.values())
    assert len(set(test.values())) == len(test)


def test_ports_offset_moves_every_port() -> None:
    moved = Ports().offset(100)
    assert moved.amqp == 5772 and moved.flink_taskmanager_rpc_first == 6230


def test_cassandra_listens_only_on_loopback_and_keeps_state_in_the_data_dir(tmp_path: Path) -> None:
    config = StackConfig.for_tests(tmp_path)
    yaml = cassandra_yaml(config, tmp_path / "cassandra")
    assert yaml["listen_address"] == yaml["rpc_address"] == "127.0.0.1"
    assert yaml["native_transport_port"] == 29042
    assert all(str(p).startswith(str(tmp_path)) for p in yaml["data_file_directories"])  # type: ignore[attr-defined]
    json.dumps(yaml)  # written as JSON, which YAML reads


def test_flink_binds_loopback_and_checkpoints_under_the_data_dir(tmp_path: Path) -> None:
    settings = flink_settings(StackConfig.for_tests(tmp_path), tmp_path / "flink")
    for key in ("jobmanager.bind-host", "taskmanager.bind-host", "rest.bind-address"):
        assert settings[key] == "127.0.0.1"
    assert settings["state.checkpoints.dir"] == f"file://{tmp_path}/flink/checkpoints"
    assert settings["taskmanager.rpc.port"] == "26130-26131"


def test_external_cassandra_spec() -> None:
    assert ExternalCassandra.parse("db.internal:9042") == ExternalCassandra(host="db.internal", port=9042)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        ExternalCassandra.parse("db.internal")


def test_secrets_are_private_and_stable(tmp_path: Path) -> None:
    first = load_or_create(tmp_path / "s" / "op.json", "operator")
    assert (tmp_path / "s" / "op.json").stat().st_mode & 0o777 == 0o600
    assert load_or_create(tmp_path / "s" / "op.json", "operator") == first
    assert first.password not in repr(first)


def test_cli_reports_errors_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["edge", "run", "--config", str(tmp_path / "missing.toml"), "--simulate"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: config file" in err and "what to do:" in err and "Traceback" not in err


def test_a_busy_port_is_named_with_what_to_do() -> None:
    import socket

    from fleetsense.errors import StackError
    from fleetsense.stack.process import ensure_ports_free

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StackError) as info:
            ensure_ports_free("RabbitMQ", "127.0.0.1", {"amqp": port}, how_to_change="use --ports-offset N")
    assert f"amqp={port}" in info.value.message
    assert "--ports-offset" in (info.value.hint or "")


def test_the_profile_comes_from_the_flag_else_the_environment_else_what_up_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEETSENSE_PROFILE", raising=False)
    config = StackConfig.for_tests(tmp_path)
    assert config.with_profile(None).profile == "dev"
    config.profile_file.write_text("secure\n")
    assert config.with_profile(None).profile == "secure"
    assert config.with_profile("dev").profile == "dev"
    monkeypatch.setenv("FLEETSENSE_PROFILE", "dev")
    assert config.with_profile(None).profile == "dev"
    with pytest.raises(StackError, match="unknown profile 'open'"):
        config.with_profile("open")


# Shaped like Flink 1.20's GET /jobs/<id>/checkpoints (only the fields read).
_COMPLETED = {"end_to_end_duration": 42, "state_size": 27539}
_STARTED = {"counts": {"completed": 72, "failed": 5}, "latest": {"completed": _COMPLETED, "failed": None}}
_EXPIRED = {
    "counts": {"completed": 9, "failed": 1},
    "latest": {
        "completed": {"end_to_end_duration": 30, "state_size": 100},
        "failed": {"failure_message": "Checkpoint expired before completing."},
    },
}


def test_checkpoint_failures_that_were_only_refused_triggers_are_told_apart_from_real_ones() -> None:
    started = checkpoint_summary(_STARTED)
    assert started == {"completed": 72, "failed": 5, "latest_duration_ms": 42, "latest_size_bytes": 27539,
                       "latest_failure": None}  # fmt: skip
    assert checkpoint_lines(started) == [
        "    checkpoints completed 72  failed 5  latest_duration_ms 42  latest_size_bytes 27539  (each failed one was "
        "only triggered while tasks were not running: starting or restarting)"
    ]
    assert checkpoint_lines(checkpoint_summary(_EXPIRED)) == [
        "    checkpoints completed 9  failed 1  latest_duration_ms 30  latest_size_bytes 100",
        "    latest failed checkpoint: Checkpoint expired before completing.",
    ]
    assert checkpoint_lines(checkpoint_summary({})) == [
        "    checkpoints completed 0  failed 0  latest_duration_ms None  latest_size_bytes None"
    ]


def test_a_relative_data_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from fleetsense.stack.layout import StackConfig

    monkeypatch.chdir(tmp_path)
    config = replace(StackConfig(), data_dir=Path("bench-data"), build_dir=Path("build"))
    assert config.data_dir == tmp_path / "bench-data"
    assert config.build_dir == tmp_path / "build"
    assert config.component_dir("rabbitmq").is_absolute()
