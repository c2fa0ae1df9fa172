"""The brake on password guessing: after `attempts` failed logins within `window_s`, for one username or from one
client address, each further try waits a hold-back that doubles with each failure (from `backoff_s` up to
`backoff_max_s`). Per username stops a spread-out attack on one account; per address stops one client trying many
accounts. A held try is refused before the password is checked (429, Retry-After), so guessing costs no hashing.

In memory, per API process: a restart forgets it, and N processes behind a balancer allow N times the tries (a shared
store would fix both; the argon2 cost and the minimum length keep guessing slow meanwhile). A success clears the
username's count, not the address's: one valid account must not reset an address that is guessing others."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MAX_KEYS = 100_000  # bounds memory under a flood of distinct usernames or addresses


def username_key(username: str) -> str:
    return f"user:{username.lower()[:128]}"


def address_key(address: str | None) -> str:
    return f"addr:{address or 'unknown'}"


@dataclass
class LoginBrake:
    attempts: int = 5
    window_s: float = 900.0
    backoff_s: float = 1.0
    backoff_max_s: float = 900.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def hold_s(self, keys: Iterable[str]) -> float:
        """How long a try for these keys must still wait (0: it may go ahead)."""
        now = self.clock()
        return max((self._hold_one(key, now) for key in keys), default=0.0)

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        if len(self._failures) >= MAX_KEYS:
            self._forget_expired(now)
        for key in keys:
            times = self._failures.setdefault(key, deque(maxlen=self.attempts + 64))
            times.append(now)

    def succeeded(self, username: str) -> None:
        self._failures.pop(username_key(username), None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _hold_one(self, key: str, now: float) -> float:
        times = self._recent(key, now)
        if times is None or len(times) < self.attempts:
            return 0.0
        hold = min(self.backoff_max_s, self.backoff_s * 2.0 ** min(len(times) - self.attempts, 64))
        return max(0.0, times[-1] + hold - now)

    def _forget_expired(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        while len(self._failures) >= MAX_KEYS:  # still full of fresh keys: drop the oldest inserted
            del self._failures[next(iter(self._failures))]
