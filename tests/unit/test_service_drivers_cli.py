"""`fleetsense driver ...` (fleetsense/stack/driver_admin.py) over the in-memory database: the command line's
parsing and the same write path as the API."""

from __future__ import annotations

import asyncio

import pytest

from fleetsense.cli import build_parser
from fleetsense.errors import ConfigError
from fleetsense.stack import driver_admin
from tests.unit.service_memory_db import MemoryDb


def drive(db: MemoryDb, *argv: str) -> list[str]:
    said: list[str] = []
    args = build_parser().parse_args(["driver", *argv])
    asyncio.run(driver_admin._action(db, args, said.append))
    return said


def test_add_assign_unassign_and_correct_from_the_command_line() -> None:
    db = MemoryDb()
    drive(db, "add", "ann", "--name", "Ann", "--badge", "B-1", "--manager", "mia")
    drive(db, "add", "bob")
    assert drive(db, "list")[0] == "ann\tAnn\tbadge=B-1\tmanager=mia"
    assert drive(db, "assign", "ann", "van-1", "--from", "2026-12-06T08:00Z") == [
        "ann has van-1 from 2026-12-06T08:00:00Z to open"
    ]
    drive(db, "assign", "bob", "van-1", "--from", "2026-12-06T14:00+00:00")
    drive(db, "unassign", "van-1", "--at", "2026-12-06T18:00:00Z")
    history = drive(db, "history", "van-1")
    assert [line.split("\t")[1:3] for line in history] == [
        ["ann", "2026-12-06T08:00:00Z .. 2026-12-06T14:00:00Z"],
        ["bob", "2026-12-06T14:00:00Z .. 2026-12-06T18:00:00Z"],
    ]
    bobs_start = history[1].split("\t")[0]
    drive(db, "correct", "van-1", bobs_start, "--to", "open")
    assert drive(db, "history", "van-1")[1].endswith("2026-12-06T14:00:00Z .. open\tcli")


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (("assign", "ann", "van-1", "--from", "2026-12-06T08:00"), "no UTC offset"),
        (("assign", "ann", "van-1", "--from", "yesterday"), "is no time"),
        (("assign", "zed", "van-1"), "no driver 'zed'"),
        (("add", "a/b"), "is no driver id"),
        (("unassign", "van-9"), "nobody has van-9"),
        (("correct", "van-1", "5"), "nothing to correct"),
    ],
)
def test_a_command_line_mistake_says_what_to_do(argv: tuple[str, ...], match: str) -> None:
    db = MemoryDb()
    drive(db, "add", "ann")
    with pytest.raises(ConfigError, match=match):
        drive(db, *argv)


def test_provisioning_registers_the_vehicle_in_the_fleet_and_a_registry_out_of_reach_is_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetsense import cli
    from fleetsense.errors import StackError

    monkeypatch.setattr(driver_admin, "register_vehicles", lambda config, ids: [i for i in ids if i != "van-1"])
    cli._register_in_fleet(None, ["van-1", "van-2"])
    assert "registered in the fleet: van-2" in capsys.readouterr().out

    def down(config: object, ids: list[str]) -> list[str]:
        raise StackError("no Cassandra node answers at 127.0.0.1:9042")

    monkeypatch.setattr(driver_admin, "register_vehicles", down)
    cli._register_in_fleet(None, ["van-3"])
    assert "not registered in the fleet (no Cassandra node answers" in capsys.readouterr().out
