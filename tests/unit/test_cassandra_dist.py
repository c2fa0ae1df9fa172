"""The stack's Cassandra from Maven Central: the version the runtime pom declares, when a fetched lib directory
counts as complete, which data directories a node may start on, and the driver's protocol setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleetsense.cloud.cassandra_session import PROTOCOL_ENV, protocol_version

from fleetsense.errors import FleetsenseError, StackError
from fleetsense.stack.cassandra import Cassandra
from fleetsense.stack.cassandra_dist import (
    cassandra_version,
    complete,
    data_dir_problem,
    declared_version,
    release_line,
    runtime_pom,
)
from fleetsense.stack.layout import StackConfig

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><dependencies>
  <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>1.7.36</version></dependency>
  <dependency><groupId>org.apache.cassandra</groupId><artifactId>cassandra-all</artifactId>
    <version> 5.0.9 </version></dependency>
</dependencies></project>"""


def test_the_runtime_pom_declares_a_5_0_cassandra_all() -> None:
    assert runtime_pom().is_file()
    assert release_line(cassandra_version()) == "5.0"


def test_the_declared_version_is_cassandra_alls_not_another_dependencys() -> None:
    assert declared_version(POM) == "5.0.9"


def test_a_pom_without_cassandra_all_is_a_clear_error() -> None:
    with pytest.raises(StackError, match="declares no cassandra-all version"):
        declared_version(POM.replace("cassandra-all", "cassandra-driver"))


def test_a_lib_directory_is_complete_with_cassandra_all_and_jamm(tmp_path: Path) -> None:
    assert not complete(tmp_path, "5.0.9")
    (tmp_path / "cassandra-all-5.0.9.jar").touch()
    assert not complete(tmp_path, "5.0.9")  # no jamm: the JVM could not get its -javaagent
    (tmp_path / "jamm-0.4.0.jar").touch()
    assert complete(tmp_path, "5.0.9")
    assert not complete(tmp_path, "5.0.10")  # a new version in the pom fetches again


def test_a_node_starts_on_an_empty_or_same_line_data_directory() -> None:
    assert data_dir_problem(None, False, "5.0.9") is None
    assert data_dir_problem("5.0.6", True, "5.0.9") is None


def test_a_node_refuses_data_of_another_release_line() -> None:
    assert "older Cassandra (2.1" in str(data_dir_problem(None, True, "5.0.9"))
    assert "Cassandra 4.1.5, and this stack runs 5.0.9" in str(data_dir_problem("4.1.5", True, "5.0.9"))


def test_the_driver_negotiates_the_protocol_unless_one_is_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROTOCOL_ENV, raising=False)
    assert protocol_version() is None
    monkeypatch.setenv(PROTOCOL_ENV, "auto")
    assert protocol_version() is None
    monkeypatch.setenv(PROTOCOL_ENV, "4")
    assert protocol_version() == 4


def test_a_malformed_protocol_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROTOCOL_ENV, "v4")
    with pytest.raises(FleetsenseError, match="must be 'auto' or a CQL protocol version"):
        protocol_version()


def test_a_fresh_node_records_its_release_and_a_2_1_data_directory_is_refused(tmp_path: Path) -> None:
    node = Cassandra(StackConfig.for_tests(tmp_path / "fresh"))
    node.write_config()
    node._claim_data_dir()
    assert (node.state_dir / "release").read_text() == f"{cassandra_version()}\n"

    old = Cassandra(StackConfig.for_tests(tmp_path / "old"))
    (old.state_dir / "data" / "system").mkdir(parents=True)  # what the stack's Cassandra 2.1 left, no release file
    old.write_config()
    with pytest.raises(StackError, match="older Cassandra") as caught:
        old._claim_data_dir()
    assert "stack down" in (caught.value.hint or "")
