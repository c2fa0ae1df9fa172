"""Rejected input, bounded: every rejection is counted, but a source (the vehicle its routing key names) gets at
most a few rejection rows a minute, so one broken or hostile device cannot flood Cassandra. The rows live in
one partition per source and day with a TTL (cloud/schema.py, migration 5).

The limiter is a token bucket per source in the operator's memory, not in Flink state: after a restore it starts
full again, which only ever records more, never less, than the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetsense.cloud.store import Write
from fleetsense.cloud.tables import REJECTED_BY_SOURCE, REJECTED_SOURCES

# Rows a source may write in a burst, and then one per this many ms.
REJECTION_BURST = 10
REJECTION_EVERY_MS = 10_000
SOURCES_KEPT = 10_000  # buckets remembered before idle ones are forgotten (a full bucket needs no memory)


@dataclass
class RejectionLimiter:
    burst: int = REJECTION_BURST
    every_ms: int = REJECTION_EVERY_MS
    tokens: dict[str, tuple[float, int]] = field(default_factory=dict)  # source -> (tokens, at ms)

    def admit(self, source: str, now_ms: int) -> bool:
        tokens, at_ms = self.tokens.get(source, (float(self.burst), now_ms))
        tokens = min(float(self.burst), tokens + max(0, now_ms - at_ms) / self.every_ms)
        admitted = tokens >= 1.0
        self.tokens[source] = (tokens - 1.0 if admitted else tokens, now_ms)
        if len(self.tokens) > SOURCES_KEPT:
            self._forget_full(now_ms)
        return admitted

    def _forget_full(self, now_ms: int) -> None:
        full_after_ms = self.burst * self.every_ms
        self.tokens = {s: (t, at) for s, (t, at) in self.tokens.items() if now_ms - at < full_after_ms}


def limit(writes: Sequence[Write], limiter: RejectionLimiter | None, *, now_ms: int) -> tuple[list[Write], int]:
    """`writes` with the rejection rows the limiter refuses taken out, and each kept one's source marked in
    rejection_sources; returns the kept writes and how many rows were left unrecorded."""
    kept: list[Write] = []
    unrecorded = 0
    for write in writes:
        name, values = write
        if name != REJECTED_BY_SOURCE.write:
            kept.append(write)
            continue
        source, day, reason = (REJECTED_BY_SOURCE.value(values, c) for c in ("source", "day_bucket", "reason"))
        if limiter is not None and not limiter.admit(source, now_ms):
            unrecorded += 1
            continue
        kept.append(write)
        kept.append(REJECTED_SOURCES.row(day_bucket=day, source=source, last_reason=reason, last_at=now_ms))
    return kept, unrecorded
