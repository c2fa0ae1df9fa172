"""The whole path on a secure-profile stack: a device publishes over TLS, the job stores its drive logged in to
Cassandra as its own user, the reader reads it back. A stack of its own, on ports 60 above the test stack's."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fleetsense.cloud.query import sample_keys
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.edge.runtime import send_outbox

from fleetsense.errors import FleetsenseError
from fleetsense.load.virtual_drive import record_drive
from fleetsense.stack import jobs, manager
from fleetsense.stack.cassandra_auth import READER, session_as
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.prepare import prepare
from fleetsense.stack.process import pid_alive

from .conftest import test_data_dir as _test_data_dir
from .helpers import eventually, provision_vehicle, unique_vehicle


@pytest.fixture(scope="module")
def secure_stack() -> Iterator[StackConfig]:
    base = StackConfig.for_tests(_test_data_dir() / "secure-stack")
    config = replace(base, ports=base.ports.offset(60), name=f"{base.name}-secure", profile="secure")
    manager.down(config, say=lambda _: None)  # a stack left behind by a killed run
    shutil.rmtree(config.data_dir, ignore_errors=True)
    try:
        prepare(config, say=lambda _: None)
        manager.up(config, say=lambda _: None)
    except FleetsenseError as exc:
        manager.down(config, say=lambda _: None)
        pytest.fail(f"the secure stack did not come up:\n{exc.render()}", pytrace=False)
    yield config
    pids = [pid for status in manager.status(config) for pid in status.pids]
    manager.down(config, say=lambda _: None)
    assert not [pid for pid in pids if pid_alive(pid)], "`stack down` left processes running"


def test_the_secure_stacks_job_stores_a_drive_logged_in_as_its_own_user(
    secure_stack: StackConfig, tmp_path: Path
) -> None:
    jobs.submit_ingest(secure_stack)  # its settings file carries the job user's login
    client = manager.management_client(secure_stack)
    vehicle = unique_vehicle("secure")
    device = provision_vehicle(client, secure_stack, vehicle, tmp_path)
    assert device.broker.tls  # the secure profile has no plain MQTT
    record_drive(device, seconds=3)
    assert send_outbox(device, timeout_s=60) == 0
    with session_as(secure_stack, READER) as session:
        stored = eventually(lambda: sample_keys(session, KEYSPACE, vehicle), lambda k: len(k) >= 250, timeout_s=60)
    assert len(stored) >= 250, f"{len(stored)} samples stored of a 3 s drive at 100 Hz"
