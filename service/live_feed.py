"""The live feed's consumer: reads the events the job publishes after storing them (docs/service.md, "Live events")
from the broker and hands each one, once, to the context's EventHub.

The queue is the process's own (server-named, exclusive, auto-delete, bound to the exchange with `#`): it exists
while the API is connected and holds nothing otherwise; what the API missed meanwhile a client gets from Cassandra
with `Last-Event-ID`. The job publishes at least once (a replay after a restore publishes the same keys again), so
keys already passed on are dropped here (a bounded LRU). A malformed message is counted and dropped."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fleetsense.service.context import ServiceContext
from fleetsense.service.event_key import EventKey
from fleetsense.service.live_event import EventHub, LiveEvent

from fleetsense.errors import ConfigError

LOG = logging.getLogger("fleetsense.service.live_feed")
BIND_ALL = "#"  # every kind of every vehicle: the filters are per client, in the API


_INTS = ("start_ms", "end_ms", "duration_ms", "detected_ms")
_TEXTS = ("vehicle_id", "kind", "peak_unit")


def decode(body: bytes) -> LiveEvent:
    """A message as a LiveEvent whose fields have their types and whose key reads back as itself (a client resumes
    with it); ConfigError for anything else. LiveEvent.from_json checks the fields' presence only."""
    event = LiveEvent.from_json(body)
    typed = all(type(getattr(event, name)) is int for name in _INTS) and all(
        isinstance(getattr(event, name), str) for name in _TEXTS
    )
    if not typed or type(event.peak) not in (int, float):
        raise ConfigError(f"a live event with a field of the wrong type: {body[:200]!r}")
    try:
        EventKey.parse(event.key)
    except ConfigError as exc:
        raise ConfigError(f"a live event whose key is no event key: {body[:200]!r}") from exc
    if str(EventKey.parse(event.key)) != event.key:
        raise ConfigError(f"a live event whose key does not read back: {body[:200]!r}")
    return event


class RecentKeys:
    """The `size` keys seen last: `add` says whether a key is new, and forgets the least recently seen beyond
    `size`. A replay re-publishes events from the last checkpoint (seconds to minutes back): `size` must hold more
    than the events of that window, fleet-wide."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"RecentKeys of size {size}: it must hold at least one key")
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> bool:
        """True if `key` is new (now remembered), False if it was among the last `size` (now the most recent)."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)


@dataclass
class FeedCounters:
    received: int = 0
    published: int = 0  # handed to the hub
    duplicates: int = 0
    malformed: int = 0
    connects: int = 0
    connect_failures: int = 0


@dataclass
class LiveFeed:
    """A ServiceContext component. Without `settings.amqp_url` it does nothing (no live feed; SSE clients still
    get their resume from Cassandra and heartbeats)."""

    dedupe_keys: int = 100_000
    first_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    counters: FeedCounters = field(default_factory=FeedCounters)
    connected: bool = False
    hub: EventHub | None = None
    _recent: RecentKeys | None = None
    _task: asyncio.Task[None] | None = None
    _connection: Any = None

    async def start(self, context: ServiceContext) -> None:
        self.hub = context.hub
        self._recent = RecentKeys(self.dedupe_keys)
        url = context.settings.amqp_url
        if not url:
            LOG.info("no amqp_url: the live feed is off")
            return
        self._task = asyncio.create_task(self._run(url, context.settings.events_exchange), name="live-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self._close()

    def handle(self, body: bytes) -> LiveEvent | None:
        """One message from the broker: the event passed on, or None (malformed, or a key already passed on)."""
        assert self.hub is not None and self._recent is not None, "start() first"
        self.counters.received += 1
        try:
            event = decode(body)
        except ConfigError as exc:
            self.counters.malformed += 1
            LOG.warning("dropped a malformed live event: %s", exc)
            return None
        if not self._recent.add(event.key):
            self.counters.duplicates += 1
            return None
        self.hub.publish(event)
        self.counters.published += 1
        return event

    async def _run(self, url: str, exchange: str) -> None:
        """Connect, consume until the connection is lost, then again after a back-off that doubles (reset by each
        connection that worked)."""
        backoff_s = self.first_backoff_s
        while True:
            try:
                closed = await self._connect(url, exchange)
                backoff_s = self.first_backoff_s
                await closed
                LOG.warning("live feed: the broker closed the connection; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # aio-pika's and the socket's errors alike: the loop is the policy
                self.counters.connect_failures += 1
                LOG.warning("live feed: %s; reconnecting in %.1f s", exc or type(exc).__name__, backoff_s)
            self.connected = False
            await self._close()
            await asyncio.sleep(backoff_s)
            backoff_s = min(self.max_backoff_s, backoff_s * 2)

    async def _connect(self, url: str, exchange: str) -> Any:
        import aio_pika

        self._connection = await aio_pika.connect(
            url, timeout=10, client_properties={"connection_name": "fleetsense serve: live feed"}
        )
        channel = await self._connection.channel()
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=BIND_ALL)

        async def on_message(message: Any) -> None:
            self.handle(message.body)

        await queue.consume(on_message, no_ack=True)  # best effort: a lost message is still in Cassandra
        self.connected = True
        self.counters.connects += 1
        LOG.info("live feed: reading exchange %s through queue %s", exchange, queue.name)
        # Either ends the feed: the connection (broker gone) or the channel (the exchange deleted under it).
        return asyncio.wait([self._connection.closed(), channel.closed()], return_when=asyncio.FIRST_COMPLETED)

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception as exc:  # closing a broken connection: nothing left to do
                LOG.debug("live feed: closing: %s", exc)
