"""Browser sessions: a random cookie, stored only as its SHA-256 in `sessions` (12 h TTL, the table's), and the
session's CSRF token (service/csrf.py).

The cookie is HttpOnly (no script reads it, so an injected script cannot steal it), SameSite=Strict (a browser
never sends it on a request another site starts) and Secure under TLS (never sent over plain HTTP); Path=/v1."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from fleetsense.cloud.tables import SESSION_TTL

SESSION_BYTES = 32


@dataclass(frozen=True)
class NewSession:
    cookie: str  # goes to the browser, never stored
    session_hash: str  # stored
    csrf_token: str


def new_session() -> NewSession:
    cookie = secrets.token_urlsafe(SESSION_BYTES)
    return NewSession(cookie, session_hash(cookie), secrets.token_urlsafe(SESSION_BYTES))


def session_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def cookie_attributes(*, secure: bool) -> dict[str, object]:
    """Starlette's `set_cookie` keywords for the session cookie (its name and value given apart)."""
    return {
        "max_age": SESSION_TTL.seconds,
        "path": "/v1",
        "httponly": True,
        "samesite": "strict",
        "secure": secure,
    }
