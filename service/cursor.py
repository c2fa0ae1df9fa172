"""The opaque cursor of every list: where a page ended (the partition a walk over partitions had reached, and
Cassandra's paging state inside it), bound to the query it continues, signed so a client can neither forge nor
edit one.

A cursor is base64url(payload || HMAC-SHA256(key, payload)[:16]) with payload the compact JSON
{"v": 1, "q": query, "p": position, "s": paging state in base64url or null, "n": pinned values, "r": result
version}. `query` names the list and its filters (`query_tag`), so a cursor of one list or filter cannot continue
another. A list of results (issue 19) records the result version it was read from ("r"; absent for other lists):
after a promotion its cursor is refused, as its position and paging state belong to the old version's tables. Any
text that is not a cursor this service signed for this query and version raises `CursorError` (routes answer 400
with its message)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from fleetsense.service.result_version import pinned_version

VERSION = 1
MAC_BYTES = 16  # 128 bits: forging one is 2^128 guesses
MAX_CURSOR_CHARS = 4_096  # Cassandra's paging states are a few dozen bytes; anything this long is not ours
Position = tuple[str | int, ...]  # e.g. ("2026-12-06", 13) for an hour of fleet_events

# Without a configured secret_key a process signs with its own random key: cursors then work within the process
# only (a restart or another instance behind a load balancer refuses them with a 400, never accepts a forged one).
_PROCESS_KEY = secrets.token_bytes(32)


class CursorError(ValueError):
    """Text that is no valid cursor for this query; its message says what to do."""


@dataclass(frozen=True)
class Cursor:
    position: Position
    paging_state: bytes | None = None  # None: start the partition at `position` from its beginning
    pinned: tuple[int, ...] = ()  # what the first page resolved and later pages keep (a default range's ends)
    results_version: int | None = None  # the result version a list of results was read from (None: no results)


def signing_key(secret_key: str) -> bytes:
    return hashlib.sha256(b"fleetsense cursor\0" + secret_key.encode()).digest() if secret_key else _PROCESS_KEY


def query_tag(*parts: object) -> str:
    """A short fingerprint of a list and its filters (path, from, to, kind ...)."""
    text = "\0".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode(cursor: Cursor, *, key: bytes, query: str) -> str:
    state = None if cursor.paging_state is None else _b64(cursor.paging_state)
    fields = {"v": VERSION, "q": query, "p": list(cursor.position), "s": state, "n": list(cursor.pinned)}
    if cursor.results_version is not None:
        fields["r"] = cursor.results_version
    payload = json.dumps(fields, separators=(",", ":")).encode()
    return _b64(payload + _mac(key, payload))


def decode(text: str, *, key: bytes, query: str, results_version: int | None = None) -> Cursor:
    """The cursor in `text`, or CursorError saying why it is none. A cursor of results must have been made under
    `results_version`, by default the version the running request is pinned to (service/result_version.py; not
    checked outside a pinned request)."""
    if len(text) > MAX_CURSOR_CHARS:
        raise CursorError("this cursor is too long to be one this service made: pass next_cursor exactly as received")
    try:
        raw = _unb64(text)
    except (ValueError, binascii.Error):
        raise CursorError("this cursor is not base64url: pass next_cursor exactly as received") from None
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if len(raw) <= MAC_BYTES or not hmac.compare_digest(mac, _mac(key, payload)):
        raise CursorError(
            "this cursor was not made by this service (or was changed): pass next_cursor exactly as received,"
            " or start again without a cursor"
        )
    try:
        data = json.loads(payload)
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise ValueError
        position, state, pinned, made_under = data["p"], data["s"], data["n"], data.get("r")
        if not isinstance(position, list) or not all(isinstance(p, str | int) for p in position):
            raise ValueError
        if not isinstance(pinned, list) or not all(type(n) is int for n in pinned):
            raise ValueError
        if made_under is not None and type(made_under) is not int:
            raise ValueError
        paging_state = None if state is None else _unb64(state)
    except (ValueError, KeyError, TypeError, binascii.Error):
        # Signed by us yet unreadable: a cursor of an older release of the service.
        raise CursorError("this cursor is from another version of the service: start again without one") from None
    if data.get("q") != query:
        raise CursorError(
            "this cursor belongs to another list or other filters (from, to, kind): repeat the request that returned"
            " it with the same parameters, or start again without a cursor"
        )
    serving = results_version if results_version is not None else pinned_version()
    if made_under is not None and serving is not None and made_under != serving:
        raise CursorError(
            f"results were reprocessed into version {serving} since this cursor was made (under version"
            f" {made_under}): start the list again without a cursor"
        )
    return Cursor(tuple(position), paging_state, tuple(pinned), made_under)


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not ASCII")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
