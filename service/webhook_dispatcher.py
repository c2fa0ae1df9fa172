"""The webhook dispatcher: a Component (service/context.py) that takes each live event from the EventHub and
delivers it to every active webhook whose kinds match, signed (service/webhook_signing.py), retried
(service/webhook_retry.py), logged (service/webhooks.py) and once per event key.

A dead or slow endpoint never slows the others: each webhook has its own bounded queue and its own worker, and the
hub's side only ever puts into a queue without waiting (a full queue drops the new event, counted and logged). A
worker delivers its webhook's events one at a time, in the order they came, so a receiver sees them in event order
unless one was given up on. Redirects are not followed (a 3xx is a failed attempt): a receiver cannot bounce the
server to an address its URL check would refuse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fleetsense.service.live_event import EventHub, LiveEvent, Subscription
from fleetsense.service.webhook_settings import WebhookSettings
from fleetsense.service.webhook_signing import signed_headers
from fleetsense.service.webhooks import Attempt, CassandraWebhooks, DeliveryStore, Webhook
from prometheus_client import Counter

log = logging.getLogger(__name__)

# Prometheus counters (service/metrics.py exposes the default registry). Attempts, not events, for `failed`.
DELIVERED = Counter("fleetsense_webhook_delivered", "events a receiver acknowledged with a 2xx")
FAILED = Counter("fleetsense_webhook_attempts_failed", "delivery attempts that failed (no answer, or not a 2xx)")
GIVEN_UP = Counter("fleetsense_webhook_given_up", "events given up on after the retry policy's last attempt")
DROPPED = Counter("fleetsense_webhook_dropped", "events dropped because a webhook's queue was full")
DUPLICATES = Counter("fleetsense_webhook_duplicates_skipped", "events not sent again: their key was delivered")

WallClock = Callable[[], float]  # unix seconds: the signature's timestamp, the log's attempted_at


async def attempt_delivery(
    client: httpx.AsyncClient,
    webhook: Webhook,
    event: LiveEvent,
    *,
    attempt: int,
    timeout_s: float,
    wall_clock_s: WallClock = time.time,
) -> Attempt:
    """One signed POST of the event's JSON (LiveEvent.to_json: the live feed's format) and what came of it."""
    loop = asyncio.get_running_loop()
    body = event.to_json()
    now_s = wall_clock_s()
    headers = signed_headers(webhook.secret, event.key, body, int(now_s))
    headers["X-Fleetsense-Webhook-Id"] = webhook.webhook_id
    headers["X-Fleetsense-Attempt"] = str(attempt)
    started = loop.time()
    status: int | None = None
    error: str | None
    try:
        # asyncio's timeout bounds the whole attempt (connect to status line) whatever the transport does.
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", webhook.url, content=body, headers=headers) as response:
                status = response.status_code
        error = None if 200 <= status < 300 else f"the receiver answered HTTP {status}"
    except TimeoutError:
        error = f"no answer within {timeout_s:g} s"
    except Exception as exc:  # httpx's errors, and any other (a TLS failure, a URL httpx refuses): a failed attempt
        error = f"{type(exc).__name__}: {exc}"[:500]
    return Attempt(
        webhook_id=webhook.webhook_id,
        event_key=event.key,
        attempt=attempt,
        attempted_at_ms=round(now_s * 1000),
        status_code=status,
        error=error,
        duration_ms=round((loop.time() - started) * 1000),
    )


@dataclass
class _Lane:
    """One webhook's queue and worker."""

    webhook: Webhook
    queue: asyncio.Queue[LiveEvent]
    task: asyncio.Task[None] | None = None
    dropped: int = 0

    def offer(self, event: LiveEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            DROPPED.inc()
            if self.dropped % 100 != 1:  # the first of every hundred is logged: a dead endpoint under load, not spam
                return
            log.warning(
                "webhook %s: its queue is full (%d events); dropped %s (dropped so far: %d)",
                self.webhook.webhook_id,
                self.queue.maxsize,
                event.key,
                self.dropped,
            )


@dataclass
class WebhookDispatcher:
    """Delivers the hub's events to the fleet's webhooks. `store` None: the fleet's webhooks in Cassandra, made at
    start from the context; `transport` replaces the network in tests; `rng` draws the retry jitter."""

    hub: EventHub
    settings: WebhookSettings = field(default_factory=WebhookSettings)
    store: DeliveryStore | None = None
    transport: httpx.AsyncBaseTransport | None = None
    wall_clock_s: WallClock = time.time
    rng: random.Random = field(default_factory=random.Random)
    _lanes: dict[str, _Lane] = field(default_factory=dict)
    _subscription: Subscription | None = None
    _client: httpx.AsyncClient | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _refreshing: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def start(self, context: Any) -> None:
        if self.store is None:
            self.store = CassandraWebhooks(context.db, context.settings.fleet_id)
        self._client = httpx.AsyncClient(
            transport=self.transport, timeout=self.settings.timeout_s, follow_redirects=False
        )
        try:
            await self.refresh()
        except Exception:  # Cassandra not answering yet: the refresher tries again
            log.exception("webhooks: could not read the registry; trying again in %g s", self.settings.refresh_s)
        self._subscription = self.hub.subscribe()
        self._tasks = [
            asyncio.create_task(self._fan_out(self._subscription), name="webhooks-fan-out"),
            asyncio.create_task(self._refresh_every(), name="webhooks-refresh"),
        ]

    async def stop(self) -> None:
        for lane in self._lanes.values():
            if lane.task is not None:
                self._tasks.append(lane.task)
        self._lanes.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._subscription is not None:
            self.hub.unsubscribe(self._subscription)
            self._subscription = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def dropped(self) -> dict[str, int]:
        """Events dropped per webhook since start (full queues)."""
        return {webhook_id: lane.dropped for webhook_id, lane in self._lanes.items()}

    async def refresh(self) -> None:
        """Re-read the registry: a lane for each active webhook, its settings (url, kinds, secret) as stored now;
        a deleted or disabled webhook's lane stops, its waiting events with it."""
        if self.store is None or self._client is None:  # not started, or stopped: no lanes to run
            return
        async with self._refreshing:  # one at a time: a stale read never lands after a newer one
            active = {w.webhook_id: w for w in await self.store.webhooks() if w.active}
            self._apply(active)

    def _apply(self, active: dict[str, Webhook]) -> None:
        for webhook_id in [known for known in self._lanes if known not in active]:
            lane = self._lanes.pop(webhook_id)
            if lane.task is not None:
                lane.task.cancel()
        for webhook_id, webhook in active.items():
            if (known := self._lanes.get(webhook_id)) is not None:
                known.webhook = webhook  # a retry in progress uses the new url/secret from its next attempt
                continue
            lane = _Lane(webhook, asyncio.Queue(maxsize=self.settings.queue_size))
            lane.task = asyncio.create_task(self._work(lane), name=f"webhook-{webhook_id}")
            self._lanes[webhook_id] = lane

    def offer(self, event: LiveEvent) -> None:
        """Hand one event to every active webhook that wants its kind (never waits)."""
        for lane in self._lanes.values():
            if lane.webhook.wants(event.kind):
                lane.offer(event)

    async def _fan_out(self, subscription: Subscription) -> None:
        while True:
            self.offer(await subscription.queue.get())

    async def _refresh_every(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_s)
            try:
                await self.refresh()
            except Exception:
                log.exception("webhooks: could not re-read the registry; keeping the webhooks known")

    async def _work(self, lane: _Lane) -> None:
        while True:
            event = await lane.queue.get()
            try:
                await self._deliver(lane, event)
            except Exception:  # a store failure must not end the worker: the next event gets its chance
                log.exception("webhook %s: delivering %s failed", lane.webhook.webhook_id, event.key)

    async def _deliver(self, lane: _Lane, event: LiveEvent) -> None:
        assert self.store is not None and self._client is not None
        loop = asyncio.get_running_loop()
        if await self.store.was_delivered(lane.webhook.webhook_id, event.key):
            DUPLICATES.inc()
            return
        first_s = loop.time()
        attempt = 1
        while True:
            webhook = lane.webhook
            result = await attempt_delivery(
                self._client,
                webhook,
                event,
                attempt=attempt,
                timeout_s=self.settings.timeout_s,
                wall_clock_s=self.wall_clock_s,
            )
            await self._log(result)
            if result.delivered:
                DELIVERED.inc()
                await self.store.mark_delivered(webhook.webhook_id, event.key, result.attempted_at_ms)
                return
            FAILED.inc()
            delay_s = self.settings.retry.next_delay_s(attempt, loop.time() - first_s, self.rng.random())
            if delay_s is None:
                GIVEN_UP.inc()
                log.warning(
                    "webhook %s: gave up on %s after %d attempts over %.1f s (last: %s)",
                    webhook.webhook_id,
                    event.key,
                    attempt,
                    loop.time() - first_s,
                    result.error,
                )
                return
            await asyncio.sleep(delay_s)
            attempt += 1

    async def _log(self, attempt: Attempt) -> None:
        assert self.store is not None
        try:
            await self.store.log(attempt)
        except Exception:  # the log is for people; a delivery goes on without it
            log.exception(
                "webhook %s: could not log attempt %d of %s", attempt.webhook_id, attempt.attempt, attempt.event_key
            )


async def send_test(store: CassandraWebhooks, webhook: Webhook, settings: WebhookSettings) -> Attempt:
    """One attempt at a test event (kind "test", vehicle "fleetsense-test"), logged, never retried nor marked."""
    now_ms = round(time.time() * 1000)
    event = LiveEvent(
        vehicle_id="fleetsense-test",
        kind="test",
        start_ms=now_ms,
        end_ms=now_ms,
        duration_ms=0,
        peak=0.0,
        peak_unit="",
        detected_ms=now_ms,
    )
    async with httpx.AsyncClient(timeout=settings.timeout_s, follow_redirects=False) as client:
        result = await attempt_delivery(client, webhook, event, attempt=1, timeout_s=settings.timeout_s)
    await store.log(result)
    return result


def webhook_dispatcher(context: Any, hub: EventHub | None = None) -> WebhookDispatcher:
    """The dispatcher of a running service, to add to its components: it reads `hub` (by default the context's
    `hub`, the one the live feed fills) with the settings ServeSettings.webhooks."""
    hub = hub if hub is not None else getattr(context, "hub", None)
    if not isinstance(hub, EventHub):
        raise TypeError("webhook_dispatcher needs the EventHub the live feed fills: pass it, or set context.hub")
    settings = getattr(context.settings, "webhooks", None) or WebhookSettings()
    return WebhookDispatcher(hub, settings=settings)
