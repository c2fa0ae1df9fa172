"""The ingest job given host lists (as on a cluster) whose first hosts are dead: it runs, and a drive's samples and
events are stored exactly. On the single-node stack, 127.0.0.2 and 127.0.0.3 are loopback addresses nothing
listens on (the stack binds 127.0.0.1): each connection attempt there is refused, as at a dead broker or node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud.query import sample_keys
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.edge.runtime import send_outbox

from fleetsense import wire
from fleetsense.stack import cassandra_auth, jobs
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.manager import flink_job_credentials
from fleetsense.stack.prepare import connector_jar

from .helpers import eventually, expected_keys, provision_vehicle, unique_vehicle
from .test_analytics_pipeline import assert_events_match, record_scripted_drive, wait_for_events

DEAD_HOSTS = "127.0.0.2,127.0.0.3"


@pytest.mark.parametrize("sink", ["java", "python"])
def test_the_job_runs_on_the_next_hosts_when_the_first_of_each_list_are_dead(
    stack: StackConfig, operator_client: Any, cql: Any, tmp_path: Path, sink: str
) -> None:
    flink = jobs.cluster(stack)
    jobs.cancel_ingest(stack)  # the session's job, if an earlier test started it: one job consumes the queue
    cql_host, cql_port = stack.cql_contact
    settings = jobs.build_ingest_settings(
        amqp_host=f"{DEAD_HOSTS},{LOOPBACK}",
        amqp_port=stack.ports.amqp,
        amqp_login=flink_job_credentials(stack),
        cassandra_host=f"{DEAD_HOSTS},{cql_host}",
        cassandra_port=cql_port,
        cql_login=cassandra_auth.login(stack, cassandra_auth.JOB),
        connector_jar=connector_jar(stack),
        overrides={"cassandra_local_dc": "datacenter1", "sink": sink},
    )
    # The Java sink (the default) or the Python writer writes; the Python driver also reads the vehicles' profiles
    # in either case: each is given the list.
    job_id, submitted = jobs.submit_settings(flink, settings, tmp_path / "settings.json")
    assert submitted
    try:
        config = provision_vehicle(operator_client, stack, unique_vehicle(f"hosts{sink}"), tmp_path)
        drive = record_scripted_drive(config, seed=41)
        assert send_outbox(config, timeout_s=120) == 0
        wanted = expected_keys(drive.batches, wire.Kind.IMU)
        stored = eventually(
            lambda: sample_keys(cql, KEYSPACE, config.vehicle_id), lambda keys: keys == wanted, timeout_s=120
        )
        assert stored == wanted
        assert_events_match(wait_for_events(cql, drive, timeout_s=120), drive.expected_events)
        assert flink.restarts(job_id) == 0  # never failed over to a restart: the dead hosts were passed over
    finally:
        flink.cancel(job_id)
        # The session's job again, as conftest's ingest_job started it: later tests find the ingest job running
        # (without this, test_recovery and every test after it met no job at all).
        jobs.submit_ingest(stack, {"profile_refresh_s": "2"})
