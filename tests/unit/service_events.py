"""A live event for the service's unit tests (the feed, the SSE stream, the review queue)."""

from __future__ import annotations

from fleetsense.service.live_event import LiveEvent


def live_event(
    vehicle: str = "van-1", start_ms: int = 1_000, kind: str = "harsh_brake", *, detected_after_ms: int = 2_000
) -> LiveEvent:
    return LiveEvent(
        vehicle_id=vehicle,
        kind=kind,
        start_ms=start_ms,
        end_ms=start_ms + 500,
        duration_ms=500,
        peak=0.6,
        peak_unit="g",
        detected_ms=start_ms + detected_after_ms,
    )
