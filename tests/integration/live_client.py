"""For the live feed's tests and bench: the API served by uvicorn in a thread of the test process (SSE needs a real
server: httpx's ASGITransport buffers a whole response), and an SSE client that records when each event arrived."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` on a loopback port, its lifespan run (so its components start and stop); yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Received:
    id: str
    data: str
    at_s: float  # time.time() when its last line arrived


@dataclass
class SseClient:
    """Reads one stream in a thread: `events` grows as they arrive, `comments` holds the comment lines."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Received] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    status: int | None = None
    error: str | None = None  # how the stream ended, if not by stop()
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SseClient:
        self._thread = threading.Thread(target=self._read, name="sse-client", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        try:
            self._read_stream()
        except httpx.HTTPError as exc:  # the server went away (at shutdown: after stop())
            if not self._stop.is_set():
                self.error = repr(exc)

    def _read_stream(self) -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(5, read=60)) as client,
            client.stream("GET", self.url, headers=self.headers) as response,
        ):
            self.status = response.status_code
            event_id, data = "", ""
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data:
                    self.events.append(Received(event_id, data, time.time()))
                    event_id, data = "", ""

    def wait_for(self, n: int, timeout_s: float) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.events)

    def stop(self) -> None:
        """Hang up at the next line (a heartbeat at the latest: a test shortens their interval), so the server ends
        the stream at once, not at its shutdown's time-out."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
