"""Who may open which connection: the authoriser's decisions, as pure functions of the broker's request.

RabbitMQ asks (through rabbitmq_auth_backend_http) on four paths. Only the vhost-access check decides anything
here, because it is the one question the broker asks for every connection of every protocol, for password and
certificate logins alike, *before* the MQTT plugin registers the client id (RabbitMQ 3.10.8,
rabbit_mqtt_processor:process_connect), and the only one that carries the MQTT client id for certificate logins
(rabbit_direct passes no client id on the login question of an EXTERNAL login). The rules:

- an MQTT connection's client id must be its user name: a device that presents another vehicle's client id
  is refused before it can close that vehicle's session (the takeover);
- a device (a user tagged `fleetsense-vehicle`) connects over MQTT only: a connection without a client id
  (AMQP 0-9-1, the management API's vhost checks) is refused.

Login, resource and topic questions are answered "allow": the broker's own backend (password hash, vhost and
topic permissions) also decides them and both must allow. Every answer depends on the request alone, so the
broker may cache answers (rabbitmq_auth_backend_cache) for as long as it likes without ever going stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

# Marks device users, so `gateway list` never mixes them with service users and the rules above know a device.
VEHICLE_TAG = "fleetsense-vehicle"
PATHS = ("user", "vhost", "resource", "topic")  # rabbitmq_auth_backend_http's four questions
MAX_REQUEST_BYTES = 16 * 1024  # a real request is a few hundred bytes; anything larger is refused unread


@dataclass(frozen=True, kw_only=True)
class Decision:
    allow: bool
    reason: str  # why; written to the authoriser's log for every refusal

    @property
    def answer(self) -> bytes:
        """The body rabbitmq_auth_backend_http expects."""
        return b"allow" if self.allow else b"deny"


def allow(reason: str) -> Decision:
    return Decision(allow=True, reason=reason)


def deny(reason: str) -> Decision:
    return Decision(allow=False, reason=reason)


def parse_request(body: bytes) -> dict[str, str]:
    """The form-encoded parameters of one request. Raises ValueError on anything that is not unambiguous
    UTF-8 form data (a repeated key could make two readers see two different requests)."""
    if len(body) > MAX_REQUEST_BYTES:
        raise ValueError(f"request of {len(body)} bytes is over the {MAX_REQUEST_BYTES}-byte limit")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"request is not UTF-8 form data: {exc}") from exc
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise ValueError(f"parameter {key!r} appears more than once")
        params[key] = value
    return params


def decide(path: str, params: Mapping[str, str]) -> Decision:
    """The answer to one question from the broker: `path` is one of PATHS, `params` what the broker sent."""
    username = params.get("username", "")
    if path not in PATHS:
        return deny(f"unknown question {path!r}")
    if not username:
        return deny("the request names no user")
    if path != "vhost":
        return allow("left to the broker's own permissions")
    return decide_connection(username=username, client_id=params.get("client_id"), tags=params.get("tags", "").split())


def decide_connection(*, username: str, client_id: str | None, tags: list[str]) -> Decision:
    """May this user open this connection? `client_id` is the MQTT client id, None for other protocols."""
    if client_id is not None:
        if client_id != username:
            return deny(
                f"MQTT client id {client_id!r} is not the user name {username!r}: a client id must equal the "
                "user name (a session takeover attempt, or a device configured with the wrong id)"
            )
        return allow("MQTT client id is the user's own")
    if VEHICLE_TAG in tags:
        return deny(f"device {username!r} tried a non-MQTT connection: device credentials open MQTT only")
    return allow("a service user, not a device")
