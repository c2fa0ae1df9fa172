"""Versions of the job's keyed state. Each piece of a vehicle's state (the analyzer's filter, calibration, detectors,
trip, minute totals, the sequencer, the vehicle's own bookkeeping) is a NamedTuple in the code and a plain tuple
`(version, *fields)` in the pickle: names in the code, only values in the bytes (the job pickles every vehicle's
state after every batch, and savepoints carry the bytes across job upgrades).

Changing a piece's fields means: bump its VERSION, keep the old layout's reading as a migration from the old version
to the new one, and keep a fixture of the old bytes (tests/unit/fixtures/). docs/analytics.md, "State and upgrades",
lists the pieces and their versions. Every Piece declares itself in DECLARED as it is made, so the job's state
manifest (state_manifest.py: what `job upgrade` checks before it stops the job) is derived from the declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from fleetsense.cloud.analytics.errors import AnalysisInputError

from fleetsense.event_kinds import COUNTED_KINDS

Layout = TypeVar("Layout", bound=NamedTuple)
# One step of a piece's history: the fields of version v (without the version number) -> those of version v + 1.
Migration = Callable[[tuple[Any, ...]], tuple[Any, ...]]
AFRESH = (
    "start the vehicle afresh (drop its keyed state: start the job without the savepoint, or restore the job "
    "version that wrote it) and reprocess its stored raw batches if its analytics are needed"
)


# Every Piece made so far, by name: filled by Piece itself (see __post_init__), read by state_manifest.registry().
DECLARED: dict[str, Piece[Any]] = {}


class StateVersionError(AnalysisInputError):
    """Pickled state this code cannot read: a version it has no migration from, or bytes of no known layout."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}; {AFRESH}", hint=AFRESH)


@dataclass(frozen=True)
class Piece(Generic[Layout]):
    """One versioned piece of state: its current layout and how each older version becomes the next."""

    name: str
    layout: type[Layout]
    version: int
    migrations: Mapping[int, Migration] = field(default_factory=dict)
    _width: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_width", len(self.layout._fields) + 1)  # the packed tuple's length
        _declare(self)

    def pack(self, state: Layout) -> tuple[Any, ...]:
        """The pickled form: the version, then the fields' values in layout order."""
        return (self.version, *state)

    def unpack(self, packed: object) -> Layout:
        """The current layout from any version this code can migrate; StateVersionError for anything else."""
        if type(packed) is tuple and len(packed) == self._width and packed[0] == self.version:
            return tuple.__new__(self.layout, packed[1:])  # what _make does, without its length check
        return self.layout._make(self.migrate(packed))

    def migrate(self, packed: object) -> tuple[Any, ...]:
        if not isinstance(packed, tuple) or not packed or type(packed[0]) is not int:
            raise StateVersionError(f"the pickled {self.name} state is not a versioned tuple ({type(packed).__name__})")
        version, values = packed[0], packed[1:]
        if version > self.version:
            raise StateVersionError(
                f"the pickled {self.name} state is version {version}, written by another (newer) version of "
                f"fleetsense than this code's {self.version}"
            )
        while version < self.version:
            step = self.migrations.get(version)
            if step is None:
                raise StateVersionError(
                    f"the pickled {self.name} state is version {version}, written by another version of fleetsense "
                    f"that this code cannot migrate from (it reads versions {self.readable()})"
                )
            values, version = step(values), version + 1
        if len(values) != self._width - 1:
            raise StateVersionError(
                f"the pickled {self.name} state (version {version}) has {len(values)} fields, expected "
                f"{self._width - 1}: {', '.join(self.layout._fields)}"
            )
        return values

    def readable(self) -> str:
        """The versions this code reads, as text (for messages)."""
        return ", ".join(str(v) for v in self.readable_versions())

    def readable_versions(self) -> tuple[int, ...]:
        """The versions this code reads: the current one and every one a chain of migrations leads from."""
        return tuple(v for v in sorted({*self.migrations, self.version}) if self._reaches(v))

    def _reaches(self, version: int) -> bool:
        while version in self.migrations:
            version += 1
        return version == self.version


def _declare(piece: Piece[Any]) -> None:
    """Add `piece` to DECLARED. Its name is its key in the recorded manifests, so two different pieces may not share
    one; the same piece made again (a module reloaded, a layout rebuilt for another class) replaces itself."""
    known = DECLARED.get(piece.name)
    if known is not None and (known.version, sorted(known.migrations)) != (piece.version, sorted(piece.migrations)):
        raise ValueError(
            f"two state pieces are named {piece.name!r} (versions {known.version} and {piece.version}): a piece's "
            "name is its key in the job's recorded state manifest, so give each piece its own"
        )
    DECLARED[piece.name] = piece


def counts_in_kinds_order(counts: Mapping[str, int], kinds: tuple[str, ...]) -> tuple[int, ...]:
    """Per-kind counts stored in `kinds` order, as today's COUNTED_KINDS order: a kind added since counts 0; a
    kind that no longer exists cannot be dropped silently (its events were counted in trips and scores)."""
    unknown = set(counts) - set(COUNTED_KINDS)
    if unknown:
        raise StateVersionError(
            f"the pickled state counts event kinds this code no longer has: {sorted(unknown)} (of {list(kinds)})"
        )
    return tuple(counts.get(kind, 0) for kind in COUNTED_KINDS)


# The counted kinds' order of every state written before states recorded it (60ddf97 and af6abb6).
UNRECORDED_KINDS_ORDER = ("harsh_brake", "harsh_acceleration", "harsh_corner_left", "harsh_corner_right", "bump")


def reorder_counts(counts: tuple[int, ...], stored_kinds: tuple[str, ...]) -> tuple[int, ...]:
    """A counts tuple stored in `stored_kinds` order, in today's COUNTED_KINDS order."""
    if stored_kinds == COUNTED_KINDS:
        return counts
    return counts_in_kinds_order(dict(zip(stored_kinds, counts, strict=True)), stored_kinds)
