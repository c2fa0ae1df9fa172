"""The service layer as an operator runs it: the API process `stack up` started (every component wired by
`fleetsense serve`), reached over HTTP with a token. A driver is registered and assigned, a webhook registered; the
simulator's scripted drive goes through the real job; its harsh brakes reach the SSE client filtered on the driver,
the webhook receiver (once each, validly signed), the driver's manager's review queue, and the driver's events."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fleetsense.edge.runtime import send_outbox
from fleetsense.service.webhook_signing import verify

from fleetsense.event_kinds import HARSH_KINDS
from fleetsense.stack.api import Api
from fleetsense.stack.api_accounts import DemoLogin, ensure_demo_admin
from fleetsense.stack.layout import StackConfig

from .helpers import provision_vehicle, unique_vehicle
from .live_client import SseClient
from .test_analytics_pipeline import record_scripted_drive

pytestmark = pytest.mark.integration


class Receiver(BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.got.append(({k: v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture
def admin(stack: StackConfig) -> DemoLogin:
    return ensure_demo_admin(stack)


def test_a_drive_reaches_the_live_feed_the_webhook_the_review_queue_and_the_drivers_events(
    stack: StackConfig, operator_client: Any, ingest_job: str, tmp_path: Path, admin: DemoLogin, receiver: str
) -> None:
    url = Api(stack).url
    auth = {"Authorization": f"Bearer {admin.token}"}
    drive = record_scripted_drive(provision_vehicle(operator_client, stack, unique_vehicle("e2e"), tmp_path), seed=5)
    vid = drive.config.vehicle_id
    driver = f"drv-{vid}"[:64]
    with httpx.Client(base_url=url, headers=auth, timeout=15) as api:
        assert api.post("/v1/vehicles", json={"vehicle_id": vid, "label": "E2E van"}).status_code in (201, 409)
        made = api.post("/v1/drivers", json={"driver_id": driver, "name": "Erin Endtoend", "manager": admin.username})
        assert made.status_code == 201, made.text
        start_ms = int(drive.start_wall_s * 1000) - 60_000
        taken = datetime.fromtimestamp(start_ms / 1000, UTC).isoformat()
        assigned = api.post("/v1/assignments", json={"vehicle_id": vid, "driver_id": driver, "from": taken})
        assert assigned.status_code == 201, assigned.text
        hook = api.post("/v1/webhooks", json={"url": receiver, "kinds": ["harsh_brake"]})
        assert hook.status_code == 201, hook.text
        secret, hook_id = hook.json()["secret"], hook.json()["id"]

        client = SseClient(f"{url}/v1/events/live?driver={driver}", headers=auth).start()
        time.sleep(1.0)  # subscribed
        assert send_outbox(drive.config, timeout_s=120) == 0
        brakes = sorted(t for kind, t in drive.expected_events if kind == "harsh_brake")
        client.wait_for(len(drive.expected_events), timeout_s=90)
        deadline = time.monotonic() + 30
        while len(Receiver.got) < len(brakes) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # a repeat would show up too
        client.stop()

        live = [json.loads(r.data) for r in client.events]
        assert client.error is None, client.error
        assert sorted(e["kind"] for e in live) == sorted(kind for kind, _ in drive.expected_events), live
        assert all(e["vehicle_id"] == vid for e in live)

        delivered = [json.loads(body) for _, body in Receiver.got]
        assert sorted(e["key"] for e in delivered) == sorted(e["key"] for e in live if e["kind"] == "harsh_brake")
        assert len(delivered) == len(brakes), "each harsh brake delivered once"
        for headers, body in Receiver.got:
            verify(secret, headers, body, now_s=time.time())
        log = api.get(f"/v1/webhooks/{hook_id}/deliveries")
        assert log.status_code == 200, log.text
        assert sum(1 for a in log.json() if a["delivered"]) == len(brakes), log.json()

        harsh = {e["key"] for e in live if e["kind"] in HARSH_KINDS}
        queued: set[str] = set()
        deadline = time.monotonic() + 15
        while not harsh <= queued and time.monotonic() < deadline:
            queue = api.get("/v1/reviews/queue", params={"manager": admin.username})
            assert queue.status_code == 200, queue.text
            queued = {item["key"] for item in queue.json()["events"] if item["vehicle_id"] == vid}
            time.sleep(0.5)
        assert harsh <= queued, (harsh, queued)
        assert all(item["driver_id"] == driver for item in queue.json()["events"] if item["vehicle_id"] == vid)

        # Every list exports as CSV: the queue (a record holding a list) and the drivers (a list), as JSON says.
        as_csv = api.get("/v1/reviews/queue", params={"manager": admin.username, "format": "csv"})
        assert as_csv.headers["content-type"].startswith("text/csv"), as_csv.text
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert [r["key"] for r in rows] == [item["key"] for item in queue.json()["events"]]
        drivers = list(csv.DictReader(io.StringIO(api.get("/v1/drivers", headers={"Accept": "text/csv"}).text)))
        assert any(r["driver_id"] == driver and r["name"] == "Erin Endtoend" for r in drivers), drivers

        window = {"from": start_ms, "to": int(drive.end_wall_s * 1000) + 600_000, "limit": 1000}
        theirs = api.get(f"/v1/drivers/{driver}/events", params=window)
        assert theirs.status_code == 200, theirs.text
        assert {e["key"] for e in theirs.json()["items"]} == {e["key"] for e in live}
        assert all(e["driver_id"] == driver for e in theirs.json()["items"])
