"""The review queue fed live: a component that takes each harsh event off the hub and queues it for its driver's
manager (service/reviews.py `queue_event`); `ReviewCatchUp` covers the events stored while no API ran."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from fleetsense.service.live_event import EventHub, Subscription
from fleetsense.service.reviews import queue_event

from fleetsense.event_kinds import HARSH_KINDS

log = logging.getLogger(__name__)


@dataclass
class ReviewFeed:
    queued: int = 0
    _subscription: Subscription | None = field(default=None, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    _hub: EventHub | None = field(default=None, repr=False)

    async def start(self, context: Any) -> None:
        hub = context.hub
        self._subscription = hub.subscribe(lambda event: event.kind in HARSH_KINDS)

        async def run() -> None:
            assert self._subscription is not None
            while True:
                event = await self._subscription.queue.get()
                try:
                    await queue_event(context.db, event, fleet_id=context.settings.fleet_id)
                    self.queued += 1
                except Exception:  # the database away for a moment: the next start's catch-up queues it
                    log.exception("queueing %s for review failed", event.key)

        self._hub = hub
        self._task = asyncio.create_task(run(), name="review-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._subscription is not None and self._hub is not None:
            self._hub.unsubscribe(self._subscription)
