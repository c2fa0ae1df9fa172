"""The vehicle status message on `fleet/<vehicle-id>/status`: a small JSON document, shared by the edge
(which sends it as a heartbeat, on connect, on shutdown, and as its MQTT last will) and the cloud.

JSON on purpose: a few hundred bytes every 30 s, read by people as often as by programs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

STATUS_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class SensorReport:
    health: str  # "ok", "degraded", "absent"
    fifo_overflows: int = 0
    samples_lost: int = 0
    io_errors: int = 0
    last_error: str | None = None


@dataclass(frozen=True, kw_only=True)
class VehicleStatus:
    vehicle_id: str
    online: bool
    reason: str  # "heartbeat", "connected", "stopping", "connection lost" (last will)
    agent_version: str = ""
    time_utc_us: int | None = None
    uptime_s: float | None = None
    clock_synced: bool | None = None
    sensors: dict[str, SensorReport] = field(default_factory=dict)
    outbox_depth: int | None = None
    outbox_bytes: int | None = None
    next_seq: int | None = None
    dropped_total: int | None = None
    # Sequence ranges [first, last] dropped from a full outbox and not reported before.
    dropped_ranges: list[tuple[int, int]] = field(default_factory=list)
    set_aside_rows: int | None = None
    quarantined_outboxes: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"v": STATUS_VERSION, **asdict(self)}
        return json.dumps({k: v for k, v in body.items() if v not in (None, [], {})}, separators=(",", ":")).encode()


def parse_status(payload: bytes) -> VehicleStatus:
    """Parse a status message; raises ValueError with the reason for anything malformed."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"status is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.pop("v", None) != STATUS_VERSION:
        raise ValueError("status message without a known version field 'v'")
    try:
        sensors = {name: SensorReport(**report) for name, report in data.pop("sensors", {}).items()}
        ranges = [(int(a), int(b)) for a, b in data.pop("dropped_ranges", [])]
        return VehicleStatus(sensors=sensors, dropped_ranges=ranges, **data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed status message: {exc}") from exc
