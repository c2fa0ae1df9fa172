"""Which driver had a vehicle when: assignments of drivers to vehicles over time, and the rule that attributes
events, minutes and trips to drivers.

The rule, stated once (docs/service.md): a moment on a vehicle belongs to the driver whose assignment on that
vehicle holds it, [valid_from, valid_to) with an open end for an assignment not ended yet; a moment no assignment
holds is unassigned. Attribution happens when results are read, so a correction (a shift the dispatcher forgot to
log, a wrong driver) changes every result at once, with nothing to reprocess. A trip that spans a change of driver
is split at the change: each part is its driver's. Pure functions; times are UTC microseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fleetsense.errors import ConfigError

OPEN_END_US = 2**63 - 1  # an assignment not ended yet holds every later moment


@dataclass(frozen=True, kw_only=True)
class Assignment:
    vehicle_id: str
    driver_id: str
    valid_from_us: int
    valid_to_us: int | None = None  # None: not ended yet

    def __post_init__(self) -> None:
        if self.valid_to_us is not None and self.valid_to_us <= self.valid_from_us:
            raise ConfigError(
                f"assignment of {self.driver_id} to {self.vehicle_id}: it ends ({self.valid_to_us}) before it starts"
                f" ({self.valid_from_us})",
                hint="give an end after the start, or none for an assignment still running",
            )

    @property
    def end_us(self) -> int:
        return OPEN_END_US if self.valid_to_us is None else self.valid_to_us

    def holds(self, at_us: int) -> bool:
        return self.valid_from_us <= at_us < self.end_us

    def overlaps(self, other: Assignment) -> bool:
        return self.valid_from_us < other.end_us and other.valid_from_us < self.end_us


@dataclass(frozen=True)
class Piece:
    """A stretch of time on one vehicle and who drove it (None: nobody was assigned)."""

    driver_id: str | None
    start_us: int
    end_us: int


def driver_at(assignments: Iterable[Assignment], at_us: int) -> str | None:
    """The driver holding the vehicle at `at_us` (the vehicle's own assignments, never overlapping)."""
    for assignment in assignments:
        if assignment.holds(at_us):
            return assignment.driver_id
    return None


def split_by_driver(assignments: Sequence[Assignment], start_us: int, end_us: int) -> list[Piece]:
    """[start_us, end_us) on one vehicle cut at every change of driver: pieces in time order that tile the span
    exactly, neighbours never with the same driver. A trip's parts, a day's scorecard intervals."""
    if end_us <= start_us:
        return []
    cuts = {start_us, end_us}
    for a in assignments:
        cuts.update(t for t in (a.valid_from_us, a.end_us) if start_us < t < end_us)
    pieces: list[Piece] = []
    bounds = sorted(cuts)
    for lo, hi in itertools.pairwise(bounds):
        driver = driver_at(assignments, lo)
        if pieces and pieces[-1].driver_id == driver:
            pieces[-1] = Piece(driver, pieces[-1].start_us, hi)
        else:
            pieces.append(Piece(driver, lo, hi))
    return pieces


def place(existing: Sequence[Assignment], new: Assignment) -> tuple[list[Assignment], Assignment | None]:
    """Where a new assignment of a vehicle goes: (the vehicle's assignments afterwards, the one it ended or None).

    A new assignment starting while an open-ended one runs ends that one at its start (a shift change: the next
    driver takes the van). Any other overlap is refused, naming the assignment in the way: a correction ends or
    changes that one first, so nothing is overwritten silently."""
    if any(a.vehicle_id != new.vehicle_id for a in existing):
        raise ValueError("place() takes one vehicle's assignments")
    ended: Assignment | None = None
    kept: list[Assignment] = []
    for a in existing:
        if a.valid_to_us is None and a.valid_from_us < new.valid_from_us and ended is None:
            ended = Assignment(
                vehicle_id=a.vehicle_id,
                driver_id=a.driver_id,
                valid_from_us=a.valid_from_us,
                valid_to_us=new.valid_from_us,
            )
            kept.append(ended)
        else:
            kept.append(a)
    for a in kept:
        if a.overlaps(new):
            end = "open" if a.valid_to_us is None else str(a.valid_to_us)
            raise ConfigError(
                f"{new.vehicle_id} is assigned to {a.driver_id} from {a.valid_from_us} to {end}, which overlaps the"
                f" new assignment of {new.driver_id}",
                hint="end or correct that assignment first (a vehicle has one driver at a time)",
            )
    return sorted([*kept, new], key=lambda a: a.valid_from_us), ended
