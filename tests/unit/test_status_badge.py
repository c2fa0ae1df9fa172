"""The driver badge from the vehicle's RFID reader to vehicle_status: the agent reads its badge file (edge/badge.py),
the status carries it (fleetsense/status.py, docs/wire-format.md), the job stores it as badge_id
(cloud/status_rows.py), and the service decides when it makes an assignment (service/badges.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fleetsense.cloud.status_rows import status_writes
from fleetsense.cloud.tables import VEHICLE_STATUS
from fleetsense.edge.badge import read_badge
from fleetsense.service import assignment_writes as aw
from fleetsense.service.badges import FRESH_MS, BadgeReading, badge_assignment
from hypothesis import given
from hypothesis import strategies as st

from fleetsense.errors import ConfigError
from fleetsense.status import MAX_BADGE, VehicleStatus, clean_badge, parse_status

KEY = "fleet.van-7.status"
GOOD = {"v": 1, "vehicle_id": "van-7", "online": True, "reason": "heartbeat"}


def stored_badge(body: bytes) -> object:
    (write,) = [w for w in status_writes(KEY, body, now_ms=1_000) if w[0] == VEHICLE_STATUS.write]
    return VEHICLE_STATUS.value(write[1], "badge_id")


def test_a_badge_in_the_status_is_stored_as_badge_id_and_none_as_null() -> None:
    sent = VehicleStatus(vehicle_id="van-7", online=True, reason="heartbeat", badge="04:A2:24:B2")
    assert parse_status(sent.to_json()) == sent
    assert stored_badge(sent.to_json()) == "04:A2:24:B2"
    assert "badge" not in json.loads(VehicleStatus(vehicle_id="van-7", online=True, reason="x").to_json())
    assert stored_badge(json.dumps(GOOD).encode()) is None


@pytest.mark.parametrize(
    ("badge", "reason"),
    [(7, "badge must be text"), ("x" * (MAX_BADGE + 1), "at most 64"), ("04 A2", "letters, digits"), ("", "letters")],
)
def test_a_status_with_a_badge_that_is_none_is_rejected_with_the_reason(badge: object, reason: str) -> None:
    body = json.dumps(GOOD | {"badge": badge}).encode()
    with pytest.raises(ValueError, match=reason):
        parse_status(body)
    (rejection,) = status_writes(KEY, body, now_ms=1_000)
    assert rejection[0] != VEHICLE_STATUS.write


@given(st.text(max_size=80))
def test_whatever_a_reader_writes_the_agent_sends_a_badge_the_cloud_accepts_or_none(text: str) -> None:
    badge = clean_badge(text)
    body = json.dumps(GOOD | {"badge": badge}).encode()
    assert parse_status(body).badge == badge


def test_the_agent_reads_its_badge_file_and_an_absent_or_garbled_one_is_no_badge(tmp_path: Path) -> None:
    badge_file = tmp_path / "badge"
    assert read_badge("") is None
    assert read_badge(str(badge_file)) is None  # no badge in the reader: the daemon removed the file
    badge_file.write_text("04:A2:24:B2\n")
    assert read_badge(str(badge_file)) == "04:A2:24:B2"
    badge_file.write_bytes(b"\x00\xff garbage")
    assert read_badge(str(badge_file)) is None
    badge_file.write_text("A" * 10_000)
    assert read_badge(str(badge_file)) is None
    assert read_badge(str(tmp_path)) is None  # a directory: unreadable, logged


def held(driver: str, from_ms: int) -> aw.Stored:
    return aw.Stored(assignment=aw.assignment("van-7", driver, from_ms, None), source="api", set_by="m", set_at_ms=0)


@pytest.mark.parametrize(
    ("badge", "online", "age_ms", "running", "badge_driver", "assigns"),
    [
        ("B1", True, 0, None, "ann", True),  # nobody holds the van: the badge's driver does
        ("B1", True, 0, held("bob", 0), "ann", True),  # a shift change by badge
        ("B1", True, 0, held("ann", 0), "ann", False),  # already hers
        ("B1", True, 0, held("bob", 10_000), "ann", False),  # set after the reading arrived
        ("B1", True, FRESH_MS + 1, None, "ann", False),  # too old to say who drives now
        ("B1", False, 0, None, "ann", False),  # the vehicle is offline
        ("B1", True, 0, None, None, False),  # a badge no driver holds
        (None, True, 0, held("bob", 0), None, False),  # no badge: nothing ends
    ],
)
def test_when_a_badge_makes_an_assignment(
    badge: str | None, online: bool, age_ms: int, running: aw.Stored | None, badge_driver: str | None, assigns: bool
) -> None:
    reading = BadgeReading(vehicle_id="van-7", badge_id=badge, online=online, received_ms=5_000)
    assert badge_assignment(reading, running, badge_driver, now_ms=5_000 + age_ms) is assigns


def test_the_agents_status_carries_the_badge_its_reader_holds_and_the_job_stores_it(tmp_path: Path) -> None:
    import dataclasses

    from fleetsense.device_config import DriverConfig
    from tests.unit.test_agent_virtual_time import Drive, scripted_clock

    badge_file = tmp_path / "badge"
    run = Drive(tmp_path, scripted_clock(0.0, synced=True))
    run.agent.config = dataclasses.replace(run.agent.config, driver=DriverConfig(badge_file=str(badge_file)))
    assert run.agent.status("heartbeat", []).badge is None  # no badge in the reader yet
    badge_file.write_text("04:A2:24:B2\n")
    status = run.agent.status("heartbeat", [])
    run.stop(clean=True)
    assert status.badge == "04:A2:24:B2"
    assert stored_badge(status.to_json().replace(b"van-007", b"van-7")) == "04:A2:24:B2"


def test_an_edge_config_names_its_badge_file_in_a_driver_section(tmp_path: Path) -> None:
    from fleetsense.device_config import parse

    broker = {"host": "h", "username": "van-7", "password": "p"}
    base = {"vehicle_id": "van-7", "broker": broker, "storage": {"state_dir": "/s"}}
    assert parse(base, "t").driver.badge_file == ""
    assert parse(base | {"driver": {"badge_file": "/run/fleetsense/badge"}}, "t").driver.badge_file.endswith("badge")
    with pytest.raises(ConfigError, match="unknown key"):
        parse(base | {"driver": {"badge": "x"}}, "t")
