"""The identity authoriser: a small HTTP service on loopback that answers rabbitmq_auth_backend_http.

    python -m fleetsense.gateway.authoriser --port 15693 --log-file authoriser.log

Decisions come from `fleetsense.gateway.identity` (pure); this module is only the HTTP and logging around them.
It holds no secrets and reads no files: the broker's own backend checks passwords and permissions. The broker's
login question carries the password (rabbitmq_auth_backend_http always sends it); it arrives in a POST body, is
never logged, and is dropped with the request.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fleetsense.gateway.identity import MAX_REQUEST_BYTES, Decision, decide, deny, parse_request

LOG = logging.getLogger("fleetsense.authoriser")
PATH_PREFIX = "/auth/"
HEALTH_PATH = "/health"


def answer(path: str, body: bytes) -> Decision:
    """The decision for one HTTP request: `path` as requested, `body` the form-encoded parameters."""
    if not path.startswith(PATH_PREFIX):
        return deny(f"unknown path {path!r}")
    try:
        params = parse_request(body)
    except ValueError as exc:
        return deny(str(exc))
    decision = decide(path.removeprefix(PATH_PREFIX), params)
    if not decision.allow:
        # Only names and addresses, never the password; repr() keeps a hostile client id on one log line.
        who = {key: params.get(key) for key in ("username", "client_id", "vhost", "ip") if key in params}
        LOG.warning("refused %s %s: %s", path.removeprefix(PATH_PREFIX), who, decision.reason)
    return decision


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the broker's httpc reuses its connections
    server_version = "fleetsense-authoriser"
    # One segment per reply, sent at once: headers and body written separately met the broker's delayed ACK
    # and cost ~45 ms per question (measured: 90 ms per MQTT connect, two questions, instead of ~3 ms).
    wbufsize = -1  # buffered; handle_one_request flushes after each reply
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._reply(413, b"deny")
            self.close_connection = True
            LOG.warning("refused a request of %d bytes (limit %d)", length, MAX_REQUEST_BYTES)
            return
        body = self.rfile.read(length)
        self._reply(200, answer(self.path, body).answer)

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self._reply(200, b"ok")
        else:  # the broker is configured for POST: a GET would put the password in a URL
            self._reply(405, b"deny")

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: refusals are logged with their reason above, allows are not worth a line


def serve(host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fleetsense identity authoriser for RabbitMQ")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-file", type=Path)
    args = parser.parse_args(argv)
    handler: logging.Handler = logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler()
    logging.basicConfig(level=logging.INFO, handlers=[handler], format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = serve(args.host, args.port)
    except OSError as exc:
        LOG.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    # SIGTERM from `stack down` ends serve_forever from another thread (shutdown() blocks the serving one).
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    LOG.info("listening on %s:%d", args.host, args.port)
    server.serve_forever()
    server.server_close()
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
