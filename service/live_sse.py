"""The live feed as a client sees it (GET /v1/events/live), in pure functions: which events a client asked for, the
Server-Sent Events text of an event, a heartbeat and the last word to a client too slow to keep up, and which stored
events a client resuming after `Last-Event-ID` gets, in which order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from fleetsense.service.attribution import Assignment, driver_at
from fleetsense.service.event_key import EventKey
from fleetsense.service.live_event import LiveEvent

HEARTBEAT = b": heartbeat\n\n"  # a comment line: keeps proxies and the client's idle timer from closing the stream


@lru_cache(maxsize=1024)  # an event fans out to every client: encoded once, not once per client
def sse_event(event: LiveEvent) -> bytes:
    """One event: its key as the SSE id (what the client sends back as Last-Event-ID), its JSON as the data."""
    return b"id: " + event.key.encode() + b"\ndata: " + event.to_json() + b"\n\n"


def too_slow(dropped: int) -> bytes:
    return (
        f": closed: this client fell {dropped} events behind the feed; reconnect with Last-Event-ID to get them\n\n"
    ).encode()


@dataclass
class ClientFilter:
    """What one client asked for: each given filter must match (an empty one matches everything). A driver filter
    matches the events of whichever vehicle the driver held at the event's start (`assignments`: the driver's,
    by vehicle, refreshed by the route while the stream lasts)."""

    vehicles: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    driver: str | None = None
    assignments: Mapping[str, Sequence[Assignment]] = field(default_factory=dict)

    def accepts(self, event: LiveEvent) -> bool:
        if self.vehicles and event.vehicle_id not in self.vehicles:
            return False
        if self.kinds and event.kind not in self.kinds:
            return False
        if self.driver is None:
            return True
        held = self.assignments.get(event.vehicle_id, ())
        return driver_at(held, event.start_ms * 1000) == self.driver


def by_vehicle(assignments: Iterable[Assignment]) -> dict[str, list[Assignment]]:
    out: dict[str, list[Assignment]] = {}
    for assignment in assignments:
        out.setdefault(assignment.vehicle_id, []).append(assignment)
    return out


def resume_order(stored: Iterable[LiveEvent], after: EventKey) -> list[LiveEvent]:
    """The stored events a client that last got `after` is sent first: those that started at or after it, but not
    `after` itself, each key once, oldest start first (ties by key, so the order is the same on every resume)."""
    seen = {str(after)}
    out: list[LiveEvent] = []
    for event in stored:
        if event.start_ms < after.start_ms or event.key in seen:
            continue
        seen.add(event.key)
        out.append(event)
    return sorted(out, key=lambda e: (e.start_ms, e.key))
