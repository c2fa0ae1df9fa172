"""Live events end to end: the simulator's scripted drive, analysed by the real job, stored in Cassandra, published by
the job's Java sink to the broker's fleet.events, read by the API's feed (reconnected after the broker dropped it) and
streamed to an SSE client (within 1 s of the row's write, each event once), and a client that reconnects with
Last-Event-ID gets what followed, from Cassandra."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.edge.runtime import send_outbox
from fleetsense.gateway.topology import SERVICE_USER
from fleetsense.service import routes_live
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.context import ServiceContext
from fleetsense.service.db import Db
from fleetsense.service.live_feed import LiveFeed
from fleetsense.service.roles import Principal, Role
from fleetsense.service.settings import ServeSettings

from fleetsense.stack import manager
from fleetsense.stack.layout import StackConfig

from .helpers import provision_vehicle, unique_vehicle
from .live_client import SseClient, served
from .test_analytics_pipeline import record_scripted_drive

TARGET_S = 1.0


@pytest.fixture
def api(stack: StackConfig, cql: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, LiveFeed]]:
    # Heartbeats every 0.5 s instead of 15: the test's clients see a line often enough to hang up when told.
    monkeypatch.setattr(routes_live, "HEARTBEAT_S", 0.5)
    feed = LiveFeed()
    context = ServiceContext(
        db=Db(cql, KEYSPACE),
        settings=ServeSettings(amqp_url=manager.service_amqp_url(stack)),
        components=[feed],
    )
    app = create_app(context=context)
    app.dependency_overrides[current_principal] = lambda: Principal("viewer", Role.VIEWER, "token")
    with served(app) as url:
        deadline = time.monotonic() + 15
        while not feed.connected:
            assert time.monotonic() < deadline, f"the live feed did not connect: {feed.counters}"
            time.sleep(0.05)
        yield url, feed


def written_at_s(cql: Any, event: dict[str, Any]) -> float:
    """When the event's row was written (its write time, the sink's clock), from vehicle_events."""
    from datetime import UTC, datetime

    start = datetime.fromtimestamp(event["start_ms"] / 1000, UTC)
    row = cql.execute(
        f"SELECT writetime(peak) AS written FROM {KEYSPACE}.vehicle_events WHERE vehicle_id = %s AND day_bucket = %s"
        " AND start_time = %s AND kind = %s",
        (event["vehicle_id"], start.date(), start, event["kind"]),
    ).one()
    assert row is not None, f"no stored row for {event['key']}"
    return float(row.written) / 1e6


def test_a_stored_harsh_brake_reaches_an_sse_client_within_a_second_once_and_a_resume_gets_what_followed(
    stack: StackConfig,
    operator_client: Any,
    ingest_job: str,
    cql: Any,
    tmp_path: Path,
    api: tuple[str, LiveFeed],
) -> None:
    url, feed = api
    drive = record_scripted_drive(provision_vehicle(operator_client, stack, unique_vehicle("live"), tmp_path), seed=21)
    vid = drive.config.vehicle_id
    # The broker drops the API's connection: the feed reconnects (a new queue of its own) before the drive is sent.
    # The stack's own API process reads the feed as the same broker user, and the management API lists a new
    # connection some seconds late: drop the user's connections until this feed has been dropped and is back.
    deadline = time.monotonic() + 45
    while not (feed.connected and feed.counters.connects >= 2):
        assert time.monotonic() < deadline, f"the live feed was never dropped and back: {feed.counters}"
        if feed.counters.connects < 2:
            operator_client.close_connections_of(SERVICE_USER, reason="test: the broker drops the API", settle_s=0)
        time.sleep(0.5)
    client = SseClient(f"{url}/v1/events/live?vehicle={vid}").start()
    other_vehicle = SseClient(f"{url}/v1/events/live?vehicle=someone-else").start()
    time.sleep(0.5)  # both subscribed
    assert send_outbox(drive.config, timeout_s=120) == 0
    expected = len(drive.expected_events)
    got = client.wait_for(expected, timeout_s=90)
    time.sleep(2)  # anything extra (a repeat) shows up too
    got = list(client.events)
    client.stop()
    other_vehicle.stop()
    assert client.status == 200 and client.error is None, client.error
    events = [json.loads(r.data) for r in got]
    assert sorted(e["kind"] for e in events) == sorted(kind for kind, _ in drive.expected_events), events
    assert len({r.id for r in got}) == len(got), "an event was sent twice"
    assert all(r.id == e["key"] for r, e in zip(got, events, strict=True))
    assert other_vehicle.events == [], "a client filtered on another vehicle got this one's events"

    latencies_s = [r.at_s - written_at_s(cql, e) for r, e in zip(got, events, strict=True)]
    brakes = [lat for lat, e in zip(latencies_s, events, strict=True) if e["kind"] == "harsh_brake"]
    print(f"\nlive events: row written -> SSE client, s: {sorted(round(x, 4) for x in latencies_s)}; {feed.counters}")
    assert brakes and max(brakes) < TARGET_S, f"harsh brakes reached the client {brakes} s after their write"
    assert max(latencies_s) < TARGET_S, latencies_s

    # The client reconnects after the first harsh brake: it gets every event that started after it, from Cassandra.
    first_brake = min((e for e in events if e["kind"] == "harsh_brake"), key=lambda e: e["start_ms"])
    after = sorted(
        (e for e in events if e["start_ms"] >= first_brake["start_ms"] and e["key"] != first_brake["key"]),
        key=lambda e: (e["start_ms"], e["key"]),
    )
    resumed = SseClient(f"{url}/v1/events/live?vehicle={vid}", headers={"Last-Event-ID": first_brake["key"]}).start()
    resumed.wait_for(len(after), timeout_s=10)
    time.sleep(0.5)
    resumed.stop()
    assert any(c == ": heartbeat" for c in client.comments + resumed.comments)
    assert [r.id for r in resumed.events] == [e["key"] for e in after]
    assert [json.loads(r.data)["peak"] for r in resumed.events] == pytest.approx([e["peak"] for e in after], rel=1e-6)
