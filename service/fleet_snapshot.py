"""The fleet now, kept in memory: a background component (service/context.py's Component) re-reads every vehicle of
the fleet with bounded concurrency and publishes an immutable snapshot, its answer rendered and gzipped once; GET
/v1/fleet sends the newest one's bytes instead of reading 2,000 vehicles (5 reads each) per request.

Staleness, the bound: a refresh starts `refresh_s` after the previous one ended, so while refreshes succeed a
snapshot is at most `refresh_s` + one refresh's duration old when it is replaced (5 s + about 1.7 s for 2,000
vehicles on a loaded 2-core box; bench/api.py measures it). A refresh that fails keeps the previous snapshot and is
retried after `refresh_s`; its age keeps growing, and every answer says it (`as_of`, the header X-Snapshot-Age-S;
the metric fleetsense_fleet_snapshot_age_seconds). The first request before any snapshot waits for the first
refresh, at most `first_wait_s`, then gets a 503 with Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from fleetsense.service.context import ServiceContext
from fleetsense.service.db import Db
from fleetsense.service.fleet_models import FleetNow, VehicleNow
from fleetsense.service.fleet_query import utc_of_ms
from fleetsense.service.fleet_view import BATCH_VEHICLES, VehicleRows, fleet_members, vehicle_now, vehicles_rows
from pydantic import TypeAdapter

log = logging.getLogger(__name__)
_VEHICLES = TypeAdapter(list[VehicleNow])

QUERIES_PER_BATCH = 5  # status, last seen, newest trip, assignments, today's score of BATCH_VEHICLES vehicles


@dataclass(frozen=True)
class Snapshot:
    as_of_ms: int  # when the refresh that made it started: every row is at least this fresh
    vehicles: tuple[VehicleNow, ...]  # by vehicle_id
    refresh_s: float  # how long that refresh took
    body_json: bytes = b""  # the whole FleetNow answer, rendered once per refresh (2,000 vehicles are ~1 MB) ...
    body_gzip: bytes = b""  # ... and gzipped once (~10x smaller): a request sends bytes, nothing more

    def age_s(self, now_ms: int) -> float:
        return max(0.0, (now_ms - self.as_of_ms) / 1000)


class SnapshotNotReady(Exception):
    """No snapshot yet after waiting for the first refresh."""


class FleetSnapshotter:
    def __init__(self, *, refresh_s: float = 5.0, queries_in_flight: int = 64, first_wait_s: float = 10.0) -> None:
        self.refresh_s = refresh_s
        self.batches_in_flight = max(1, queries_in_flight // QUERIES_PER_BATCH)
        self.first_wait_s = first_wait_s
        self.latest: Snapshot | None = None
        self.failures = 0  # refreshes that failed since start
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._db: Db | None = None
        self._fleet_id = "default"

    async def start(self, context: ServiceContext) -> None:
        from fleetsense.service import metrics

        self._db, self._fleet_id = context.db, context.settings.fleet_id
        metrics.watch_snapshot(self)
        self._task = asyncio.create_task(self._run(), name="fleet-snapshot")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def current(self) -> Snapshot:
        if self.latest is None:
            try:
                await asyncio.wait_for(self._ready.wait(), self.first_wait_s)
            except TimeoutError:
                raise SnapshotNotReady from None
        assert self.latest is not None
        return self.latest

    async def refresh(self) -> Snapshot:
        """Read every vehicle of the fleet once and publish the result."""
        assert self._db is not None, "start() first"
        db = self._db
        started_s = time.monotonic()
        now_ms = time.time_ns() // 1_000_000
        members = await fleet_members(db, self._fleet_id)
        gate = asyncio.Semaphore(self.batches_in_flight)

        async def batch(start: int) -> list[VehicleRows]:
            async with gate:
                return await vehicles_rows(db, members[start : start + BATCH_VEHICLES], now_ms=now_ms)

        batches = await asyncio.gather(*(batch(start) for start in range(0, len(members), BATCH_VEHICLES)))
        # Building and rendering 2,000 vehicles is tens of ms of CPU: in a thread, in small steps, so the event
        # loop keeps answering requests in between (the GIL changes hands between steps).
        vehicles, body, packed = await asyncio.to_thread(render, [rows for found in batches for rows in found], now_ms)
        snapshot = Snapshot(now_ms, vehicles, time.monotonic() - started_s, body, packed)
        self.latest = snapshot  # one reference swap: a reader sees the old snapshot or the new, never a mix
        self._ready.set()
        return snapshot

    async def _run(self) -> None:
        from fleetsense.service import metrics

        while True:
            try:
                # One result version for the whole pass: a promote mid-refresh never mixes two in one snapshot.
                with metrics.FLEET_REFRESH_SECONDS.time(), _pinned(self._db):
                    await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                metrics.FLEET_REFRESH_FAILURES.inc()
                log.exception("the fleet snapshot's refresh failed; the previous snapshot stays")
            await asyncio.sleep(self.refresh_s)


def _pinned(db: Any) -> AbstractContextManager[Any]:
    """The Db's result-version pin (a test's stand-in for the Db has none: nothing to pin there)."""
    return db.pinned() if hasattr(db, "pinned") else nullcontext()


def render(found: list[VehicleRows], now_ms: int) -> tuple[tuple[VehicleNow, ...], bytes, bytes]:
    """The vehicles now, the FleetNow answer of them as JSON, and that gzipped; rendered BATCH_VEHICLES at a time."""
    vehicles = tuple(vehicle_now(rows, now_ms=now_ms) for rows in found)
    head = FleetNow(as_of=utc_of_ms(now_ms), as_of_ms=now_ms, vehicles=[]).model_dump_json().encode()
    assert head.endswith(b'"vehicles":[]}')
    parts = [
        _VEHICLES.dump_json(list(vehicles[i : i + BATCH_VEHICLES]))[1:-1]
        for i in range(0, len(vehicles), BATCH_VEHICLES)
    ]
    body = head[: -len(b"[]}")] + b"[" + b",".join(parts) + b"]}"
    return vehicles, body, gzip.compress(body, 6)


def snapshotter_of(context: ServiceContext) -> tuple[FleetSnapshotter, bool]:
    """The context's snapshotter, added to its components if it has none (True: it was added and needs starting).
    Synchronous, so two requests racing in one event loop never add two."""
    for component in context.components:
        if isinstance(component, FleetSnapshotter):
            return component, False
    snapshotter = FleetSnapshotter()
    context.components.append(snapshotter)
    return snapshotter, True
