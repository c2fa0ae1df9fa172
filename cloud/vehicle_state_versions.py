"""The pickled form of the job's per-vehicle keyed state (vehicle_stream.VehicleState) and its migrations.

Version 3 is a flat tuple: the version, the event kinds order its counts are in, then VehicleState's fields in
declaration order, with the sequencer, the analyzer and the pending minute rows as their own versioned tuples (no
class references or field names in the bytes). Versions 1 and 2 pickled the instance's __dict__ with the sequencer,
analyzer and rows as objects of their own; they are migrated when loaded.
"""

from __future__ import annotations

import operator
from collections import namedtuple
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

from fleetsense.cloud.analytics.aggregates import (
    PACKED_ROW_COUNTS_AT,
    MinuteAggregate,
    minute_row,
    packed_minute_row,
)
from fleetsense.cloud.analytics.state_versions import Piece, reorder_counts
from fleetsense.cloud.analytics.vehicle_analyzer import VehicleAnalyzer
from fleetsense.cloud.sequencer import Sequencer

from fleetsense.event_kinds import COUNTED_KINDS

VERSION = 3  # 1: before recent_crcs, newest_start_us, epoch; 2: the instance's __dict__; 3: a versioned tuple


class VehicleLayout:
    """VEHICLE's layout and migrations for a VehicleState class, derived from its dataclass fields."""

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.names = tuple(f.name for f in fields(cls))
        self._values: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*self.names)
        self._at = {name: 1 + i for i, name in enumerate(self.names)}  # in the layout, after counted_kinds
        layout = namedtuple("VehicleStateLayout", ("counted_kinds", *self.names))  # type: ignore[misc]
        self.piece: Piece[Any] = Piece(
            "vehicle", layout, version=VERSION, migrations={1: self._from_v1, 2: self._from_v2}
        )

    def pack(self, state: Any) -> tuple[Any, ...]:
        values = list(self._values(state))
        values[self._at["sequencer"] - 1] = state.sequencer.__getstate__()
        values[self._at["analyzer"] - 1] = state.analyzer.__getstate__()
        rows = tuple(packed_minute_row(row) for row in state.pending_minutes.values())
        values[self._at["pending_minutes"] - 1] = rows
        return (VERSION, COUNTED_KINDS, *values)

    def restore(self, state: Any, packed: tuple[Any, ...] | dict[str, Any]) -> None:
        if isinstance(packed, dict):  # versions 1 and 2 pickled the instance's __dict__, with its version in it
            packed = (packed.get("version", 1), packed)
        layout = self.piece.unpack(packed)
        state.__dict__.update(zip(self.names, layout[1:], strict=True))
        state.sequencer = Sequencer.restored(layout.sequencer)
        analyzer = state.analyzer = VehicleAnalyzer.__new__(VehicleAnalyzer)
        analyzer.__setstate__(layout.analyzer)
        rows = layout.pending_minutes
        if layout.counted_kinds != COUNTED_KINDS:
            kinds = layout.counted_kinds
            at = PACKED_ROW_COUNTS_AT
            rows = [(*row[:at], reorder_counts(row[at], kinds), *row[at + 1 :]) for row in rows]
        pending = (minute_row(row) for row in rows)
        state.pending_minutes = {row.minute_start_us: row for row in pending}

    def _from_v1(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """Version 1 lacked the fields added since (recent_crcs, newest_start_us, epoch, ...): their defaults."""
        (state,) = values
        state = dict(state, version=2)
        for spec in fields(self.cls):
            if spec.name not in state:
                if spec.default_factory is not MISSING:
                    state[spec.name] = spec.default_factory()
                elif spec.default is not MISSING:
                    state[spec.name] = spec.default
        return (state,)

    def _from_v2(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """Version 2's __dict__ held the sequencer, analyzer and rows as objects (each migrated by its own
        unpickling): their versioned tuples, in today's kinds order."""
        (state,) = values
        pending: dict[int, MinuteAggregate] = state["pending_minutes"]
        packed = {
            **state,
            "sequencer": state["sequencer"].__getstate__(),
            "analyzer": state["analyzer"].__getstate__(),
            "pending_minutes": tuple(packed_minute_row(row) for row in pending.values()),
        }
        return (COUNTED_KINDS, *(packed[name] for name in self.names))
