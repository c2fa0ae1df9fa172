"""cloud/connector_build.py's Maven driving, with a stand-in `mvn` script on PATH (the real build and the JUnit
tests run in `bash scripts/dev.sh test`; the jar it builds runs in the integration suite)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fleetsense.cloud import connector_build

from fleetsense.errors import FleetsenseError

# Logs its arguments; offline it misses an artifact (MISS_OFFLINE=1) or fails to compile (FAIL=1); else it writes
# the jar where the pom would (-Dfleetsense.buildDir).
FAKE_MVN = """#!/bin/sh
echo "$*" >> "$MVN_LOG"
case " $* " in *" -o "*) offline=1 ;; *) offline=0 ;; esac
if [ "$FAIL" = 1 ]; then echo "[ERROR] COMPILATION ERROR"; exit 1; fi
if [ "$offline" = 1 ] && [ "$MISS_OFFLINE" = 1 ]; then
  echo "[ERROR] Cannot access central in offline mode and the artifact x has not been downloaded"; exit 1
fi
for arg in "$@"; do
  case "$arg" in -Dfleetsense.buildDir=*) dir="${arg#-Dfleetsense.buildDir=}" ;; esac
done
mkdir -p "$dir" && echo jar > "$dir/fleetsense-flink-amqp.jar"
"""


@pytest.fixture
def mvn_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN)
    mvn.chmod(0o755)
    log = tmp_path / "mvn.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("MVN_LOG", str(log))
    return log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_a_warm_build_runs_offline_once_and_copies_the_jar(tmp_path: Path, mvn_log: Path) -> None:
    jar = connector_build.build_connector_jar(tmp_path / "out")
    assert jar == tmp_path / "out" / "fleetsense-flink-amqp.jar" and jar.read_text() == "jar\n"
    (call,) = calls(mvn_log)
    assert " -o " in f" {call} " and call.endswith("-DskipTests package")
    assert f"-Dfleetsense.buildDir={tmp_path / 'out' / 'connector-maven'}" in call


def test_an_offline_miss_goes_online_once(tmp_path: Path, mvn_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISS_OFFLINE", "1")
    connector_build.build_connector_jar(tmp_path / "out")
    first, second = calls(mvn_log)
    assert " -o " in f" {first} " and " -o " not in f" {second} "


def test_a_compile_error_is_reported_and_not_retried(
    tmp_path: Path, mvn_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(FleetsenseError, match="building the AMQP connector failed") as error:
        connector_build.build_connector_jar(tmp_path / "out")
    assert "[ERROR] COMPILATION ERROR" in str(error.value)
    assert len(calls(mvn_log)) == 1


def test_an_up_to_date_jar_is_not_rebuilt_unless_forced(tmp_path: Path, mvn_log: Path) -> None:
    connector_build.build_connector_jar(tmp_path / "out")
    connector_build.build_connector_jar(tmp_path / "out")
    assert len(calls(mvn_log)) == 1
    connector_build.build_connector_jar(tmp_path / "out", force=True)
    assert len(calls(mvn_log)) == 2


def test_the_junit_tests_run_with_mvn_test(tmp_path: Path, mvn_log: Path) -> None:
    assert connector_build.main(["--out", str(tmp_path / "out"), "--test"]) == 0
    assert calls(mvn_log)[0].endswith(" test")


def test_without_mvn_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FleetsenseError, match="mvn not found") as error:
        connector_build.build_connector_jar(tmp_path / "out")
    assert "apt-get install maven" in error.value.render()
