"""`fleetsense driver ...`: the driver registry and assignments from the command line, written straight to Cassandra
as the service's user with the stack's configuration, through the same functions as the API (service/drivers.py,
service/assignment_writes.py), so the rules and the rows are the same.

Why not through the HTTP API with a token: the command then works before any API runs (setting up a fleet, the
demo assigning its vans) and needs no account; what it gives up is the API's in-process lock per vehicle, so a
command and an API request changing the same vehicle at the same moment could race (docs/service.md)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fleetsense.errors import ConfigError
from fleetsense.stack.layout import StackConfig

FLEET = "default"  # one fleet per installation (ServeSettings.fleet_id)
T = TypeVar("T")


def parse_time(text: str) -> int:
    """ISO 8601 with an offset ("2026-12-06T08:00Z"), or `now`: ms since 1970."""
    from fleetsense.service.registry_http import EPOCH, LATEST, to_ms

    if text == "now":
        return to_ms(datetime.now(UTC))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is no time", hint="write it as 2026-12-06T08:00:00Z, or now") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{text!r} has no UTC offset", hint="add Z for UTC, or the offset: 08:00+01:00")
    if not EPOCH <= moment < LATEST:
        raise ConfigError(f"{text!r} is outside 1970..2099", hint="give a time of the fleet's life")
    return to_ms(moment)


def _show_ms(value: int | None) -> str:
    if value is None:
        return "open"
    return datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run(config: StackConfig, args: argparse.Namespace, say: Callable[[str], None] = print) -> int:
    from fleetsense.cloud.schema import KEYSPACE
    from fleetsense.service.db import Db
    from fleetsense.stack.cassandra_auth import SERVICE, session_as

    with session_as(config, SERVICE) as session:
        return asyncio.run(_action(Db(session, KEYSPACE), args, say))


async def _action(db: Any, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from fleetsense.service import assignment_writes as aw
    from fleetsense.service import drivers as d

    now = parse_time("now")
    who: dict[str, Any] = {"set_by": "cli", "now_ms": now}
    if args.action == "add":
        driver_id = d.validate_driver_id(args.driver_id)
        if args.badge is not None:
            d.validate_badge_id(args.badge)
        if await d.get_driver(db, FLEET, driver_id) is not None:
            raise d.Conflict(f"driver {driver_id} exists", hint="the API's PATCH /v1/drivers/{id} changes them")
        driver = d.Driver(
            driver_id=driver_id,
            name=args.name or driver_id,
            employee_no=args.employee_no,
            badge_id=args.badge,
            manager=args.manager,
            created_ms=now,
        )
        await d.save_driver(db, FLEET, driver, before=None)
        say(f"added driver {driver_id}")
    elif args.action == "list":
        for x in await d.list_drivers(db, FLEET):
            state = "" if x.active else f" (retired {_show_ms(x.retired_ms)})"
            say(f"{x.driver_id}\t{x.name}\tbadge={x.badge_id or '-'}\tmanager={x.manager or '-'}{state}")
    elif args.action == "assign":
        to_ms = parse_time(args.to) if args.to else None
        made = await aw.create(
            db,
            FLEET,
            vehicle_id=args.vehicle_id,
            driver_id=args.driver_id,
            from_ms=parse_time(args.start),
            to_ms=to_ms,
            source="cli",
            **who,
        )
        say(
            f"{made.assignment.driver_id} has {args.vehicle_id} from {_show_ms(made.from_ms)} to {_show_ms(made.to_ms)}"
        )
    elif args.action == "unassign":
        at = parse_time(args.at)
        held = aw.running(await aw.vehicle_history(db, args.vehicle_id), at)
        if held is None:
            raise d.NotFound(f"nobody has {args.vehicle_id} at {_show_ms(at)}", hint="`fleetsense driver history`")
        await aw.end(db, FLEET, vehicle_id=args.vehicle_id, from_ms=held.from_ms, at_ms=at, **who)
        say(f"{held.assignment.driver_id}'s assignment of {args.vehicle_id} ends at {_show_ms(at)}")
    elif args.action == "correct":
        changes: dict[str, Any] = {}
        if args.driver:
            changes["driver_id"] = args.driver
        if args.start:
            changes["new_from_ms"] = parse_time(args.start)
        if args.to:
            changes["to_ms"] = None if args.to == "open" else parse_time(args.to)
        if not changes:
            raise ConfigError("nothing to correct", hint="give --driver, --from or --to")
        fixed = await aw.correct(db, FLEET, vehicle_id=args.vehicle_id, from_ms=args.from_ms, **changes, **who)
        say(f"corrected: {fixed.assignment.driver_id} from {_show_ms(fixed.from_ms)} to {_show_ms(fixed.to_ms)}")
    elif args.action == "history":
        for s in await aw.vehicle_history(db, args.vehicle_id):
            say(f"{s.from_ms}\t{s.assignment.driver_id}\t{_show_ms(s.from_ms)} .. {_show_ms(s.to_ms)}\t{s.source}")
    return 0


def register_vehicles(config: StackConfig, vehicle_ids: list[str]) -> list[str]:
    """Register provisioned vehicles in the fleet (`fleet_vehicles`: the fleet view and the badge sweep read it),
    those not registered yet; the ids registered. Raises a FleetsenseError when Cassandra cannot be reached."""
    from fleetsense.cloud.schema import KEYSPACE
    from fleetsense.service.db import Db
    from fleetsense.service.vehicles_registry import register_missing
    from fleetsense.stack.cassandra_auth import SERVICE, session_as

    with session_as(config, SERVICE, connect_timeout_s=5.0) as session:
        db = Db(session, KEYSPACE)
        return asyncio.run(register_missing(db, FLEET, vehicle_ids, now_ms=parse_time("now")))


DEMO_DRIVERS = ("Ada Moreau", "Bilal Osei", "Chen Wei", "Dana Kowalski", "Emeka Adeyemi", "Freya Lund")


def assign_demo_drivers(config: StackConfig, starts_ms: dict[str, int], *, manager: str) -> list[str]:
    """The demo's drivers, one per van, registered (with `manager` coaching them) and assigned from the van's start;
    lines saying who drives what. A van already held by a driver at its start keeps them (a demo run again)."""
    from fleetsense.cloud.schema import KEYSPACE
    from fleetsense.service import assignment_writes as aw
    from fleetsense.service import drivers as d
    from fleetsense.service.db import Db
    from fleetsense.service.vehicles_registry import register_missing
    from fleetsense.stack.cassandra_auth import SERVICE, session_as

    async def assign(db: Any) -> list[str]:
        now = parse_time("now")
        await register_missing(db, FLEET, list(starts_ms), now_ms=now)
        lines = []
        known = len(await d.list_drivers(db, FLEET))  # names go on where an earlier call stopped
        for index, (vehicle_id, start_ms) in enumerate(sorted(starts_ms.items()), start=known):
            held = aw.running(await aw.vehicle_history(db, vehicle_id), start_ms)
            if held is not None:
                lines.append(f"{held.assignment.driver_id} drives {vehicle_id}")
                continue
            name = DEMO_DRIVERS[index % len(DEMO_DRIVERS)]
            driver_id = f"driver-{vehicle_id}"
            if await d.get_driver(db, FLEET, driver_id) is None:
                driver = d.Driver(driver_id=driver_id, name=name, manager=manager, created_ms=now)
                await d.save_driver(db, FLEET, driver, before=None)
            await aw.create(
                db,
                FLEET,
                vehicle_id=vehicle_id,
                driver_id=driver_id,
                from_ms=start_ms,
                to_ms=None,
                source="cli",
                set_by="demo",
                now_ms=now,
            )
            lines.append(f"{driver_id} ({name}) drives {vehicle_id}")
        return lines

    with session_as(config, SERVICE) as session:
        return asyncio.run(assign(Db(session, KEYSPACE)))


def add_parser(sub: Any) -> None:
    """`fleetsense driver ...` (argparse only: the service loads when a command runs)."""
    driver = sub.add_parser("driver", help="drivers and who had which vehicle when (written to Cassandra directly)")
    actions = driver.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register a driver")
    add.add_argument("driver_id")
    add.add_argument("--name")
    add.add_argument("--employee-no")
    add.add_argument("--badge", help="their RFID badge, as the vehicle's reader reports it")
    add.add_argument("--manager", help="the username of the manager who reviews their events")
    actions.add_parser("list", help="every driver of the fleet")
    assign = actions.add_parser("assign", help="give a driver a vehicle (a running assignment ends: a shift change)")
    assign.add_argument("driver_id")
    assign.add_argument("vehicle_id")
    assign.add_argument("--from", dest="start", default="now", help="ISO 8601 with offset, or now (default)")
    assign.add_argument("--to", help="when they give it back (default: open)")
    unassign = actions.add_parser("unassign", help="end the assignment holding a vehicle")
    unassign.add_argument("vehicle_id")
    unassign.add_argument("--at", default="now")
    correct = actions.add_parser("correct", help="correct an assignment named by its vehicle and start in ms")
    correct.add_argument("vehicle_id")
    correct.add_argument("from_ms", type=int, help="its start, ms since 1970 (`fleetsense driver history` shows it)")
    correct.add_argument("--driver")
    correct.add_argument("--from", dest="start")
    correct.add_argument("--to", help="a time, or open")
    history = actions.add_parser("history", help="a vehicle's assignments")
    history.add_argument("vehicle_id")
