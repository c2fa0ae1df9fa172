"""Driver score: weighted harsh events per hour of driving, mapped to 0-100 by exponential decay.

score = 100 * 2 ** (-rate / half_score_rate), rate = sum(weight[kind] * count[kind]) / max(driving hours, floor)

so a clean drive scores 100, every `half_score_rate` weighted events per hour halves the score, and it never goes
below 0. The exposure floor keeps one event in a two-minute trip from reading as 30 events an hour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ScoreWeights:
    # Braking and cornering hard are the behaviours most associated with collision risk; a hard pull-away mostly
    # costs fuel and tyres. Bumps are the road's doing, not the driver's, so they do not count.
    harsh_brake: float = 1.0
    harsh_acceleration: float = 0.5
    harsh_corner_left: float = 1.0
    harsh_corner_right: float = 1.0
    bump: float = 0.0
    half_score_per_hour: float = 5.0  # weighted events per driving hour that halve the score
    min_exposure_h: float = 0.25  # short trips are scored as if they lasted this long

    def weight(self, kind: str) -> float:
        value = getattr(self, kind, None)
        if not isinstance(value, float):
            raise ValueError(f"no score weight for event kind {kind!r}")
        return value


def weighted_events(counts: Mapping[str, int], weights: ScoreWeights) -> float:
    return sum([weights.weight(kind) * count for kind, count in counts.items()])  # a list sums faster than a generator


def driver_score(counts: Mapping[str, int], driving_s: float, weights: ScoreWeights | None = None) -> float:
    """0-100, higher is better; `counts` is events by kind, `driving_s` the time spent moving."""
    weights = weights or ScoreWeights()
    hours = max(driving_s / 3600.0, weights.min_exposure_h)
    rate_per_h = weighted_events(counts, weights) / hours
    return round(100.0 * math.pow(2.0, -rate_per_h / weights.half_score_per_hour), 2)
