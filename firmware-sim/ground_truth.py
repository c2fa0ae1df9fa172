"""The ground truth of a simulated drive: every manoeuvre, when it happened and how hard it was.

The cloud's event detection is scored against this log, so its numbers are computed from the same script the
vehicle model evaluates (never estimated from samples): `peak_g` is exactly the largest magnitude the manoeuvre's
own acceleration reaches, before road vibration, road grade, mounting rotation, bias and noise are added.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from fleetsense import event_kinds

# A manoeuvre's kind: an event kind found in the vehicle's motion (fleetsense.event_kinds, under the very key the
# cloud stores it with, so truth and detections compare without a table) or one of the ordinary manoeuvres.
ManoeuvreKind = str
OrdinaryManoeuvre = Literal["cruise", "accelerate", "decelerate", "corner_left", "corner_right"]
# Which acceleration a record's peak_g is about, in the vehicle frame (x forward, y left, z up).
Axis = Literal["longitudinal", "lateral", "vertical", "none"]

# What the cloud is expected to report; the ordinary kinds are driving it must stay quiet about.
EVENT_KINDS: frozenset[str] = frozenset(event_kinds.MOTION_KINDS)
HARSH_KINDS: frozenset[str] = frozenset(event_kinds.HARSH_KINDS)
MANOEUVRE_KINDS: frozenset[str] = EVENT_KINDS | frozenset(get_args(OrdinaryManoeuvre))
AXES: frozenset[str] = frozenset(get_args(Axis))
# The simulator's names for two kinds before it used the cloud's keys: ground-truth files written then still read.
RENAMED_KINDS = {"sharp_corner_left": "harsh_corner_left", "sharp_corner_right": "harsh_corner_right"}


class GroundTruthError(ValueError):
    """A ground-truth file that cannot be read back: the message names the line and the field."""


@dataclass(frozen=True, kw_only=True)
class GroundTruthRecord:
    kind: ManoeuvreKind
    start_s: float
    end_s: float
    duration_s: float  # as scripted (end_s - start_s can differ from it by rounding)
    peak_g: float  # max |acceleration on `axis`| over [start_s, end_s), manoeuvre component only
    axis: Axis
    start_speed_m_s: float
    end_speed_m_s: float

    def __post_init__(self) -> None:
        if self.kind not in MANOEUVRE_KINDS:
            raise GroundTruthError(f"unknown manoeuvre kind {self.kind!r}; expected one of {sorted(MANOEUVRE_KINDS)}")

    @property
    def is_event(self) -> bool:
        return self.kind in EVENT_KINDS

    def to_json(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, line: str) -> GroundTruthRecord:
        row: dict[str, Any] = json.loads(line)
        kind = row.get("kind")
        if isinstance(kind, str):
            row["kind"] = RENAMED_KINDS.get(kind, kind)
        if row.get("kind") not in MANOEUVRE_KINDS:
            raise GroundTruthError(
                f"unknown manoeuvre kind {row.get('kind')!r}; expected one of {sorted(MANOEUVRE_KINDS)}"
            )
        if row.get("axis") not in AXES:
            raise GroundTruthError(f"unknown axis {row.get('axis')!r}; expected one of {sorted(AXES)}")
        return cls(**row)


@dataclass(frozen=True)
class GroundTruthLog:
    records: tuple[GroundTruthRecord, ...]

    def __iter__(self) -> Iterator[GroundTruthRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> GroundTruthRecord:
        return self.records[index]

    def of_kind(self, *kinds: ManoeuvreKind) -> list[GroundTruthRecord]:
        return [r for r in self.records if r.kind in kinds]

    def events(self) -> list[GroundTruthRecord]:
        return [r for r in self.records if r.is_event]

    def harsh_events(self) -> list[GroundTruthRecord]:
        return [r for r in self.records if r.kind in HARSH_KINDS]

    def write_jsonl(self, path: str | Path) -> None:
        Path(path).write_text("".join(r.to_json() + "\n" for r in self.records), encoding="utf-8")

    @classmethod
    def read_jsonl(cls, path: str | Path) -> GroundTruthLog:
        records = []
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(GroundTruthRecord.from_json(line))
            except (ValueError, TypeError) as exc:
                raise GroundTruthError(f"{path}:{number}: not a ground-truth record ({exc})") from exc
        return cls(tuple(records))
