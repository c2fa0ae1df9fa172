"""An event's key: `<vehicle_id>/<start ms since 1970, UTC>/<kind>`, deterministic, so the same event detected
again (a replay after a job restore, a reprocessing) has the same key. It is the SSE id, the webhook's idempotency
key and the API's event id. The Java sink builds the same string when it publishes (docs/service.md)."""

from __future__ import annotations

from dataclasses import dataclass

from fleetsense.errors import ConfigError


@dataclass(frozen=True)
class EventKey:
    vehicle_id: str
    start_ms: int
    kind: str

    def __str__(self) -> str:
        return f"{self.vehicle_id}/{self.start_ms}/{self.kind}"

    @classmethod
    def parse(cls, text: str) -> EventKey:
        # A vehicle id never holds "/" (it is an MQTT topic level); the kind never does either.
        parts = text.split("/")
        if len(parts) != 3 or not parts[0] or not parts[2] or not parts[1].isdigit():
            raise ConfigError(
                f"{text[:200]!r} is no event key", hint="an event key is <vehicle_id>/<start ms since 1970>/<kind>"
            )
        return cls(parts[0], int(parts[1]), parts[2])
