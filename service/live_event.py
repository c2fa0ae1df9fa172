"""A stored event as the live feed carries it, and the hub that fans each one out to the process's subscribers
(SSE clients, the webhook dispatcher, the review queue).

The job publishes one JSON message per event it has stored, after the write (docs/service.md, "Live events"); the
feed's consumer decodes it with `LiveEvent.from_json` and hands it to `EventHub.publish`. A subscriber owns a
bounded queue: a slow one loses its oldest events and is told so (`dropped`), never slowing the others."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from fleetsense.service.event_key import EventKey

from fleetsense.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class LiveEvent:
    vehicle_id: str
    kind: str
    start_ms: int
    end_ms: int
    duration_ms: int
    peak: float
    peak_unit: str
    detected_ms: int  # when the job detected it

    @property
    def key(self) -> str:
        return str(EventKey(self.vehicle_id, self.start_ms, self.kind))

    def to_json(self) -> bytes:
        return json.dumps({"key": self.key, **asdict(self)}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, body: bytes) -> LiveEvent:
        try:
            data = json.loads(body)
            event = cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"a live event that is not one: {body[:200]!r}", hint="docs/service.md, Live events"
            ) from exc
        return event


@dataclass
class Subscription:
    accepts: Callable[[LiveEvent], bool]
    queue: asyncio.Queue[LiveEvent]
    dropped: int = 0


@dataclass
class EventHub:
    """In-process fan-out. `publish` never blocks: a full subscriber queue drops its oldest event."""

    queue_size: int = 1_000
    _subscribers: list[Subscription] = field(default_factory=list)

    def subscribe(self, accepts: Callable[[LiveEvent], bool] = lambda _e: True) -> Subscription:
        subscription = Subscription(accepts, asyncio.Queue(maxsize=self.queue_size))
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def publish(self, event: LiveEvent) -> None:
        for subscription in self._subscribers:
            if not subscription.accepts(event):
                continue
            if subscription.queue.full():
                subscription.queue.get_nowait()
                subscription.dropped += 1
            subscription.queue.put_nowait(event)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)


def as_dict(event: LiveEvent) -> dict[str, Any]:
    return {"key": event.key, **asdict(event)}
