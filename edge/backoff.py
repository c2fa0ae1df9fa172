"""Reconnect pacing: exponential backoff with full jitter, and a token bucket for replaying a backlog, so a
fleet coming back online after an outage spreads out instead of storming the broker."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before attempt n: uniform(0, min(cap, base * 2**n)) ("full jitter")."""

    base_s: float = 1.0
    cap_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay_s(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return self.rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempts = 0


@dataclass
class TokenBucket:
    rate_per_s: float
    burst: float
    _tokens: float = 0.0
    _last_s: float | None = None

    def take(self, now_s: float) -> bool:
        if self._last_s is None:
            self._tokens = self.burst
        else:
            self._tokens = min(self.burst, self._tokens + (now_s - self._last_s) * self.rate_per_s)
        self._last_s = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_s(self) -> float:
        """How long until the next token (0 if one is available)."""
        return max(0.0, (1.0 - self._tokens) / self.rate_per_s)
