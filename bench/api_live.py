"""SSE fan-out of the live feed: one API process (uvicorn, this process) streams each published event to N clients
(a second process: asyncio + httpx, one connection each); measures, per event and client, the time from the event's
publication into the API's EventHub (where service/live_feed.py hands each event it reads from the broker) to its
receipt by the client. Prints JSON (not a timed test). Target: p99 < 1 s at 200 clients (issue 17).

    .venv/bin/python bench/api_live.py [--clients 200] [--events 100] [--rate 20]

What it leaves out: the job's publish and the broker hop before the hub (measured end to end, row write to client,
by tests/integration/test_live_events.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the clients' process ----------------------------------------------------------------------------------------


async def _client(host: str, port: int, path: str, events: int, received: list[tuple[str, float]]) -> None:
    """One SSE client on a plain socket (an HTTP client library's per-chunk cost would be measured instead of the
    API's): the request, then each `id:` line's key and when its `data:` line arrived."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    event_id = ""
    try:
        while len(received) < events:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"id: "):
                event_id = line[4:].strip().decode()
            elif line.startswith(b"data: "):
                received.append((event_id, time.time()))
    finally:
        writer.close()


async def clients_main(url: str, clients: int, events: int, timeout_s: float) -> dict[str, Any]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    received: list[list[tuple[str, float]]] = [[] for _ in range(clients)]
    tasks = [
        asyncio.create_task(_client(parts.hostname, parts.port, parts.path, events, received[i]))
        for i in range(clients)
    ]
    _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    return {"received": received, "unfinished": len(pending)}


# --- the API's process -------------------------------------------------------------------------------------------


def run(clients: int, events: int, rate_per_s: float) -> dict[str, Any]:
    import uvicorn
    from fleetsense.service.app import create_app
    from fleetsense.service.auth import current_principal
    from fleetsense.service.context import ServiceContext
    from fleetsense.service.live_event import EventHub, LiveEvent
    from fleetsense.service.roles import Principal, Role
    from fleetsense.service.settings import ServeSettings

    hub = EventHub()
    context = ServiceContext(db=None, settings=ServeSettings(), hub=hub)  # type: ignore[arg-type]
    app = create_app(context=context)
    app.dependency_overrides[current_principal] = lambda: Principal("bench", Role.VIEWER, "token")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    )
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        loops.append(asyncio.get_running_loop())
        await server.serve()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", f"http://127.0.0.1:{port}/v1/events/live", str(clients), str(events)],
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while hub.subscribers < clients:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {hub.subscribers} of {clients} clients subscribed")
        time.sleep(0.05)
    published: dict[str, float] = {}
    start_ms = int(time.time() * 1000)

    def publish(event: LiveEvent) -> None:
        published[event.key] = time.time()
        hub.publish(event)

    for i in range(events):
        event = LiveEvent(
            vehicle_id=f"van-{i % 50:03d}",
            kind="harsh_brake",
            start_ms=start_ms + i,
            end_ms=start_ms + i + 800,
            duration_ms=800,
            peak=0.6,
            peak_unit="g",
            detected_ms=start_ms + i,
        )
        loops[0].call_soon_threadsafe(publish, event)
        time.sleep(1 / rate_per_s)
    out, _ = child.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    server.should_exit = True
    thread.join(10)
    latencies_s = sorted(
        at - published[key] for per_client in result["received"] for key, at in per_client if key in published
    )
    deliveries = clients * events
    return {
        "bench": "api_live",
        "clients": clients,
        "events": events,
        "rate_per_s": rate_per_s,
        "cpus": os.cpu_count(),
        "deliveries_expected": deliveries,
        "deliveries_received": len(latencies_s),
        "clients_unfinished": result["unfinished"],
        "latency_ms": {
            "p50": round(1000 * statistics.median(latencies_s), 2),
            "p99": round(1000 * latencies_s[int(0.99 * (len(latencies_s) - 1))], 2),
            "max": round(1000 * latencies_s[-1], 2),
        },
        "target_p99_ms": 1000,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        url, clients, events = argv[1], int(argv[2]), int(argv[3])
        print(json.dumps(asyncio.run(clients_main(url, clients, events, timeout_s=90))), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="events published per second")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.clients, args.events, args.rate), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
