"""When a failed webhook delivery is tried again: exponential backoff with jitter, capped, for a bounded number of
attempts and a bounded age (pure; the dispatcher draws the random numbers, so a seeded test replays a schedule)."""

from __future__ import annotations

from dataclasses import dataclass

from fleetsense.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    first_delay_s: float = 1.0  # the wait after the first failed attempt
    factor: float = 2.0  # each wait this many times the one before: 1, 2, 4, 8 ... s
    max_delay_s: float = 300.0  # no wait longer than this
    jitter: float = 0.2  # each wait drawn from [1 - jitter, 1 + jitter] x its nominal: receivers see no thundering herd
    max_attempts: int = 10  # give up after this many attempts ...
    max_age_s: float = 3_600.0  # ... or when the next attempt would start this long after the first

    def __post_init__(self) -> None:
        problems = [
            f"{name} = {value} must be {bound}"
            for name, value, ok, bound in (
                ("first_delay_s", self.first_delay_s, self.first_delay_s > 0, "> 0"),
                ("factor", self.factor, self.factor >= 1, ">= 1"),
                ("max_delay_s", self.max_delay_s, self.max_delay_s >= self.first_delay_s, ">= first_delay_s"),
                ("jitter", self.jitter, 0 <= self.jitter < 1, "in [0, 1)"),
                ("max_attempts", self.max_attempts, self.max_attempts >= 1, ">= 1"),
                ("max_age_s", self.max_age_s, self.max_age_s > 0, "> 0"),
            )
            if not ok
        ]
        if problems:
            raise ConfigError(f"webhook retry policy: {'; '.join(problems)}", hint="docs/service.md, Webhooks")

    def nominal_delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based), before jitter."""
        # min() before the power would overflow: the exponent is bounded by where the cap is reached anyway.
        return min(self.max_delay_s, self.first_delay_s * self.factor ** min(attempt - 1, 1_000))

    def delay_s(self, attempt: int, unit: float) -> float:
        """The wait after failed attempt `attempt`, with `unit` in [0, 1) (a uniform draw) choosing the jitter."""
        return self.nominal_delay_s(attempt) * (1.0 - self.jitter + 2.0 * self.jitter * unit)

    def next_delay_s(self, attempt: int, age_s: float, unit: float) -> float | None:
        """The wait before the next attempt after failed attempt `attempt`, the first one made `age_s` ago; None:
        give up (that was the last attempt allowed, or the next would start past max_age_s)."""
        if attempt >= self.max_attempts:
            return None
        delay = self.delay_s(attempt, unit)
        return None if age_s + delay > self.max_age_s else delay

    def nominal_schedule_s(self) -> list[float]:
        """The nominal waits of a delivery that always fails (what docs/service.md shows), within max_age_s."""
        waits: list[float] = []
        age = 0.0
        for attempt in range(1, self.max_attempts):
            delay = self.nominal_delay_s(attempt)
            if age + delay > self.max_age_s:
                break
            waits.append(delay)
            age += delay
        return waits
