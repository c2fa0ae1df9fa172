"""The fleet now (from the in-memory snapshot, service/fleet_snapshot.py) and the service's Prometheus metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response
from fleetsense.service import metrics
from fleetsense.service.auth import require
from fleetsense.service.csv_stream import Format, csv_response, wants_csv
from fleetsense.service.fleet_http import context_of, now_ms
from fleetsense.service.fleet_models import FleetNow, VehicleNow
from fleetsense.service.fleet_snapshot import Snapshot, SnapshotNotReady, snapshotter_of
from fleetsense.service.roles import Role

router = APIRouter(tags=["fleet"], dependencies=[Depends(require(Role.VIEWER))])
RETRY_AFTER_S = 5
FormatQuery = Annotated[Format | None, Query(description="csv: the vehicles as CSV (also Accept: text/csv)")]


async def fleet_snapshot(request: Request) -> Snapshot:
    """The newest snapshot; the first request of a process starts the snapshotter and waits for its first refresh."""
    context = context_of(request)
    snapshotter, added = snapshotter_of(context)
    if added:
        await snapshotter.start(context)
    try:
        return await snapshotter.current()
    except SnapshotNotReady:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the fleet view is still being read for the first time: try again in {RETRY_AFTER_S} s",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None


SNAPSHOT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}},
    503: {"description": "the fleet view is being read for the first time: retry after Retry-After seconds"},
}


@router.get("/fleet", response_model=FleetNow, responses=SNAPSHOT_RESPONSES)
async def fleet_now(
    request: Request, snapshot: Annotated[Snapshot, Depends(fleet_snapshot)], format: FormatQuery = None
) -> FleetNow | Response:
    """Every vehicle of the fleet now: online or not and why, last seen, the open trip, the driver assigned now, today's
    events and score. From a snapshot a few seconds old: `as_of` says when it was taken, the header X-Snapshot-Age-S
    how old it is (docs/service.md, Reading the API)."""
    if wants_csv(request, format):
        return csv_response(VehicleNow, _one_page(list(snapshot.vehicles)), "fleet.csv")
    headers = {"X-Snapshot-Age-S": f"{snapshot.age_s(now_ms()):.3f}", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        return Response(
            snapshot.body_gzip, media_type="application/json", headers={**headers, "Content-Encoding": "gzip"}
        )
    return Response(snapshot.body_json, media_type="application/json", headers=headers)


@router.get(
    "/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}, "description": "Prometheus"}}
)
async def prometheus_metrics() -> Response:
    """The service's metrics in Prometheus's text format (any logged-in role may scrape: give the scraper a viewer's
    API token)."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


async def _one_page(items: list[VehicleNow]) -> AsyncIterator[list[VehicleNow]]:
    yield items
