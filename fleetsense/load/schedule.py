"""When the load generator publishes: every vehicle once per window, the fleet spread evenly over the window."""

from __future__ import annotations

from dataclasses import dataclass

from fleetsense.sim.pool import BATCH_US


@dataclass(frozen=True)
class Schedule:
    """Publish event j is vehicle j mod N's window j div N. Vehicle i's windows start i/N of a window after the
    fleet's anchor, and each is published when it ends, so the fleet's load is smooth and events come in order
    of j: the loop needs a counter, not a heap. Times are microseconds after the anchor."""

    vehicles: int
    window_us: int = BATCH_US

    def vehicle_and_window(self, event: int) -> tuple[int, int]:
        window, vehicle = divmod(event, self.vehicles)
        return vehicle, window

    def window_start_us(self, event: int) -> int:
        vehicle, window = self.vehicle_and_window(event)
        return vehicle * self.window_us // self.vehicles + window * self.window_us

    def due_us(self, event: int) -> int:
        return self.window_start_us(event) + self.window_us

    def events_due_by(self, elapsed_us: int) -> int:
        """How many events are due at `elapsed_us` (events 0 .. n-1)."""
        if elapsed_us < self.window_us:
            return 0
        window, within = divmod(elapsed_us - self.window_us, self.window_us)
        # vehicle v's window starts v*W//N into the window: v*W//N <= within  <=>  v < (within + 1) * N / W
        return window * self.vehicles + -(-(within + 1) * self.vehicles // self.window_us)
