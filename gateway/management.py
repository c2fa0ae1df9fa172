"""A small client for RabbitMQ's management HTTP API: the only way this project changes the broker."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import requests

from fleetsense.errors import FleetsenseError


class ManagementError(FleetsenseError):
    """The management API refused a request or could not be reached."""


class ManagementClient:
    def __init__(self, base_url: str, username: str, password: str, *, timeout_s: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = requests.Session()
        self._session.auth = (username, password)
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, body: Any = None, *, ok_missing: bool = False) -> Any:
        url = f"{self.base_url}/api/{path}"
        try:
            reply = self._session.request(method, url, json=body, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise ManagementError(
                f"cannot reach the RabbitMQ management API at {self.base_url}: {exc}",
                hint="is the broker running? `fleetsense stack status`",
            ) from exc
        if reply.status_code == 404 and ok_missing:
            return None
        if reply.status_code == 401:
            raise ManagementError(
                f"the management API refused our operator credentials ({method} {path})",
                hint="the operator secret under the stack's secrets/ does not match the broker's users",
            )
        if reply.status_code >= 400:
            raise ManagementError(f"{method} {path} failed with HTTP {reply.status_code}: {reply.text[:300]}")
        return reply.json() if reply.content else None

    # -- resources --------------------------------------------------------------------------------

    def put_vhost(self, vhost: str) -> None:
        self.request("PUT", f"vhosts/{q(vhost)}", {})

    def put_user(self, username: str, password: str | None, tags: str = "") -> None:
        """Create or update a user; `password=None` makes a user that cannot log in with any password (an
        empty hash), for certificate login."""
        body = {"password": password, "tags": tags} if password is not None else {"password_hash": "", "tags": tags}
        self.request("PUT", f"users/{q(username)}", body)

    def delete_user(self, username: str) -> None:
        self.request("DELETE", f"users/{q(username)}", ok_missing=True)

    def put_user_limits(self, username: str, *, max_connections: int, max_channels: int) -> None:
        for name, value in (("max-connections", max_connections), ("max-channels", max_channels)):
            self.request("PUT", f"user-limits/{q(username)}/{name}", {"value": value})

    def user_limits(self, username: str) -> dict[str, int]:
        found = self.request("GET", f"user-limits/{q(username)}", ok_missing=True) or []
        return {str(k): int(v) for entry in found for k, v in entry.get("value", {}).items()}

    def user_exists(self, username: str) -> bool:
        return self.request("GET", f"users/{q(username)}", ok_missing=True) is not None

    def users(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "users"))

    def put_permissions(self, vhost: str, username: str, *, configure: str, write: str, read: str) -> None:
        body = {"configure": configure, "write": write, "read": read}
        self.request("PUT", f"permissions/{q(vhost)}/{q(username)}", body)

    def put_topic_permissions(self, vhost: str, username: str, *, exchange: str, write: str, read: str) -> None:
        body = {"exchange": exchange, "write": write, "read": read}
        self.request("PUT", f"topic-permissions/{q(vhost)}/{q(username)}", body)

    def put_queue(self, vhost: str, name: str, arguments: dict[str, Any]) -> None:
        body = {"durable": True, "auto_delete": False, "arguments": arguments}
        self.request("PUT", f"queues/{q(vhost)}/{q(name)}", body)

    def delete_queue(self, vhost: str, name: str) -> None:
        self.request("DELETE", f"queues/{q(vhost)}/{q(name)}", ok_missing=True)

    def delete_exchange(self, vhost: str, name: str) -> None:
        self.request("DELETE", f"exchanges/{q(vhost)}/{q(name)}", ok_missing=True)

    def queue(self, vhost: str, name: str) -> dict[str, Any] | None:
        result = self.request("GET", f"queues/{q(vhost)}/{q(name)}", ok_missing=True)
        return dict(result) if result is not None else None

    def bindings(self, vhost: str, exchange: str, queue: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"bindings/{q(vhost)}/e/{q(exchange)}/q/{q(queue)}"))

    def bind(self, vhost: str, exchange: str, queue: str, routing_key: str) -> None:
        if any(b["routing_key"] == routing_key for b in self.bindings(vhost, exchange, queue)):
            return
        body = {"routing_key": routing_key, "arguments": {}}
        self.request("POST", f"bindings/{q(vhost)}/e/{q(exchange)}/q/{q(queue)}", body)

    def close_connections_of(self, username: str, *, reason: str, settle_s: float = 6.0) -> int:
        """Close every open connection of a user. The management API lists a connection only after its next
        statistics tick (collect_statistics_interval, 5 s by default), so keep looking for `settle_s`."""
        closed: set[str] = set()
        deadline = time.monotonic() + settle_s
        while True:
            for connection in self.request("GET", "connections") or []:
                name = connection["name"]
                if connection.get("user") == username and name not in closed:
                    self._session.headers["X-Reason"] = reason
                    try:
                        self.request("DELETE", f"connections/{q(name)}", ok_missing=True)
                    finally:
                        self._session.headers.pop("X-Reason", None)
                    closed.add(name)
            if time.monotonic() >= deadline:
                return len(closed)
            time.sleep(0.5)

    def put_exchange(self, vhost: str, name: str, kind: str) -> None:
        self.request("PUT", f"exchanges/{q(vhost)}/{q(name)}", {"type": kind, "durable": True, "auto_delete": False})

    def put_policy(
        self, vhost: str, name: str, *, pattern: str, apply_to: str, definition: dict[str, Any], priority: int = 0
    ) -> None:
        body = {"pattern": pattern, "apply-to": apply_to, "definition": definition, "priority": priority}
        self.request("PUT", f"policies/{q(vhost)}/{q(name)}", body)

    def delete_policy(self, vhost: str, name: str) -> None:
        self.request("DELETE", f"policies/{q(vhost)}/{q(name)}", ok_missing=True)

    def unbind(self, vhost: str, exchange: str, queue: str, routing_key: str) -> None:
        for binding in self.bindings(vhost, exchange, queue):
            if binding["routing_key"] == routing_key:
                path = f"bindings/{q(vhost)}/e/{q(exchange)}/q/{q(queue)}/{q(binding['properties_key'])}"
                self.request("DELETE", path, ok_missing=True)


def q(segment: str) -> str:
    """Percent-encode one path segment (the default vhost `/` must become %2F)."""
    return quote(segment, safe="")
