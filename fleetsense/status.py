"""The vehicle status message on `fleet/<vehicle-id>/status`: a small JSON document, shared by the edge
(which sends it as a heartbeat, on connect, on shutdown, and as its MQTT last will) and the cloud.

JSON on purpose: a few hundred bytes every 30 s, read by people as often as by programs. The cloud trusts none
of it: `parse_status` checks every field's type, range and size against the rules declared once below
(`FIELD_RULES`, documented in docs/wire-format.md), so a status message is either parsed or refused with a reason.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from fleetsense.ids import validate_vehicle_id

STATUS_VERSION = 1
MAX_STATUS_BYTES = 8 * 1024  # a status is a few hundred bytes; the limit leaves room for long error texts
MAX_DEPTH = 4  # {"sensors": {"imu": {"fifo_overflows": 1}}} and [[first, last]] are the deepest nestings
REASONS = ("connected", "heartbeat", "stopping", "connection lost")
SENSOR_HEALTH = ("ok", "degraded", "absent")
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
MAX_SENSORS = 8
MAX_DROPPED_RANGES = 256
MAX_QUARANTINED = 16
MAX_TEXT = 256  # characters of any free text (an error message, a file name, a version)
MAX_BADGE = 64  # characters of a driver badge (an RFID UID in hex is 8 to 20)
_BADGE_CHARACTERS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz:_-")


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
    epoch: int | None = None  # the sequence epoch next_seq and dropped_ranges belong to (wire v3); None: not stated
    dropped_total: int | None = None
    # Sequence ranges [first, last] dropped from a full outbox and not reported before.
    dropped_ranges: list[tuple[int, int]] = field(default_factory=list)
    set_aside_rows: int | None = None
    quarantined_outboxes: list[str] = field(default_factory=list)
    # Restarts and outages (issue 13): how often the agent started again since its state directory was made, how
    # many of those followed a crash (no clean stop recorded), and the samples missing across the last restart.
    restarts: int | None = None
    unclean_restarts: int | None = None
    last_restart_lost_ms: int | None = None  # None: unknown (the clock was not synchronised on both sides)
    # Storage trouble: the outbox's current fault (disk full, read-only, I/O error), and the batches it holds in
    # memory meanwhile; batches held on the device until the clock is known good (docs/edge-agent.md).
    storage_error: str | None = None
    memory_batches: int | None = None
    held_unsynced: int | None = None
    # The driver badge the vehicle's RFID reader holds (issue 17): the service makes it an assignment. None: none.
    badge: str | None = None

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"v": STATUS_VERSION, **asdict(self)}
        return json.dumps({k: v for k, v in body.items() if v not in (None, [], {})}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Rule:
    """What one JSON field may hold: its type, and for numbers their range, for text its length, for a choice
    its values."""

    kind: str  # "bool", "int", "number", "text"
    low: float = 0
    high: float = INT64_MAX
    choices: tuple[str, ...] = ()
    required: bool = False


FIELD_RULES: dict[str, Rule] = {
    "vehicle_id": Rule("text", high=64, required=True),
    "online": Rule("bool", required=True),
    "reason": Rule("text", choices=REASONS, required=True),
    "agent_version": Rule("text", high=64),
    "time_utc_us": Rule("int", low=-INT64_MAX),
    "uptime_s": Rule("number", high=1e10),
    "clock_synced": Rule("bool"),
    "outbox_depth": Rule("int", high=INT32_MAX),  # a Cassandra int
    "outbox_bytes": Rule("int"),
    "next_seq": Rule("int"),
    "epoch": Rule("int", high=2**32 - 1),
    "dropped_total": Rule("int"),
    "set_aside_rows": Rule("int", high=INT32_MAX),
    "restarts": Rule("int", high=INT32_MAX),
    "unclean_restarts": Rule("int", high=INT32_MAX),
    "last_restart_lost_ms": Rule("int"),
    "storage_error": Rule("text", high=MAX_TEXT),
    "memory_batches": Rule("int", high=INT32_MAX),
    "held_unsynced": Rule("int", high=INT32_MAX),
    "badge": Rule("text", high=MAX_BADGE),
}
SENSOR_RULES: dict[str, Rule] = {
    "health": Rule("text", choices=SENSOR_HEALTH, required=True),
    "fifo_overflows": Rule("int"),
    "samples_lost": Rule("int"),
    "io_errors": Rule("int"),
    "last_error": Rule("text", high=MAX_TEXT),
}
SEQ_RULE = Rule("int")  # each end of a dropped range: 0..2^63-1, like a batch's seq


def parse_status(payload: bytes) -> VehicleStatus:
    """Parse a status message; raises ValueError with the reason for anything malformed."""
    if len(payload) > MAX_STATUS_BYTES:
        raise ValueError(f"status message of {len(payload)} bytes exceeds the limit of {MAX_STATUS_BYTES}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"status is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValueError(f"status nests deeper than {MAX_DEPTH} levels") from exc
    if _depth(data) > MAX_DEPTH:
        raise ValueError(f"status nests deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict) or data.pop("v", None) != STATUS_VERSION:
        raise ValueError("status message without a known version field 'v'")
    sensors = _sensors(data.pop("sensors", {}))
    ranges = _dropped_ranges(data.pop("dropped_ranges", []))
    quarantined = _texts("quarantined_outboxes", data.pop("quarantined_outboxes", []), MAX_QUARANTINED)
    fields = _checked(data, FIELD_RULES, "status")
    try:
        validate_vehicle_id(fields["vehicle_id"])
    except Exception as exc:  # ConfigError: worded for the reason column
        raise ValueError(f"status field vehicle_id: {exc}") from exc
    badge = fields.get("badge")
    if badge is not None and clean_badge(badge) != badge:
        raise ValueError(f"status field badge must be letters, digits, :, - and _, got {_show(badge)}")
    return VehicleStatus(sensors=sensors, dropped_ranges=ranges, quarantined_outboxes=quarantined, **fields)


def clean_badge(text: str) -> str | None:
    """A badge as a reader daemon wrote it (surrounding whitespace and a newline are normal) in the form the status
    carries: None for no badge, or for text that is no badge (too long, other characters), so a reader's garbage
    never gets the whole status refused."""
    badge = text.strip()
    if not badge or len(badge) > MAX_BADGE or not set(badge) <= _BADGE_CHARACTERS:
        return None
    return badge


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _checked(data: dict[str, Any], rules: dict[str, Rule], where: str) -> dict[str, Any]:
    unknown = sorted(set(data) - set(rules))
    if unknown:
        raise ValueError(f"{where} has unknown fields: {', '.join(unknown)[:200]}")
    missing = [name for name, rule in rules.items() if rule.required and name not in data]
    if missing:
        raise ValueError(f"{where} lacks required fields: {', '.join(missing)}")
    return {name: _check(f"{where} field {name}", value, rules[name]) for name, value in data.items()}


def _check(name: str, value: Any, rule: Rule) -> Any:
    if value is None and not rule.required:
        return None
    if rule.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {_show(value)}")
        return value
    if rule.kind == "text":
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text, got {_show(value)}")
        if rule.choices and value not in rule.choices:
            raise ValueError(f"{name} must be one of {', '.join(rule.choices)}, got {_show(value)}")
        if not rule.choices and len(value) > rule.high:
            raise ValueError(f"{name} is {len(value)} characters, at most {int(rule.high)} allowed")
        return value
    # JSON numbers: bool is an int in Python, and 1e30 is a float; neither is a count.
    whole = isinstance(value, int) and not isinstance(value, bool)
    if rule.kind == "int" and not whole:
        raise ValueError(f"{name} must be a whole number, got {_show(value)}")
    if rule.kind == "number" and not (whole or (isinstance(value, float) and math.isfinite(value))):
        raise ValueError(f"{name} must be a finite number, got {_show(value)}")
    if not rule.low <= value <= rule.high:
        raise ValueError(f"{name} = {_show(value)} is outside {rule.low:g}..{rule.high:g}")
    return value


def _sensors(value: Any) -> dict[str, SensorReport]:
    if not isinstance(value, dict) or len(value) > MAX_SENSORS:
        raise ValueError(f"status field sensors must be an object of at most {MAX_SENSORS} sensors")
    reports = {}
    for name, report in value.items():
        if len(name) > 32 or not isinstance(report, dict):
            raise ValueError(f"status field sensors: {_show(name)} must be a name of <= 32 characters with an object")
        reports[name] = SensorReport(**_checked(report, SENSOR_RULES, f"sensor {name}"))
    return reports


def _dropped_ranges(value: Any) -> list[tuple[int, int]]:
    if not isinstance(value, list) or len(value) > MAX_DROPPED_RANGES:
        raise ValueError(f"status field dropped_ranges must be a list of at most {MAX_DROPPED_RANGES} ranges")
    ranges = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise ValueError(f"status field dropped_ranges: {_show(item)} is not a [first, last] pair")
        first, last = (_check("dropped_ranges seq", end, SEQ_RULE) for end in item)
        if first > last:
            raise ValueError(f"status field dropped_ranges: [{first}, {last}] ends before it starts")
        ranges.append((first, last))
    return ranges


def _texts(name: str, value: Any, most: int) -> list[str]:
    if not isinstance(value, list) or len(value) > most:
        raise ValueError(f"status field {name} must be a list of at most {most} texts")
    return [_check(f"status field {name}", item, Rule("text", high=MAX_TEXT)) for item in value]


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
