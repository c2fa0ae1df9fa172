"""Prometheus metrics of the service, in one registry served at GET /v1/metrics (text exposition format, any
logged-in role: a viewer may scrape). Other parts import what they set:

- `LIVE_CLIENTS` (gauge): the live-event feed's connected clients (`inc()` on connect, `dec()` on disconnect);
- `WEBHOOK_DELIVERIES` (counter by outcome): `WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()`, outcome one of
  `WEBHOOK_OUTCOMES`;
- the request count and latency per route template and status are the middleware's (`MetricsMiddleware`), the fleet
  snapshot's age and refresh time the snapshotter's (service/fleet_snapshot.py)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

if TYPE_CHECKING:
    from fleetsense.service.fleet_snapshot import FleetSnapshotter

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

UNMATCHED_ROUTE = "unmatched"  # any path no route declares: one label value, so scanners cannot grow the series
# Fast answers (the fleet view from memory) to slow ones (a CSV export of a month).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "fleetsense_http_requests_total", "HTTP requests answered", ("method", "route", "status"), registry=REGISTRY
)
REQUEST_SECONDS = Histogram(
    "fleetsense_http_request_duration_seconds",
    "time from a request's arrival to the end of its response body",
    ("method", "route", "status"),
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
LIVE_CLIENTS = Gauge("fleetsense_live_clients", "clients connected to the live-event feed (SSE)", registry=REGISTRY)
WEBHOOK_OUTCOMES = ("delivered", "failed", "retried", "duplicate")
WEBHOOK_DELIVERIES = Counter(
    "fleetsense_webhook_deliveries_total",
    "webhook delivery attempts by outcome (delivered, failed: given up, retried: will retry, duplicate: skipped)",
    ("outcome",),
    registry=REGISTRY,
)
FLEET_SNAPSHOT_AGE_SECONDS = Gauge(
    "fleetsense_fleet_snapshot_age_seconds", "age of the fleet view's snapshot (-1: none yet)", registry=REGISTRY
)
FLEET_REFRESH_SECONDS = Histogram(
    "fleetsense_fleet_refresh_seconds", "time to refresh the fleet snapshot", buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)  # fmt: skip
FLEET_REFRESH_FAILURES = Counter(
    "fleetsense_fleet_refresh_failures_total", "fleet snapshot refreshes that failed", registry=REGISTRY
)


def exposition() -> tuple[bytes, str]:
    """(body, content type) of the registry in the text format."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def watch_snapshot(snapshotter: FleetSnapshotter) -> None:
    def age_s() -> float:
        latest = snapshotter.latest
        return -1.0 if latest is None else latest.age_s(time.time_ns() // 1_000_000)

    FLEET_SNAPSHOT_AGE_SECONDS.set_function(age_s)


class MetricsMiddleware:
    """Pure ASGI: counts and times each HTTP request by method, route template (`/v1/vehicles/{vehicle_id}`, never
    the path itself: one series per route) and status; the time runs to the end of the body (a streamed CSV too)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before any response start

        async def send_noting_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            template = _template(scope)
            labels = (scope.get("method", ""), template, str(status))
            REQUESTS.labels(*labels).inc()
            REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - started)


def _template(scope: dict[str, Any]) -> str:
    """The matched route's path template with the API's prefix (`/v1/vehicles/{vehicle_id}`). The router leaves the
    matched route in the scope; an included router's route may carry its path without the prefix it was included
    under (FastAPI 0.165), so the prefix is put back."""
    from fleetsense.service.app import API_PREFIX

    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    if str(scope.get("path", "")).startswith(API_PREFIX + "/") and not path.startswith(API_PREFIX + "/"):
        return API_PREFIX + path
    return path
