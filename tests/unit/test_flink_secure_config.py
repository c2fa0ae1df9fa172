"""Flink's configuration as the stack writes it: the Prometheus reporter on loopback, the secure profile's TLS
settings for the cluster and for `flink run`, private files, and the exit codes of the status commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleetsense.cloud.jobctl import RestTls, rest_session

from fleetsense import cli
from fleetsense.stack import manager
from fleetsense.stack.flink import Flink, flink_settings
from fleetsense.stack.health import Check
from fleetsense.stack.layout import StackConfig


def config_lines(path: Path) -> dict[str, str]:
    pairs = (line.split(": ", 1) for line in path.read_text().splitlines() if not line.startswith("#"))
    return {key: value.strip('"') for key, value in pairs}


def test_the_prometheus_reporter_binds_loopback_with_a_port_for_the_jobmanager_and_each_taskmanager(
    tmp_path: Path,
) -> None:
    config = StackConfig.for_tests(tmp_path)
    settings = flink_settings(config, tmp_path)
    first = config.ports.flink_prometheus_first
    assert settings["metrics.reporter.prom.host"] == "127.0.0.1"
    assert settings["metrics.reporter.prom.port"] == f"{first}-{first + config.flink_taskmanagers}"
    assert settings["metrics.reporter.prom.factory.class"].endswith("HostBoundPrometheusReporterFactory")


def test_the_secure_profile_requires_client_certificates_and_tls_inside_and_keeps_the_config_private(
    tmp_path: Path,
) -> None:
    flink = Flink(StackConfig(data_dir=tmp_path / "data", profile="secure"))
    flink.write_config()
    cluster = config_lines(flink.conf_dir / "config.yaml")
    files = flink.tls_files()
    assert files is not None
    assert cluster["security.ssl.rest.enabled"] == "true"
    assert cluster["security.ssl.rest.authentication-enabled"] == "true"
    assert cluster["security.ssl.internal.enabled"] == "true"
    assert cluster["web.cancel.enable"] == "false" and cluster["web.submit.enable"] == "false"
    assert cluster["security.ssl.rest.keystore"] == str(files.rest_server_keystore)
    assert (flink.conf_dir / "config.yaml").stat().st_mode & 0o777 == 0o600
    client = config_lines(flink.client_conf_dir / "config.yaml")
    assert client["security.ssl.rest.keystore"] == str(files.rest_client_keystore)  # the operator's, for flink run
    assert not [key for key in client if key.startswith("metrics.reporter.")]
    assert (flink.client_conf_dir / "config.yaml").stat().st_mode & 0o777 == 0o600
    assert flink.rest_url.startswith("https://")


def test_the_dev_profile_has_no_tls() -> None:
    flink = Flink(StackConfig(profile="dev"))
    assert flink.rest_tls() is None and flink.rest_url.startswith("http://")


def test_the_rest_session_pins_flinks_ca_whatever_the_environment_says(tmp_path: Path) -> None:
    tls = RestTls(
        ca_file=tmp_path / "ca.pem", cert_file=tmp_path / "c.pem", key_file=tmp_path / "k.pem", client_conf_dir=tmp_path
    )
    session = rest_session(tls)
    assert session.verify == str(tmp_path / "ca.pem") and session.cert == (
        str(tmp_path / "c.pem"),
        str(tmp_path / "k.pem"),
    )
    assert session.trust_env is False  # $REQUESTS_CA_BUNDLE would otherwise replace `verify`


@pytest.mark.parametrize(("check_ok", "exit_code"), [(True, 0), (False, 1)])
def test_stack_status_exits_1_when_unhealthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], check_ok: bool, exit_code: int
) -> None:
    checks = [Check(name="checkpoints", ok=check_ok, detail="last completed 31.0 s ago (allowed 20 s)")]
    health = manager.StackHealth(rows=[], title="fleetsense-telemetry-ingest", checks=checks)
    monkeypatch.setattr(manager, "stack_health", lambda config, **_: health)
    assert cli.main(["--data-dir", str(tmp_path), "stack", "status"]) == exit_code
    out = capsys.readouterr().out
    assert ("UNHEALTHY" in out) != check_ok and "last completed 31.0 s ago" in out
