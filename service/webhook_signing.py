"""How a webhook delivery is signed, and how a receiver checks it (pure functions; docs/service.md, "Webhooks").

The scheme is Stripe's: the signed string is "<unix seconds>.<body>", its HMAC-SHA256 under the webhook's secret in
hex is sent as `X-Fleetsense-Signature: v1=<hex>`, the seconds as `X-Fleetsense-Timestamp`. The timestamp inside the
signature stops a replay: a receiver refuses a delivery whose timestamp is older than its tolerance (5 minutes)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

EVENT_KEY_HEADER = "X-Fleetsense-Event-Key"
TIMESTAMP_HEADER = "X-Fleetsense-Timestamp"
SIGNATURE_HEADER = "X-Fleetsense-Signature"
SCHEME = "v1"  # a later scheme gets a new name; a receiver checks the ones it knows
DEFAULT_TOLERANCE_S = 300.0
SECRET_PREFIX = "whsec_"


class SignatureError(ValueError):
    """A delivery whose signature does not hold: the message says which check failed."""


def new_secret() -> str:
    """A webhook's signing secret: 256 random bits, URL-safe text."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp_s: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of "<timestamp_s>.<body>" under `secret`."""
    signed = str(timestamp_s).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_headers(secret: str, event_key: str, body: bytes, timestamp_s: int) -> dict[str, str]:
    """The headers of one delivery attempt (each attempt is signed afresh with its own timestamp)."""
    return {
        "Content-Type": "application/json",
        EVENT_KEY_HEADER: event_key,
        TIMESTAMP_HEADER: str(timestamp_s),
        SIGNATURE_HEADER: f"{SCHEME}={signature(secret, timestamp_s, body)}",
    }


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now_s: float, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> int:
    """What a receiver does: recompute the signature over the timestamp and the body as received, compare in constant
    time, and refuse a timestamp further than `tolerance_s` from `now_s` (a replay, or a clock far off). Returns the
    delivery's timestamp; raises SignatureError saying which check failed. Header names are case-insensitive."""
    lower = {name.lower(): value for name, value in headers.items()}
    stamp = lower.get(TIMESTAMP_HEADER.lower())
    if stamp is None or not stamp.isascii() or not stamp.isdigit():
        raise SignatureError(f"{TIMESTAMP_HEADER} is missing or not unix seconds")
    timestamp_s = int(stamp)
    if abs(now_s - timestamp_s) > tolerance_s:
        raise SignatureError(f"the timestamp is {now_s - timestamp_s:.0f} s off now, more than {tolerance_s:g} s")
    offered = [
        part.strip()[len(SCHEME) + 1 :]
        for part in lower.get(SIGNATURE_HEADER.lower(), "").split(",")
        if part.strip().startswith(SCHEME + "=")
    ]
    if not offered:
        raise SignatureError(f"{SIGNATURE_HEADER} carries no {SCHEME}= signature")
    expected = signature(secret, timestamp_s, body)
    # compare_digest over every offered signature (no early exit on the first match: constant time in the content).
    matches = [hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in offered]
    if not any(matches):
        raise SignatureError("no signature matches the body and timestamp under this secret")
    return timestamp_s
