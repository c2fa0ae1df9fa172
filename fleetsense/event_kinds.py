"""Every kind of event fleetsense records, declared once (floor: imported by the analytics, the rows, the scores,
the queries, the simulator's ground truth and the docs' tables).

A kind is data: its key (as stored in Cassandra and sent to readers), the unit of its `peak`, which sensor's data
it is found in, whether the minute, trip and day totals count it, and its weight in the driver score
(docs/analytics.md). Everything else (the lists of harsh kinds, of counted kinds, the score's weights, the kinds the
simulator's ground truth reports, the docs' table) is derived below or from these, so adding a kind is one entry here
(plus, naturally, the code that detects it: cloud/analytics/events.py's DETECTORS for a motion kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Sensor = Literal["imu", "barometer"]


@dataclass(frozen=True, kw_only=True)
class EventKindDescription:
    key: str  # as stored (vehicle_events.kind, the event_counts maps) and as readers name it
    peak_unit: str  # the unit of the event's `peak`
    sensor: Sensor  # whose data it is found in: "imu" kinds are the vehicle's motion (what the simulator scripts)
    harsh: bool = False  # a driving behaviour the driver is judged on
    counted: bool = False  # counted in the minute, trip and day totals (event_counts)
    score_weight: float = 0.0  # weighted events per driving hour feed the score; 0 = not scored
    description: str


EVENT_KINDS: tuple[EventKindDescription, ...] = (
    # Braking and cornering hard are the behaviours most associated with collision risk; a hard pull-away mostly
    # costs fuel and tyres. Bumps are the road's doing, not the driver's, so they are counted but not scored.
    EventKindDescription(
        key="harsh_brake",
        peak_unit="g",
        sensor="imu",
        harsh=True,
        counted=True,
        score_weight=1.0,
        description="deceleration over the vehicle class's braking threshold",
    ),
    EventKindDescription(
        key="harsh_acceleration",
        peak_unit="g",
        sensor="imu",
        harsh=True,
        counted=True,
        score_weight=0.5,
        description="forward acceleration over the class's acceleration threshold",
    ),
    EventKindDescription(
        key="harsh_corner_left",
        peak_unit="g",
        sensor="imu",
        harsh=True,
        counted=True,
        score_weight=1.0,
        description="leftward lateral acceleration over the class's cornering threshold",
    ),
    EventKindDescription(
        key="harsh_corner_right",
        peak_unit="g",
        sensor="imu",
        harsh=True,
        counted=True,
        score_weight=1.0,
        description="rightward lateral acceleration over the class's cornering threshold",
    ),
    EventKindDescription(
        key="bump",
        peak_unit="g",
        sensor="imu",
        counted=True,
        description="a vertical jolt (pothole, speed bump): |vertical specific force - 1 g| over the bump threshold",
    ),
    EventKindDescription(
        key="stop",
        peak_unit="s",
        sensor="imu",
        description="the vehicle stood still; peak is the stop's length",
    ),
    EventKindDescription(
        key="temperature_excursion_high",
        peak_unit="degC",
        sensor="barometer",
        description="cabin temperature above the high bound for longer than the minimum; peak is the hottest",
    ),
    EventKindDescription(
        key="temperature_excursion_low",
        peak_unit="degC",
        sensor="barometer",
        description="cabin temperature below the low bound for longer than the minimum; peak is the coldest",
    ),
)

BY_KEY: dict[str, EventKindDescription] = {kind.key: kind for kind in EVENT_KINDS}
HARSH_KINDS: tuple[str, ...] = tuple(kind.key for kind in EVENT_KINDS if kind.harsh)
# The keys of every event_counts map, in this order (the analytics' packed state keeps counts in this order too).
COUNTED_KINDS: tuple[str, ...] = tuple(kind.key for kind in EVENT_KINDS if kind.counted)
SCORE_WEIGHTS: dict[str, float] = {kind.key: kind.score_weight for kind in EVENT_KINDS if kind.counted}
MOTION_KINDS: tuple[str, ...] = tuple(kind.key for kind in EVENT_KINDS if kind.sensor == "imu")


def zero_counts() -> dict[str, int]:
    """An empty event_counts map: every counted kind, zero."""
    return dict.fromkeys(COUNTED_KINDS, 0)


def markdown_table() -> str:
    """docs/analytics.md's table of event kinds (checked against this declaration by tests/unit/test_docs_tables.py)."""
    lines = ["| kind | peak in | found in | counted | score weight | what |", "|---|---|---|---|---|---|"]
    for kind in EVENT_KINDS:
        counted = "yes" if kind.counted else "no"
        weight = f"{kind.score_weight:g}" if kind.counted else "-"
        lines.append(
            f"| `{kind.key}` | {kind.peak_unit} | {kind.sensor} | {counted} | {weight} | {_cell(kind.description)} |"
        )
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a bar inside a table cell would end it
