"""What a running service holds for its requests: the settings, the database, and the components that run beside
the requests (the live-event feed, the webhook dispatcher), started and stopped with the application."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetsense.service.db import Db
from fleetsense.service.live_event import EventHub


class Component(Protocol):
    async def start(self, context: ServiceContext) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class ServiceContext:
    db: Db
    settings: Any  # service/settings.py's ServeSettings
    components: list[Component] = field(default_factory=list)
    # Every stored event of the live feed (service/live_feed.py publishes, SSE clients and webhooks subscribe).
    hub: EventHub = field(default_factory=EventHub)

    async def start(self, app: Any) -> None:
        for component in self.components:
            await component.start(self)

    async def stop(self) -> None:
        for component in reversed(self.components):
            await component.stop()
