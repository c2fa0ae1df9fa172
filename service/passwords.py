"""Operators' passwords: argon2id (memory-hard, RFC 9106), a length policy, and rehash-on-login.

Parameters: RFC 9106's second recommended option ("low memory"): t=3 passes over m=64 MiB with p=4 lanes, about
0.1 s of one core here. Memory-hard means each guess needs its 64 MiB, so a GPU or ASIC with thousands of cores and
little memory per core guesses no faster than a CPU does; bcrypt (4 KiB) and PBKDF2 (none) do not have that.
argon2id (not argon2i or argon2d) resists both side channels and GPU tradeoffs: RFC 9106 names it the default.
Hashing runs in a worker thread (never on the event loop), at most `hash_concurrency` at once, so a login flood
queues instead of taking 64 MiB per request. The hash string carries its own parameters and salt: a change of
parameters is applied to each account at its next successful login (`Verdict.rehashed`)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from fleetsense.errors import ConfigError

# NIST SP 800-63B-4 (2024), 3.1.1.2: at least 15 characters for a password used alone; no composition rules.
MIN_LENGTH = 15
# An upper bound so a request cannot make the server hash megabytes (argon2 itself takes any length).
MAX_LENGTH = 1_024


@dataclass(frozen=True, kw_only=True)
class HashParams:
    time_cost: int = 3
    memory_kib: int = 65_536
    parallelism: int = 4


def password_problem(password: str) -> str | None:
    """What is wrong with a new password, or None."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters; this one has {len(password)}"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    if not password.strip():
        return "a password cannot be only spaces"
    return None


def check_new_password(password: str) -> None:
    if problem := password_problem(password):
        raise ConfigError(problem, hint="a passphrase of a few unrelated words is long enough and easy to type")


def generated_password() -> str:
    """24 url-safe characters: 144 random bits, above the minimum length, safe to paste anywhere."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rehashed: str | None = None  # the password hashed with the current parameters, when the stored hash is older


class Passwords:
    def __init__(self, params: HashParams = HashParams(), *, concurrency: int = 2) -> None:
        self.params = params
        self._hasher = PasswordHasher(
            time_cost=params.time_cost, memory_cost=params.memory_kib, parallelism=params.parallelism
        )
        self._slots = asyncio.Semaphore(concurrency)
        # Verified when a username does not exist, so a missing account costs what a wrong password costs: the
        # answer's timing does not tell which usernames exist.
        self._dummy = self._hasher.hash("not a password: timing equaliser for unknown usernames")

    def hash_now(self, password: str) -> str:
        """The hash of a new password (checked against the policy first). Blocking: call `hash` from a loop."""
        check_new_password(password)
        return self._hasher.hash(password)

    def verify_now(self, stored_hash: str | None, password: str) -> Verdict:
        """Whether `password` matches `stored_hash` (None: no such account; the dummy is checked instead and the
        answer is no). libargon2 compares the digests in constant time."""
        if len(password) > MAX_LENGTH:
            return Verdict(False)
        try:
            self._hasher.verify(stored_hash or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verdict(False)
        if stored_hash is None:
            return Verdict(False)
        if self._hasher.check_needs_rehash(stored_hash):
            return Verdict(True, self._hasher.hash(password))
        return Verdict(True)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hash_now, password)

    async def verify(self, stored_hash: str | None, password: str) -> Verdict:
        async with self._slots:
            return await asyncio.to_thread(self.verify_now, stored_hash, password)
