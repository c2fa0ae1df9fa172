"""CSRF protection for requests made with a session cookie: the synchronizer-token pattern.

At login the server makes a random CSRF token and keeps it with the session (`sessions.csrf_token`); the client
gets it in the login answer (and from GET /v1/auth/me) and sends it back in an `X-CSRF-Token` header on every
state-changing request. Another site can make a browser send the cookie (SameSite=Strict already stops that in
current browsers; this is the second wall) but cannot read the token, so it cannot forge the header.
Why not double-submit (a cookie and a header that must match)? Its token lives in a cookie, which a sibling
subdomain or a plain-HTTP man in the middle can set ("cookie tossing"), unless it is signed and bound to the
session; we read the session row on every request anyway, so keeping the token there costs nothing and needs no
signature. Requests with an API token need no CSRF token: browsers never attach an Authorization header on their
own, so a forged request carries no token."""

from __future__ import annotations

import hmac

HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # never change state (RFC 9110's safe methods, as we use them)


def needs_token(method: str) -> bool:
    return method.upper() not in SAFE_METHODS


def token_matches(sent: str | None, expected: str) -> bool:
    """Constant-time: the comparison's time says nothing about how much of a guess was right."""
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())
