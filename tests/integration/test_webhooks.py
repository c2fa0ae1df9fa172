"""Webhooks on the real Cassandra: an admin registers a local HTTP receiver through the API; each event published
into the hub reaches it once with a valid signature, a replayed event is not sent again, an event published while
the receiver is down arrives after retries once it is back, and the delivery log shows the failed attempts and the
success. Also: bad URLs and kinds are a 400, a viewer is refused, a rotated secret signs what follows, a disabled
webhook gets nothing, a deleted one is gone. Short retry settings keep it to seconds."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.context import ServiceContext
from fleetsense.service.db import Db
from fleetsense.service.live_event import EventHub, LiveEvent
from fleetsense.service.roles import Principal, Role
from fleetsense.service.settings import ServeSettings
from fleetsense.service.webhook_dispatcher import webhook_dispatcher
from fleetsense.service.webhook_retry import RetryPolicy
from fleetsense.service.webhook_settings import WebhookSettings
from fleetsense.service.webhook_signing import EVENT_KEY_HEADER, SignatureError, verify

SETTINGS = ServeSettings(
    fleet_id=f"webhooks-{int(time.time())}",
    webhooks=WebhookSettings(
        retry=RetryPolicy(first_delay_s=0.2, factor=2, max_delay_s=0.8, max_attempts=100, max_age_s=120),
        timeout_s=2,
        refresh_s=1,
    ),
)


@dataclass
class Received:
    key: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    """A real HTTP server on a loopback port that can go down (its socket closed: connection refused) and up."""

    port: int = 0
    got: list[Received] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    def up(self) -> None:
        got = self.got

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append(Received(self.headers[EVENT_KEY_HEADER], body, dict(self.headers.items())))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def received_keys(self) -> list[str]:
        return [r.key for r in self.got]


def brake(start_ms: int, kind: str = "harsh_brake") -> LiveEvent:
    return LiveEvent(
        vehicle_id="van-hook",
        kind=kind,
        start_ms=start_ms,
        end_ms=start_ms + 600,
        duration_ms=600,
        peak=0.61,
        peak_unit="g",
        detected_ms=start_ms + 1_500,
    )


async def until(probe: Callable[[], Any], *, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


@asynccontextmanager
async def service(cql: Any, hub: EventHub) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Principal]]]:
    context = ServiceContext(db=Db(cql, "fleetsense"), settings=SETTINGS)
    context.components.append(webhook_dispatcher(context, hub))
    app = create_app(context=context)
    who = {"principal": Principal("ada", Role.ADMIN, "token")}

    async def principal() -> Principal:
        return who["principal"]

    app.dependency_overrides[current_principal] = principal
    await context.start(app)  # ASGITransport runs no lifespan
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield client, who
    finally:
        await context.stop()


def test_webhooks_deliver_each_event_once_signed_through_an_outage_and_log_every_attempt(cql: Any) -> None:
    receiver = Receiver()
    receiver.up()
    try:
        asyncio.run(_scenario(cql, receiver))
    finally:
        if receiver._server is not None:
            receiver.down()


async def _scenario(cql: Any, receiver: Receiver) -> None:
    hub = EventHub()
    async with service(cql, hub) as (api, who):
        url = f"http://127.0.0.1:{receiver.port}/hook"

        # Refused: what is not http(s), link-local metadata, unknown kinds; a viewer may not even list.
        for bad, why in (
            ({"url": "ftp://127.0.0.1/x", "kinds": []}, "http or https"),
            ({"url": "http://169.254.169.254/latest/meta-data/", "kinds": []}, "link-local"),
            ({"url": url, "kinds": ["harsh_brakes"]}, "no event kind harsh_brakes"),
        ):
            answer = await api.post("/v1/webhooks", json=bad)
            assert answer.status_code == 400 and why in answer.json()["detail"], answer.text
        who["principal"] = Principal("vic", Role.VIEWER, "token")
        assert (await api.get("/v1/webhooks")).status_code == 403
        who["principal"] = Principal("ada", Role.ADMIN, "token")

        made = await api.post("/v1/webhooks", json={"url": url, "kinds": ["harsh_brake", "harsh_acceleration"]})
        assert made.status_code == 201, made.text
        webhook = made.json()
        hook_id, secret = webhook["id"], webhook["secret"]
        assert webhook["enabled"] and webhook["created_by"] == "ada" and secret.startswith("whsec_")
        listed = (await api.get("/v1/webhooks")).json()
        assert [w["id"] for w in listed] == [hook_id] and "secret" not in listed[0]
        assert "secret" not in (await api.get(f"/v1/webhooks/{hook_id}")).json()
        assert (await api.get("/v1/webhooks/wh_none")).status_code == 404

        # One event, once, signed; a bump (not wanted) and a replay of the brake are not sent.
        base_ms = int(time.time() * 1000)
        first = brake(base_ms)
        hub.publish(first)
        hub.publish(brake(base_ms + 10, kind="bump"))
        assert await until(lambda: receiver.received_keys() == [first.key]), receiver.received_keys()
        hub.publish(first)
        await asyncio.sleep(1.0)
        assert receiver.received_keys() == [first.key]
        got = receiver.got[0]
        assert verify(secret, got.headers, got.body, now_s=time.time()) > 0
        assert LiveEvent.from_json(got.body) == first

        # An outage: the event waits, retried, and arrives once when the receiver is back.
        receiver.down()
        during = brake(base_ms + 5_000, kind="harsh_acceleration")
        outage_started = time.monotonic()
        hub.publish(during)
        today = f"/v1/webhooks/{hook_id}/deliveries"

        async def failed_attempts() -> list[dict[str, Any]]:
            log = (await api.get(today)).json()
            return [a for a in log if a["event_key"] == during.key and not a["delivered"]]

        assert len(await until(lambda: _at_least(failed_attempts, 3))) >= 3
        receiver.up()
        assert await until(lambda: during.key in receiver.received_keys()), receiver.received_keys()
        recovered_s = time.monotonic() - outage_started
        await asyncio.sleep(0.5)
        assert receiver.received_keys() == [first.key, during.key]
        got = receiver.got[-1]
        assert verify(secret, got.headers, got.body, now_s=time.time()) > 0
        assert int(got.headers["X-Fleetsense-Attempt"]) >= 4

        log = [a for a in (await api.get(today)).json() if a["event_key"] == during.key]
        assert [a["attempt"] for a in log] == list(range(len(log), 0, -1)), log  # newest first
        assert log[0]["delivered"] and log[0]["status_code"] == 204 and log[0]["error"] is None
        assert all(a["status_code"] is None and "ConnectError" in a["error"] for a in log[1:]), log
        assert [a["event_key"] for a in (await api.get(today)).json()][-1] == first.key  # the oldest attempt

        # A rotated secret signs what follows; the old one no longer verifies.
        rotated = (await api.post(f"/v1/webhooks/{hook_id}/secret")).json()["secret"]
        assert rotated != secret
        after = brake(base_ms + 9_000)
        hub.publish(after)
        assert await until(lambda: after.key in receiver.received_keys())
        got = receiver.got[-1]
        assert verify(rotated, got.headers, got.body, now_s=time.time()) > 0
        try:
            verify(secret, got.headers, got.body, now_s=time.time())
            raise AssertionError("the old secret still verifies")
        except SignatureError:
            pass

        # The test endpoint: one attempt now, reported and logged.
        tested = (await api.post(f"/v1/webhooks/{hook_id}/test")).json()
        assert tested["delivered"] and tested["status_code"] == 204 and tested["event_key"].endswith("/test")
        assert receiver.received_keys()[-1] == tested["event_key"]

        # Disabled: nothing; enabled again with other kinds: those; deleted: gone.
        changed = await api.patch(f"/v1/webhooks/{hook_id}", json={"enabled": False})
        assert changed.status_code == 200 and not changed.json()["enabled"]
        hub.publish(brake(base_ms + 12_000))
        await asyncio.sleep(1.0)
        assert len(receiver.got) == 4
        changed = await api.patch(f"/v1/webhooks/{hook_id}", json={"enabled": True, "kinds": ["bump"]})
        assert changed.json()["kinds"] == ["bump"] and changed.json()["enabled"]
        bump = brake(base_ms + 13_000, kind="bump")
        hub.publish(brake(base_ms + 13_500))
        hub.publish(bump)
        assert await until(lambda: bump.key in receiver.received_keys())
        assert len(receiver.got) == 5
        assert (await api.patch(f"/v1/webhooks/{hook_id}", json={"url": "gopher://x"})).status_code == 400
        assert (await api.delete(f"/v1/webhooks/{hook_id}")).status_code == 204
        assert (await api.get(f"/v1/webhooks/{hook_id}")).status_code == 404
        assert (await api.get("/v1/webhooks")).json() == []
        print(f"webhooks: delivered {recovered_s:.2f} s after the outage began (with its retries)")


async def _at_least(probe: Callable[[], Any], n: int) -> list[Any]:
    found: list[Any] = await probe()
    return found if len(found) >= n else []
