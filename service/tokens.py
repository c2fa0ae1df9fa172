"""API tokens: 32 random bytes shown once as `fst_<base64url>`, stored only as their SHA-256 (hex).

A token is looked up by its hash (`api_tokens`' partition key), never compared as text: an attacker who can time
the lookup learns about the hash of their guess, which says nothing about any real token's bytes. SHA-256 without
salt or stretching is enough for 256 random bits (no dictionary to try), unlike a password."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

PREFIX = "fst_"  # says what it is (a secret scanner can find a leaked one), never part of the randomness
TOKEN_BYTES = 32
_TOKEN = re.compile(rf"{PREFIX}[A-Za-z0-9_-]{{43}}")  # 32 bytes = 43 base64url characters without padding


def new_token() -> str:
    return PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token_id() -> str:
    """A token's public id (listed, revoked by): random, unrelated to its secret."""
    return "tok_" + secrets.token_hex(8)


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def bearer(authorization: str | None) -> str | None:
    """The credential of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 9110), or None."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()
