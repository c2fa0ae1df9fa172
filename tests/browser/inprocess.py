"""The API in process for browser tests and the dashboard bench: accounts in memory, a fleet snapshot made up here
(no Cassandra, no broker), served by uvicorn in a thread on a free port of the loopback."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI
from fleetsense.service import users as u
from fleetsense.service.app import create_app
from fleetsense.service.auth import AuthState
from fleetsense.service.context import ServiceContext
from fleetsense.service.fleet_models import FleetNow, VehicleNow
from fleetsense.service.fleet_snapshot import Snapshot
from fleetsense.service.live_event import LiveEvent
from fleetsense.service.login_brake import LoginBrake
from fleetsense.service.passwords import HashParams, Passwords
from fleetsense.service.roles import Role
from fleetsense.service.routes_fleet import fleet_snapshot
from fleetsense.service.settings import ServeSettings
from fleetsense.service.web_assets import WEB_DIR

from tests.unit.accounts_memory import MemoryAccounts

AXE = WEB_DIR / "node_modules" / "axe-core" / "axe.min.js"  # npm ci in service/web (fleetsense stack prepare)
CHEAP = HashParams(time_cost=1, memory_kib=64, parallelism=1)
PASSWORD = "correct horse battery staple"


def vehicle(n: int, now_ms: int) -> VehicleNow:
    """Vehicle n of a made-up fleet: every third offline, every other one on a trip with a driver."""
    online = n % 3 != 0
    on_trip = online and n % 2 == 0
    start_ms = now_ms - 1_800_000 if on_trip else None
    return VehicleNow(
        vehicle_id=f"van-{n:04d}",
        label=None,
        online=online,
        status_reason="heartbeat" if online else "connection lost",
        status_received_at=None,
        last_seen=None,
        last_seen_ms=now_ms - 2_000,
        trip_open=on_trip,
        trip_start=None,
        trip_start_ms=start_ms,
        trip_duration_s=1_800.0 if on_trip else None,
        driver_id=f"driver-{n:04d}" if on_trip else None,
        events_today={"harsh_brake": n % 4, "bump": n % 2},
        score_today=100.0 - n % 17 if online else None,
        driving_s_today=3_600.0 if online else 0.0,
    )


def snapshot_of(count: int, now_ms: int | None = None) -> Snapshot:
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    vehicles = tuple(vehicle(n, now_ms) for n in range(1, count + 1))
    body = FleetNow.model_validate({"as_of": now_ms / 1000, "as_of_ms": now_ms, "vehicles": vehicles})
    json_bytes = body.model_dump_json().encode()
    return Snapshot(as_of_ms=now_ms, vehicles=vehicles, refresh_s=0.0, body_json=json_bytes,
                    body_gzip=gzip.compress(json_bytes, 6))  # fmt: skip


class LiveContext(ServiceContext):
    """A context with the live feed's hub and no database: enough for GET /v1/events/live without Last-Event-ID
    (a resume reads Cassandra). `publish` hands an event to the hub from the test's thread, as the feed's consumer
    does in the server's loop."""

    def __init__(self) -> None:
        super().__init__(db=None, settings=ServeSettings())  # type: ignore[arg-type]
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self, app: object) -> None:
        self.loop = asyncio.get_running_loop()
        await super().start(app)

    def publish(self, event: LiveEvent) -> None:
        assert self.loop is not None, "the app has not started"
        self.loop.call_soon_threadsafe(self.hub.publish, event)


def app_with(users: dict[str, Role], snapshot: Snapshot, context: LiveContext | None = None) -> FastAPI:
    """The real app: its routes, auth and middleware; its accounts in memory and its fleet this snapshot; with a
    LiveContext, a live feed the test publishes to."""
    accounts = MemoryAccounts()

    async def seed() -> None:  # hashed with an instance of its own: the app's Passwords belongs to uvicorn's loop
        seeding = Passwords(CHEAP)
        for name, role in users.items():
            await u.add_user(accounts, seeding, name, role, PASSWORD)

    # In a thread of its own: Playwright's sync API keeps an event loop running in the test's thread.
    with ThreadPoolExecutor(max_workers=1) as seeder:
        seeder.submit(asyncio.run, seed()).result()
    app = create_app(context=context)
    app.state.auth = AuthState(
        settings=ServeSettings(), accounts=accounts, passwords=Passwords(CHEAP), brake=LoginBrake(attempts=100)
    )

    async def fixed_snapshot() -> Snapshot:
        return snapshot

    app.dependency_overrides[fleet_snapshot] = fixed_snapshot
    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(app: FastAPI, *, start_timeout_s: float = 10.0) -> Iterator[str]:
    """uvicorn serving `app` in a thread; yields its base URL, stops it on exit."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within the timeout (see its log above)")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def draw_synthetic_trace(samples: int) -> str:
    """JavaScript for page.evaluate: a harsh brake's trace shaped as GET /v1/events/{key}/trace answers it (`samples`
    at 100 Hz from -10 s; 2,001 is the real +-10 s), drawn by js/trace_chart.js into a new box; answers the time to
    the first frame, the count of the longitudinal series' pixels on the canvas, and the legend's text."""
    return """async () => {
    const { drawTrace, TRACE_COLOURS } = await import("/app/js/trace_chart.js");
    const t_ms = Array.from({ length: SAMPLES }, (_, i) => -10000 + i * 10);
    const dip = (t) => (t >= 0 && t <= 600 ? -0.62 * Math.sin((Math.PI * t) / 600) : 0);
    const trace = {
        event: { key: "van-1/0/harsh_brake", kind: "harsh_brake", start_ms: 0, end_ms: 600, duration_ms: 600,
                 peak: 0.62, peak_unit: "g", vehicle_id: "van-1" },
        threshold_g: 0.45,
        t_ms,
        longitudinal_g: t_ms.map((t) => dip(t) + 0.01 * Math.sin(t / 37)),
        lateral_g: t_ms.map((t) => 0.03 * Math.sin(t / 211)),
        vertical_g: t_ms.map((t) => 0.05 * Math.sin(t / 13)),
    };
    const box = document.createElement("div");
    document.body.append(box);
    const { plot, drawMs } = await drawTrace(box, trace, { width: 900, height: 360 });
    const canvas = box.querySelector("canvas");
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const want = TRACE_COLOURS.longitudinal.match(/[0-9a-f]{2}/gi).map((hex) => parseInt(hex, 16));
    let series = 0, distinct = new Set();
    for (let i = 0; i < pixels.length; i += 4) {
        const d = Math.abs(pixels[i] - want[0]) + Math.abs(pixels[i + 1] - want[1]) + Math.abs(pixels[i + 2] - want[2]);
        if (pixels[i + 3] > 200 && d < 60) series += 1;
        if (i % 64 === 0) distinct.add(pixels.slice(i, i + 4).join(","));
    }
    return { drawMs, series, distinct: distinct.size, width: canvas.width, title: plot.root.innerText };
}""".replace("SAMPLES", str(samples))
