"""Result versions in the service (issue 19): every read of a result table goes to the active version's keyspace and
every other read to the main one (service/db.py over cloud/query.py's rule); the active version is cached for a
bounded time and each request pins one (service/result_version.py), so a flip in the middle of a request never
mixes versions in its answer (4,000 seeded random sequences of flips, clock steps and concurrent requests, through
the real `Db` over an in-memory Cassandra session); a cursor made under one version is refused under another; the
API names the version it serves and lists them; the trace and the catalogue show the served version's thresholds.

FLEETSENSE_SIM_CASES=N runs N seeds; FLEETSENSE_SIM_SEED=N replays one."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import pkgutil
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fleetsense.cloud import query
from fleetsense.cloud import tables as t
from fleetsense.cloud.analytics.events import DEFAULT_VEHICLE_CLASS, VEHICLE_CLASSES
from fleetsense.cloud.result_versions import ResultVersion, settings_json
from fleetsense.cloud.table_model import Read
from fleetsense.service import cursor as c
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.context import ServiceContext
from fleetsense.service.db import Db
from fleetsense.service.result_version import (
    HEADER,
    Active,
    ActiveVersionCache,
    class_thresholds,
    code_only,
    default_class,
    pinned_version,
)
from fleetsense.service.results_http import PinResultsVersion
from fleetsense.service.roles import Principal, Role
from fleetsense.service.settings import ServeSettings
from hypothesis import given
from hypothesis import strategies as st

from fleetsense.errors import ConfigError

MAIN = "fleetsense"
RESULT_TABLE_NAMES = {"vehicle_events", "fleet_events", "vehicle_minutes", "daily_scores", "trips"}
_EVENTS = t.EVENTS_BY_VEHICLE.read("start_time", "kind", where=("vehicle_id", "day_bucket"))
_PROFILE = t.VEHICLE_PROFILES.read("vehicle_class", where=("vehicle_id",))
CASES = int(os.environ.get("FLEETSENSE_SIM_CASES", "4000"))
SEED_ENV = os.environ.get("FLEETSENSE_SIM_SEED")


# --- an in-memory Cassandra session: what Db asks of the driver ---------------------------------------------------

_FROM = re.compile(r" (?:FROM|INTO) (\w+)\.(\w+)")


@dataclass
class _Prepared:
    cql: str
    consistency_level: int = 0

    def bind(self, params: list[Any]) -> _Bound:
        return _Bound(self.cql, params)


@dataclass
class _Bound:
    cql: str
    params: list[Any]
    fetch_size: int = 5000


@dataclass
class _Done:
    """A request the driver has completed: its callback runs at once (Db settles it on the loop)."""

    rows: list[Any]
    paging_state: bytes | None

    def add_callbacks(self, callback: Any, errback: Any) -> None:
        callback(self.rows)

    def result(self) -> Any:
        return SimpleNamespace(current_rows=self.rows, paging_state=self.paging_state)


@dataclass
class FakeSession:
    """`result_versions` as its one partition holds it (the pointer: None until a flip, as in Cassandra), the rows
    of any other table per (keyspace, table), and a log of where each statement ran."""

    pointer: int | None = None
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)
    rows: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    ran: list[tuple[str, str]] = field(default_factory=list)
    prepares: int = 0

    def add_version(self, version: int, *, settings: dict[str, str] | None = None) -> None:
        self.versions[version] = {
            "fleet": "default",
            "version": version,
            "results_keyspace": f"{MAIN}_r{version}" if version > 1 else MAIN,
            "parent": None if version == 1 else 1,
            "from_time": datetime(2026, 12, 1),
            "settings_json": settings_json(settings or {}),
            "job_name": f"fleetsense-reprocess-r{version}",
            "state": "replaying",
            "created_at": datetime(2026, 12, 1),
            "claim": None,
            "promoted_at": None,
            "retire_after": None,
        }

    def flip(self, version: int) -> None:
        if version not in self.versions:
            self.add_version(version)
        self.pointer = version

    def prepare(self, cql: str) -> _Prepared:
        self.prepares += 1
        return _Prepared(cql)

    def execute_async(self, bound: _Bound, paging_state: bytes | None = None) -> _Done:
        found = _FROM.search(bound.cql)
        assert found, bound.cql
        keyspace, table = found.groups()
        assert "{ks}" not in bound.cql
        self.ran.append((keyspace, table))
        if table == t.RESULT_VERSIONS.name:
            assert keyspace == MAIN, "the versions are read from the main keyspace"
            rows = [SimpleNamespace(**row, active_version=self.pointer) for _, row in sorted(self.versions.items())]
        else:
            rows = self.rows.get((keyspace, table), [])
        start = int(paging_state or b"0")
        end = start + bound.fetch_size
        return _Done(rows[start:end], str(end).encode() if end < len(rows) else None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _db(session: FakeSession, *, ttl_s: float = 2.0, clock: Clock | None = None) -> Db:
    return Db(session, MAIN, results_cache_s=ttl_s, clock=clock or Clock())


# --- the rule: which reads are routed -------------------------------------------------------------------------------


def test_exactly_the_five_result_tables_are_versioned() -> None:
    assert {table.name for table in t.RESULT_TABLES} == RESULT_TABLE_NAMES


def _current_tables() -> list[t.Table]:
    return [table for table in t.TABLES if table.dropped is None and table.retired is None]


@pytest.mark.parametrize("table", _current_tables(), ids=lambda table: table.name)
def test_a_read_of_a_result_table_goes_to_the_results_keyspace_and_any_other_to_the_main_one(table: t.Table) -> None:
    read = table.read(table.key_names[0], where=table.partition_key)
    assert query.table_of(read) == table.name
    assert query.reads_results(read) == table.versioned
    routed = query.Keyspaces(main=MAIN, results="fleetsense_r7").of(read)
    assert routed == ("fleetsense_r7" if table.versioned else MAIN)
    assert query.keyspaces_of("test_ks").of(read) == "test_ks"  # one name: every table there (tests)

    async def through_the_db() -> str:
        session = FakeSession()
        session.flip(7)
        await _db(session).rows(read, [None] * len(table.partition_key))
        return session.ran[-1][0]

    assert asyncio.run(through_the_db()) == routed


def _declared_reads() -> Iterator[tuple[str, Read]]:
    import fleetsense.service as service

    modules = [f"fleetsense.service.{m.name}" for m in pkgutil.iter_modules(service.__path__)] + [query.__name__]
    for name in modules:
        for attr, value in vars(importlib.import_module(name)).items():
            if isinstance(value, Read):
                yield f"{name}.{attr}", value


def test_every_read_the_service_and_the_query_cli_declare_is_routed_by_its_tables_flag() -> None:
    by_name = {table.name: table for table in t.TABLES}
    found = dict(_declared_reads())
    assert len(found) > 40  # the scan finds the readers' statements
    routed = set()
    for where, read in found.items():
        table = by_name[query.table_of(read)]
        assert query.reads_results(read) == table.versioned, where
        if table.versioned:
            routed.add(table.name)
    assert routed == RESULT_TABLE_NAMES  # every result table has a reader, and each of them is routed


def test_the_active_keyspaces_for_the_cli_follow_the_pointer() -> None:
    class SyncSession:
        def __init__(self, fake: FakeSession) -> None:
            self.fake = fake

        def execute(self, statement: Any, params: Any = ()) -> list[Any]:
            return self.fake.execute_async(_Bound(statement.query_string, list(params))).rows

    fake = FakeSession()
    assert query.active_keyspaces(SyncSession(fake), MAIN) == query.Keyspaces(MAIN, MAIN)
    fake.flip(3)
    assert query.active_keyspaces(SyncSession(fake), MAIN) == query.Keyspaces(MAIN, "fleetsense_r3")
    fake.flip(1)
    assert query.active_keyspaces(SyncSession(fake), MAIN) == query.Keyspaces(MAIN, MAIN)


# --- the cache and the pin ------------------------------------------------------------------------------------------


def _source(pointer: list[int], reads: list[int] | None = None, *, steps: int = 0) -> Any:
    async def read() -> tuple[int, list[ResultVersion]]:
        for _ in range(steps):
            await asyncio.sleep(0)
        if reads is not None:
            reads.append(pointer[0])
        v = pointer[0]
        return v, [ResultVersion(version=v, results_keyspace=f"ks_r{v}", state="active")]

    return read


def test_the_cache_reads_once_per_ttl_and_a_flip_shows_after_it() -> None:
    clock, pointer = Clock(), [1]
    cache = ActiveVersionCache(_source(pointer), main_keyspace=MAIN, ttl_s=2.0, clock=clock)

    async def run() -> None:
        assert (await cache.current()).version == 1
        pointer[0] = 2
        clock.now += 1.999
        assert (await cache.current()).version == 1 and cache.reads == 1
        clock.now += 0.001
        assert (await cache.current()).version == 2 and cache.reads == 2

    asyncio.run(run())


def test_callers_during_a_read_wait_for_it_and_a_failed_read_is_tried_again() -> None:
    clock, pointer, failing = Clock(), [4], [True]

    async def read() -> tuple[int, list[ResultVersion]]:
        await asyncio.sleep(0)
        if failing[0]:
            raise RuntimeError("Cassandra is away")
        return pointer[0], []

    cache = ActiveVersionCache(read, main_keyspace=MAIN, ttl_s=2.0, clock=clock)

    async def run() -> None:
        with pytest.raises(RuntimeError):
            await cache.current()
        failing[0] = False
        found = await asyncio.gather(*(cache.current() for _ in range(50)))
        assert {a.version for a in found} == {4} and cache.reads == 2
        assert found[0].keyspaces == query.Keyspaces(MAIN, "fleetsense_r4")  # a pointer with no row yet

    asyncio.run(run())


def test_a_flip_in_the_middle_of_a_request_does_not_reach_it() -> None:
    session, clock = FakeSession(), Clock()
    session.rows[(MAIN, "vehicle_events")] = [SimpleNamespace(at=MAIN)]
    session.rows[("fleetsense_r2", "vehicle_events")] = [SimpleNamespace(at="fleetsense_r2")]
    db = _db(session, clock=clock)

    async def run() -> None:
        with db.pinned():
            before = await db.rows(_EVENTS, ("van-1", date(2026, 12, 1)))
            session.flip(2)
            clock.now += 60
            during = await asyncio.gather(*(db.rows(_EVENTS, ("van-1", date(2026, 12, 1))) for _ in range(3)))
            assert pinned_version() == 1
        after = await db.rows(_EVENTS, ("van-1", date(2026, 12, 1)))
        assert [r.at for r in before] == [r.at for rows in during for r in rows][:1] == [MAIN]
        assert [r.at for r in after] == ["fleetsense_r2"]

    asyncio.run(run())


def test_a_pin_inside_a_pin_is_the_same_and_one_of_another_db_is_not_used() -> None:
    session = FakeSession()
    one, other = _db(session), _db(session)
    with one.pinned() as outer, one.pinned() as inner:
        assert inner is outer
        with other.pinned() as third:
            assert third is not outer


def test_reads_of_non_result_tables_never_read_the_versions() -> None:
    session = FakeSession()
    db = _db(session)

    async def run() -> None:
        with db.pinned():
            await db.rows(_PROFILE, ("van-1",))
            await db.write(t.DRIVERS.row(**dict.fromkeys(t.DRIVERS.written_columns, "x")))

    asyncio.run(run())
    assert t.RESULT_VERSIONS.name not in {table for _, table in session.ran}


# --- seeded random flips and requests -------------------------------------------------------------------------------


@dataclass
class _Request:
    started_seq: int  # the event counter when its first read was asked
    started_at: float  # the clock then
    keyspaces: list[str] = field(default_factory=list)
    ended_seq: int | None = None


async def _scenario(seed: int) -> None:
    rng = random.Random(seed)
    ttl_s = rng.choice((0.5, 2.0, 5.0))
    session, clock = FakeSession(), Clock()
    session.add_version(1)
    flips: list[tuple[float, int]] = []  # (clock, version): each flip to a new, higher number
    for v in range(1, 40):
        session.rows[(f"{MAIN}_r{v}" if v > 1 else MAIN, "vehicle_events")] = [SimpleNamespace(at=v)]
    db = _db(session, ttl_s=ttl_s, clock=clock)
    seq = [0]
    requests: list[_Request] = []

    async def read(request: _Request) -> None:
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)
        rows = await db.rows(_EVENTS, ("van-1", date(2026, 12, 1)))
        request.keyspaces += [row.at for row in rows]

    async def one_request() -> None:
        request = _Request(seq[0], clock.now)
        requests.append(request)
        with db.pinned():
            for _ in range(rng.randrange(1, 4)):
                if rng.random() < 0.4:
                    await asyncio.gather(*(read(request) for _ in range(rng.randrange(2, 5))))
                else:
                    await read(request)
        seq[0] += 1
        request.ended_seq = seq[0]

    tasks = []
    for _ in range(rng.randrange(5, 40)):
        roll = rng.random()
        if roll < 0.2:
            version = (flips[-1][1] if flips else 1) + 1
            session.flip(version)
            flips.append((clock.now, version))
        elif roll < 0.45:
            clock.now += rng.choice((0.0, 0.1, ttl_s / 2, ttl_s, ttl_s * 3))
        else:
            tasks.append(asyncio.create_task(one_request()))
        seq[0] += 1
        for _ in range(rng.randrange(4)):
            await asyncio.sleep(0)
    await asyncio.gather(*tasks)

    for request in requests:
        seen = set(request.keyspaces)
        assert len(seen) == 1, f"seed {seed}: one request read versions {sorted(seen)}"
        (version,) = seen
        # Every flip made more than the cache time before the request began is in what it read.
        due = [v for at, v in flips if at < request.started_at - ttl_s]
        assert version >= max(due, default=1), f"seed {seed}: version {version} after flips {flips}"
        assert version <= max((v for _, v in flips), default=1)
        # A request that began after another ended never reads an older version than it did.
        for earlier in requests:
            if earlier.ended_seq is not None and earlier.ended_seq <= request.started_seq:
                assert version >= earlier.keyspaces[0], f"seed {seed}: a later request read an older version"


@pytest.mark.parametrize("chunk", range(8))
def test_random_flips_and_requests_never_show_a_request_two_versions(chunk: int) -> None:
    seeds = [int(SEED_ENV)] if SEED_ENV else range(chunk, CASES, 8)

    async def run() -> None:
        for seed in seeds:
            await _scenario(seed)

    if SEED_ENV and chunk:
        return
    asyncio.run(run())


# --- cursors --------------------------------------------------------------------------------------------------------

KEY = c.signing_key("a secret")
QUERY = c.query_tag("events", None, None, None)


def test_a_cursor_of_results_continues_under_its_version_only() -> None:
    text = c.encode(c.Cursor(("2026-12-06", 13), b"state", (1, 2), results_version=2), key=KEY, query=QUERY)
    assert c.decode(text, key=KEY, query=QUERY, results_version=2).results_version == 2
    with pytest.raises(c.CursorError, match=r"reprocessed into version 3.*start the list again"):
        c.decode(text, key=KEY, query=QUERY, results_version=3)
    # A cursor of no results (a list of vehicles), and any cursor outside a pinned request, is not checked.
    plain = c.encode(c.Cursor(("van-1",)), key=KEY, query=QUERY)
    assert c.decode(plain, key=KEY, query=QUERY, results_version=3).results_version is None
    assert c.decode(text, key=KEY, query=QUERY).results_version == 2


def test_a_cursor_is_checked_against_the_version_the_request_is_pinned_to() -> None:
    session = FakeSession()
    session.flip(5)
    db = _db(session)
    text = c.encode(c.Cursor(("x",), None, (), results_version=4), key=KEY, query=QUERY)

    async def run() -> None:
        with db.pinned() as pin:
            await pin.active()
            with pytest.raises(c.CursorError, match="version 5"):
                c.decode(text, key=KEY, query=QUERY)

    asyncio.run(run())


@given(st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                 st.integers(-(2**70), 2**70)))  # fmt: skip
def test_any_signed_results_version_is_a_version_or_a_cursor_error(made_under: Any) -> None:
    payload = json.dumps({"v": 1, "q": QUERY, "p": [1], "s": None, "n": [], "r": made_under}).encode()
    text = c._b64(payload + c._mac(KEY, payload))
    try:
        decoded = c.decode(text, key=KEY, query=QUERY, results_version=7)
    except c.CursorError as exc:
        assert made_under is not None and (type(made_under) is not int or made_under != 7), exc
        return
    assert made_under is None or made_under == 7
    assert decoded.results_version == made_under


# --- the API --------------------------------------------------------------------------------------------------------


def _app(db: Any) -> Any:
    settings = ServeSettings(secret_key="k" * 32)
    app = create_app(context=ServiceContext(db=db, settings=settings))
    if not any(m.cls is PinResultsVersion for m in app.user_middleware):
        app.add_middleware(PinResultsVersion)  # until service/app.py adds it (the test below says so)
    app.dependency_overrides[current_principal] = lambda: Principal("v", Role.VIEWER, "token")
    return app


async def _get(app: Any, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get(path, params=params)


def test_the_app_pins_every_request_to_one_result_version() -> None:
    app = create_app(context=None)
    assert any(m.cls is PinResultsVersion for m in app.user_middleware), (
        "service/app.py: app.add_middleware(PinResultsVersion) (service/results_http.py)"
    )


def _event_row(vehicle: str, start: datetime, peak: float) -> SimpleNamespace:
    end = start + timedelta(seconds=1)
    return SimpleNamespace(vehicle_id=vehicle, day_bucket=start.date(), start_time=start, kind="harsh_brake",
                           end_time=end, duration_ms=1000, peak=peak, peak_unit="g")  # fmt: skip


def test_the_event_list_reads_the_active_version_names_it_and_refuses_an_old_versions_cursor() -> None:
    session, clock = FakeSession(), Clock()
    start = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0) - timedelta(hours=1)
    session.rows[(MAIN, "fleet_events")] = [_event_row("van-1", start, 0.5), _event_row("van-2", start, 0.6)]
    session.rows[("fleetsense_r2", "fleet_events")] = [_event_row("van-1", start, 0.4)]
    app = _app(_db(session, clock=clock))

    async def run() -> None:
        first = await _get(app, "/v1/events", limit=1)
        assert first.status_code == 200 and first.headers[HEADER] == "1"
        assert [e["peak"] for e in first.json()["items"]] == [0.5]
        cursor = first.json()["next_cursor"]
        same = await _get(app, "/v1/events", limit=1, cursor=cursor)
        assert same.status_code == 200, same.text
        session.flip(2)
        clock.now += 2.0
        refused = await _get(app, "/v1/events", limit=1, cursor=cursor)
        assert refused.status_code == 400 and refused.headers[HEADER] == "2"
        assert "reprocessed into version 2" in refused.json()["detail"]
        again = await _get(app, "/v1/events", limit=1)
        assert [e["peak"] for e in again.json()["items"]] == [0.4] and again.headers[HEADER] == "2"

    asyncio.run(run())


def test_result_versions_are_listed_with_the_active_one() -> None:
    session = FakeSession()
    session.add_version(2, settings={"thresholds": "van.harsh_brake_g=0.28"})
    session.flip(2)
    session.add_version(3)
    app = _app(_db(session))
    answer = asyncio.run(_get(app, "/v1/result-versions"))
    assert answer.status_code == 200 and answer.headers[HEADER] == "2"
    listed = answer.json()
    assert [(v["version"], v["active"]) for v in listed] == [(1, False), (2, True), (3, False)]
    assert listed[1]["settings"] == {"thresholds": "van.harsh_brake_g=0.28"}
    assert listed[1]["from_ms"] == int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
    assert listed[0]["state"] == "retired" and listed[0]["from_time"] is None


def test_result_versions_need_a_login() -> None:
    app = create_app(context=None)
    assert asyncio.run(_get(app, "/v1/result-versions")).status_code == 401


def test_the_vehicle_classes_show_the_served_versions_thresholds() -> None:
    session, clock = FakeSession(), Clock()
    session.add_version(2, settings={"thresholds": "van.harsh_brake_g=0.28,truck.harsh_corner_g=0.25",
                                     "vehicle_class": "truck"})  # fmt: skip
    app = _app(_db(session, clock=clock))

    async def classes() -> dict[str, Any]:
        return {c["name"]: c for c in (await _get(app, "/v1/vehicle-classes")).json()}

    async def run() -> None:
        before = await classes()
        assert before["van"]["thresholds_g"]["harsh_brake"] == 0.35 and before["van"]["default"]
        session.flip(2)
        clock.now += 2.0
        after = await classes()
        assert after["van"]["thresholds_g"]["harsh_brake"] == 0.28
        assert after["truck"]["thresholds_g"]["harsh_corner_left"] == 0.25
        assert after["truck"]["default"] and not after["van"]["default"]
        assert after["car"] == before["car"]

    asyncio.run(run())


def test_without_a_database_the_code_s_thresholds_are_served_as_version_1() -> None:
    active = code_only()
    assert active.version == 1 and [v.version for v in active.versions] == [1]
    assert class_thresholds(active) == VEHICLE_CLASSES and default_class(active) == DEFAULT_VEHICLE_CLASS


def test_a_versions_bad_thresholds_are_a_config_error() -> None:
    record = ResultVersion(version=2, results_keyspace="fleetsense_r2", state="active",
                           settings={"thresholds": "van.harsh_brake_g=-1"})  # fmt: skip
    with pytest.raises(ConfigError):
        class_thresholds(Active(MAIN, 2, (record,)))


def test_the_cache_time_is_a_bounded_setting() -> None:
    assert ServeSettings().results_version_cache_s == 2.0
    for bad in (0.0, 61.0):
        with pytest.raises(ConfigError, match="results_version_cache_s"):
            ServeSettings(results_version_cache_s=bad)


@dataclass
class _VersionsAway(FakeSession):
    """Cassandra answers every read but the versions'."""

    asked: int = 0

    def execute_async(self, bound: _Bound, paging_state: bytes | None = None) -> _Done:
        if t.RESULT_VERSIONS.name in bound.cql:
            self.asked += 1
            raise RuntimeError("result_versions cannot be read")
        return super().execute_async(bound, paging_state)


def test_without_the_versions_a_request_that_reads_no_results_answers_and_health_never_asks() -> None:
    session = _VersionsAway()
    app = _app(_db(session))

    async def run() -> None:
        health = await _get(app, "/v1/health")
        assert health.status_code == 200 and HEADER not in health.headers and session.asked == 0
        kinds = await _get(app, "/v1/event-kinds")  # the pin tried, and the request went on without a version
        assert kinds.status_code == 200 and HEADER not in kinds.headers and session.asked == 1

    asyncio.run(run())
