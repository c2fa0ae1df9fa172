"""The load generator's counters and percentiles."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def percentiles(values: Iterable[float], points: Sequence[float] = (50, 90, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles, e.g. {"p50": ..., "p99": ..., "max": ...}; None for no values."""
    ordered = sorted(values)
    result: dict[str, float | None] = {}
    for point in points:
        rank = max(1, -(-len(ordered) * point // 100))  # ceil
        result[f"p{point:g}"] = round(float(ordered[int(rank) - 1]), 3) if ordered else None
    result["max"] = round(float(ordered[-1]), 3) if ordered else None
    return result


@dataclass
class Counters:
    published: int = 0  # first sends of a batch
    resent: int = 0  # sends after a reconnect or an ack time-out
    acked: int = 0
    samples_acked: int = 0
    reconnects: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # CONNACK reason or connection error -> count
    puback_ms: array[float] = field(default_factory=lambda: array("f"))
    schedule_lag_ms: array[float] = field(default_factory=lambda: array("f"))
