"""A placeholder vehicle motion model: smooth speed changes, gentle cornering, road vibration and gravity.

It stands in for the full model (manoeuvres with ground truth, mounting rotation) that replaces it later; it
is deterministic for a given seed so tests can reproduce every sample.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

STANDARD_GRAVITY_M_S2 = 9.80665


@dataclass(kw_only=True)
class PlaceholderDrive:
    seed: int = 0
    _phase: float = field(init=False)

    def __post_init__(self) -> None:
        self._phase = random.Random(self.seed).uniform(0.0, 2 * math.pi)

    def accel_m_s2(self, t_s: float) -> tuple[float, float, float]:
        """Acceleration in the vehicle frame (x forward, y left, z up) as an accelerometer reads it:
        specific force, so +1 g on z at rest."""
        rng = random.Random(hash((self.seed, round(t_s * 1e6))))
        longitudinal = 1.5 * math.sin(0.2 * t_s + self._phase)
        lateral = 1.0 * math.sin(0.07 * t_s + 2 * self._phase)
        vibration = 0.3 * math.sin(2 * math.pi * 11.0 * t_s)
        noise = [rng.gauss(0.0, 0.05) for _ in range(3)]
        return (
            longitudinal + noise[0],
            lateral + noise[1],
            STANDARD_GRAVITY_M_S2 + vibration + noise[2],
        )
