"""The status message's schema (fleetsense/status.py): every field's type, range and size checked, so a hostile
or broken device's status is refused with a reason and never raises in the job (issue 12)."""

from __future__ import annotations

import json

import pytest
from fleetsense.cloud.status_rows import status_writes
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsense.status import MAX_STATUS_BYTES, SensorReport, VehicleStatus, parse_status

KEY = "fleet.van-7.status"
GOOD = {"v": 1, "vehicle_id": "van-7", "online": True, "reason": "heartbeat"}


def status(**fields: object) -> bytes:
    return json.dumps(GOOD | fields).encode()


def test_a_full_status_from_the_agent_round_trips() -> None:
    sent = VehicleStatus(
        vehicle_id="van-7",
        online=True,
        reason="heartbeat",
        agent_version="0.1.0",
        time_utc_us=1_790_000_000_000_000,
        uptime_s=12.5,
        clock_synced=True,
        sensors={"imu": SensorReport(health="degraded", io_errors=3, last_error="EIO")},
        outbox_depth=4,
        outbox_bytes=4000,
        next_seq=2**63 - 1,
        dropped_total=10,
        dropped_ranges=[(5, 9)],
        set_aside_rows=0,
        quarantined_outboxes=["outbox.corrupt-1.sqlite"],
    )
    assert parse_status(sent.to_json()) == sent


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (status(online="yes"), "online must be true or false"),
        (status(reason=5), "reason must be text"),
        (status(reason="gone fishing"), "reason must be one of"),
        (status(sensors=[1]), "sensors must be an object"),
        (status(sensors={"imu": {"health": "ok", "io_errors": -1}}), "io_errors = -1 is outside"),
        (status(sensors={"imu": {"health": 1}}), "health must be text"),
        (status(outbox_depth=1e30), "outbox_depth must be a whole number"),
        (status(outbox_depth=2**31), "outbox_depth = 2147483648 is outside"),
        (status(dropped_ranges=[[0, 2**63]]), "is outside"),
        (status(dropped_ranges=[[5, 4]]), "ends before it starts"),
        (status(dropped_ranges=[[1, 2, 3]]), "not a \\[first, last\\] pair"),
        (status(next_seq=True), "must be a whole number"),
        (status(uptime_s=float("nan")), "must be a finite number"),
        (status(vehicle_id="van 7"), "vehicle_id"),
        (status(surprise=1), "unknown fields: surprise"),
        (json.dumps({"v": 1, "online": True}).encode(), "lacks required fields: vehicle_id, reason"),
        (b"[" * 1000 + b"]" * 1000, "nests deeper"),
        (status(sensors={"imu": {"health": "ok", "last_error": [[[[[1]]]]]}}), "nests deeper"),
        (b"{" + b" " * MAX_STATUS_BYTES + b"}", "exceeds the limit"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "version field"),
    ],
)
def test_a_malformed_status_is_refused_with_its_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_status(body)
    writes = status_writes(KEY, body, now_ms=1)
    assert [name for name, _ in writes] == ["rejected"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
FIELDS = [*sorted(GOOD), "sensors", "dropped_ranges", "outbox_depth", "uptime_s", "next_seq"]


@settings(max_examples=1500, deadline=None)
@given(JSON_VALUES, st.sampled_from(FIELDS))
def test_any_json_in_any_field_is_parsed_or_refused_never_raised(value: object, name: str) -> None:
    body = json.dumps(GOOD | {name: value}).encode()
    writes = status_writes(KEY, body, now_ms=1)
    assert writes and writes[0][0] in ("status", "rejected")


def test_the_wire_spec_lists_every_status_field_with_its_rule() -> None:
    from pathlib import Path

    from fleetsense.status import FIELD_RULES, REASONS, SENSOR_HEALTH, SENSOR_RULES

    spec = (Path(__file__).resolve().parents[2] / "docs" / "wire-format.md").read_text()
    section = spec[spec.index("## Status messages") : spec.index("## Versioning")]
    rows = {line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")}
    assert rows == set(FIELD_RULES) | {"sensors", "dropped_ranges", "quarantined_outboxes"}
    for name in [*SENSOR_RULES, *REASONS, *SENSOR_HEALTH]:
        assert f"`{name}`" in section, name
