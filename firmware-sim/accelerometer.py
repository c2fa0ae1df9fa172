"""A simulated accelerometer that turns the motion model into raw int16 counts, as a ±2 g part would."""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetsense.sim.motion import STANDARD_GRAVITY_M_S2, PlaceholderDrive

COUNTS_PER_G_2G_RANGE = 16384  # MPU-6050 datasheet, AFS_SEL=0


def to_counts(value_m_s2: float) -> int:
    counts = round(value_m_s2 / STANDARD_GRAVITY_M_S2 * COUNTS_PER_G_2G_RANGE)
    return max(-32768, min(32767, counts))  # the ADC saturates, it does not wrap


@dataclass(kw_only=True)
class SimulatedAccelerometer:
    """Implements edge.sampling.AccelSampler without any hardware."""

    seed: int = 0
    drive: PlaceholderDrive = field(init=False)
    scale_m_s2_per_count: float = STANDARD_GRAVITY_M_S2 / COUNTS_PER_G_2G_RANGE

    def __post_init__(self) -> None:
        self.drive = PlaceholderDrive(seed=self.seed)

    def samples_for_window(self, start_time_us: int, count: int, period_us: int) -> list[tuple[int, int, int]]:
        window: list[tuple[int, int, int]] = []
        for i in range(count):
            ax, ay, az = self.drive.accel_m_s2((start_time_us + i * period_us) / 1e6)
            window.append((to_counts(ax), to_counts(ay), to_counts(az)))
        return window
