"""Session fixtures: the real RabbitMQ, Cassandra and Flink cluster, started by the same code as
`fleetsense stack up`, on the test ports and in their own data directory. If they cannot start, every
integration test fails with the reason: nothing is skipped."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetsense.errors import FleetsenseError
from fleetsense.stack import manager
from fleetsense.stack.layout import StackConfig, repo_root
from fleetsense.stack.prepare import prepare
from fleetsense.stack.process import pid_alive

TEST_DATA_ENV = "FLEETSENSE_TEST_DATA_DIR"


def test_data_dir() -> Path:
    if env := os.environ.get(TEST_DATA_ENV):
        return Path(env)
    root = repo_root()
    assert root is not None, "integration tests run from a checkout"
    return root / ".fleetsense-test"


@pytest.fixture(scope="session")
def stack() -> Iterator[StackConfig]:
    config = StackConfig.for_tests(test_data_dir())
    # A previous run that was killed may have left its stack behind: stop it, then start from empty.
    manager.down(config, say=lambda _: None)
    shutil.rmtree(config.data_dir, ignore_errors=True)
    try:
        prepare(config, say=lambda _: None)
        manager.up(config, say=lambda _: None)
    except FleetsenseError as exc:
        pytest.fail(f"the test stack did not come up:\n{exc.render()}", pytrace=False)
    yield config
    pids = [pid for status in manager.status(config) for pid in status.pids]
    manager.down(config, say=lambda _: None)
    left = [pid for pid in pids if pid_alive(pid)]
    assert not left, f"`stack down` left processes running: {left}"


@pytest.fixture(scope="session")
def operator_client(stack: StackConfig) -> Any:
    return manager.management_client(stack)


@pytest.fixture(scope="session")
def cql(stack: StackConfig) -> Iterator[Any]:
    from fleetsense.stack.cassandra_auth import JOB, session_as

    # The job's user: the tests write as the job does (and set vehicle classes) and read back.
    with session_as(stack, JOB) as session:
        yield session


@pytest.fixture(scope="session")
def ingest_job(stack: StackConfig) -> str:
    from fleetsense.stack import jobs

    try:
        # Profiles re-read every 2 s instead of 60, so a class change reaches a tracked vehicle within a test.
        job_id, _ = jobs.submit_ingest(stack, {"profile_refresh_s": "2"})
    except FleetsenseError as exc:
        pytest.fail(f"the ingest job did not start:\n{exc.render()}", pytrace=False)
    return job_id
