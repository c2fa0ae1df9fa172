"""Driver score: weighted harsh events per hour of driving, mapped to 0-100 by exponential decay.

score = 100 * 2 ** (-rate / half_score_rate), rate = sum(weight[kind] * count[kind]) / max(driving hours, floor)

so a clean drive scores 100, every `half_score_rate` weighted events per hour halve the score, and it never goes
below 0. The exposure floor keeps one event in a two-minute trip from reading as 30 events an hour. The weights are
the event kinds' (fleetsense.event_kinds, where each kind's weight is declared with the reason for it); the formula's
own two parameters are settings here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetsense.event_kinds import SCORE_WEIGHTS


def _declared_weights() -> dict[str, float]:
    return dict(SCORE_WEIGHTS)


@dataclass(frozen=True, kw_only=True)
class ScoreWeights:
    # Every counted kind's weight; a fleet that weighs kinds differently passes its own map.
    per_kind: Mapping[str, float] = field(default_factory=_declared_weights)
    half_score_per_hour: float = 5.0  # weighted events per driving hour that halve the score
    min_exposure_h: float = 0.25  # short trips are scored as if they lasted this long

    def weight(self, kind: str) -> float:
        try:
            return self.per_kind[kind]
        except KeyError:
            raise ValueError(f"no score weight for event kind {kind!r}") from None


def weighted_events(counts: Mapping[str, int], weights: ScoreWeights) -> float:
    per_kind = weights.per_kind
    try:
        return sum([per_kind[kind] * count for kind, count in counts.items()])  # a list sums faster than a generator
    except KeyError as exc:
        raise ValueError(f"no score weight for event kind {exc.args[0]!r}") from None


def driver_score(counts: Mapping[str, int], driving_s: float, weights: ScoreWeights | None = None) -> float:
    """0-100, higher is better; `counts` is events by kind, `driving_s` the time spent moving."""
    weights = weights or ScoreWeights()
    hours = max(driving_s / 3600.0, weights.min_exposure_h)
    rate_per_h = weighted_events(counts, weights) / hours
    return round(100.0 * math.pow(2.0, -rate_per_h / weights.half_score_per_hour), 2)
