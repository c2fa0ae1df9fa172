"""The read API's pure parts: query parameters (fuzzed: any text is a value or a QueryError), the partitions a
range covers (2,000 seeded ranges and assignment histories: every moment in exactly one partition, in walk order),
one vehicle now from its rows; and, over ASGI without a database, the 503 of a fleet view not read yet, the metrics
middleware's labels and the login every route needs."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fleetsense.service import fleet_query as q
from fleetsense.service import metrics
from fleetsense.service.app import create_app
from fleetsense.service.attribution import Assignment
from fleetsense.service.auth import current_principal
from fleetsense.service.context import ServiceContext
from fleetsense.service.db import Page
from fleetsense.service.fleet_events import driver_partitions, fleet_partitions
from fleetsense.service.fleet_models import FleetNow
from fleetsense.service.fleet_snapshot import FleetSnapshotter, render
from fleetsense.service.fleet_view import VehicleRows, vehicle_now
from fleetsense.service.fleet_walk import Partition
from fleetsense.service.roles import Principal, Role
from fleetsense.service.settings import ServeSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetsense import event_kinds

DAY, HOUR = q.DAY_MS, q.HOUR_MS
NOW = 1_796_000_000_000  # 2026-11-30


@given(st.text(max_size=80))
def test_any_time_text_is_ms_or_a_query_error(text: str) -> None:
    try:
        value = q.parse_time(text, "from")
    except q.QueryError as exc:
        assert "from=" in str(exc)
    else:
        assert 0 <= value <= 253_402_300_799_999


def test_times_in_iso_or_ms_and_the_range_rules() -> None:
    assert q.parse_time("2026-12-06T13:00:00Z", "to") == q.parse_time("2026-12-06T14:00:00+01:00", "to")
    assert q.parse_time("2026-12-06T13:00:00", "to") == q.parse_time("1796562000000", "to") == 1_796_562_000_000
    assert q.time_range(None, None, now_ms=NOW) == q.TimeRange(NOW - DAY, NOW)
    with pytest.raises(q.QueryError, match="31 days"):
        q.time_range("0", str(32 * DAY), now_ms=NOW)
    with pytest.raises(q.QueryError, match="before"):
        q.time_range(str(NOW), str(NOW), now_ms=NOW)
    with pytest.raises(q.QueryError, match="harsh_brake, harsh_acceleration"):
        q.check_kind("wheelie")
    assert q.check_kind("bump") == "bump"
    for bad in (0, 1001):
        with pytest.raises(q.QueryError, match="1 to 1000"):
            q.check_limit(bad)


def test_every_moment_of_a_range_is_in_exactly_one_partition_newest_first() -> None:
    for seed in range(2_000):
        rng = random.Random(seed)
        start = rng.randint(0, 60 * DAY)
        span = q.TimeRange(start, start + rng.randint(1, q.MAX_SPAN_MS))
        hours = q.hours_newest_first(span)
        starts = [int(datetime(d.year, d.month, d.day, h, tzinfo=UTC).timestamp() * 1000) for d, h in hours]
        assert starts == list(range(starts[0], starts[-1] - 1, -HOUR)), seed  # contiguous, newest first
        assert starts[0] <= span.to_ms - 1 < starts[0] + HOUR and starts[-1] <= span.from_ms < starts[-1] + HOUR
        days = q.days_newest_first(span.from_ms, span.to_ms)
        assert days[0] == q.day_of(span.to_ms - 1) and days[-1] == q.day_of(span.from_ms)
        assert len(days) == len(set(days)) == (days[0] - days[-1]).days + 1
        positions = [p.position for p in fleet_partitions(span, None)]
        assert positions == sorted(positions, reverse=True) and len(set(positions)) == len(positions)


def test_a_drivers_partitions_hold_exactly_the_moments_their_assignments_hold() -> None:
    for seed in range(2_000):
        rng = random.Random(seed)
        assignments, t = [], 0
        for _ in range(rng.randint(0, 5)):
            t += rng.randint(1, 3 * DAY)
            length = rng.choice([None, rng.randint(1, 2 * DAY)])
            vehicle = rng.choice(["van-a", "van-b"])
            end = None if length is None else (t + length) * 1000
            assignments.append(Assignment(vehicle_id=vehicle, driver_id="ann", valid_from_us=t * 1000, valid_to_us=end))
        start = rng.randint(0, 8 * DAY)
        span = q.TimeRange(start, start + rng.randint(1, 6 * DAY))
        partitions = driver_partitions(assignments, span, rng.choice([None, "bump"]))
        positions = [p.position for p in partitions]
        assert positions == sorted(positions, reverse=True) and len(set(positions)) == len(positions), seed
        for _ in range(50):
            moment = rng.randint(span.from_ms, span.to_ms - 1)
            holding = [a for a in assignments if a.holds(moment * 1000)]
            covering = [p for p in partitions if p.params[1] == q.day_of(moment) and _holds(p, moment)]
            assert sorted(p.params[0] for p in covering) == sorted(a.vehicle_id for a in holding), (seed, moment)


def _holds(partition: Partition, moment_ms: int) -> bool:
    """Whether the partition's query (its CQL slice, or its row filter with a kind) admits an event at `moment_ms`."""
    if partition.keep is not None:
        return partition.keep(SimpleNamespace(start_time=q.utc_of_ms(moment_ms).replace(tzinfo=None)))
    return bool(partition.params[-2] <= moment_ms < partition.params[-1])


def _rows(rng: random.Random) -> tuple[VehicleRows, dict[str, Any]]:
    status = rng.choice([None, SimpleNamespace(online=True, reason="heartbeat", received_at=datetime(2026, 11, 30))])
    seen = rng.choice([None, SimpleNamespace(last_sample_time=datetime(2026, 11, 30, 0, 0, 1))])
    trip = rng.choice(
        [None, SimpleNamespace(start_time=datetime(2026, 11, 29, 23), duration_s=3600.0, open=rng.random() < 0.5)]
    )
    score = rng.choice([None, SimpleNamespace(score=80.0, driving_s=60.0, event_counts=event_kinds.zero_counts())])
    holds = rng.random() < 0.5
    begins = (NOW - HOUR if holds else NOW + HOUR) * 1000
    assignment = Assignment(vehicle_id="van", driver_id="ann", valid_from_us=begins)
    rows = VehicleRows("van", None, status, seen, trip, [assignment], score)
    return rows, {"status": status, "seen": seen, "trip": trip, "score": score, "holds": holds}


def test_a_vehicle_now_says_what_its_rows_say_and_null_for_what_is_missing() -> None:
    for seed in range(500):
        rows, has = _rows(random.Random(seed))
        now = vehicle_now(rows, now_ms=NOW)
        assert (now.online is None) == (has["status"] is None)
        assert (now.last_seen_ms is None) == (has["seen"] is None)
        assert now.trip_open == (has["trip"] is not None and has["trip"].open)
        assert (now.trip_start_ms is not None) == now.trip_open
        assert now.driver_id == ("ann" if has["holds"] else None)
        assert (now.score_today is None) == (has["score"] is None)
        assert now.events_today == ({} if has["score"] is None else event_kinds.zero_counts())


class _HangingDb:
    async def rows(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(3600)


async def _get(app: Any, *paths: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return [await client.get(path) for path in paths]


def test_the_fleet_view_before_its_first_snapshot_is_a_503_with_retry_after() -> None:
    async def main() -> httpx.Response:
        snapshotter = FleetSnapshotter(first_wait_s=0.05)
        context = ServiceContext(db=_HangingDb(), settings=ServeSettings(), components=[snapshotter])  # type: ignore[arg-type]
        app = create_app(context=context)
        app.dependency_overrides[current_principal] = lambda: Principal("v", Role.VIEWER, "token")
        await context.start(app)
        try:
            (answer,) = await _get(app, "/v1/fleet")
        finally:
            await context.stop()
        return answer

    answer = asyncio.run(main())
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert "try again" in answer.json()["detail"]


def test_every_read_route_needs_a_login_and_metrics_label_requests_by_route_template() -> None:
    app = create_app(context=None)
    paths = ["/v1/fleet", "/v1/vehicles", "/v1/vehicles/x", "/v1/events", "/v1/vehicles/x/events", "/v1/metrics"]
    before = metrics.REQUESTS.labels("GET", "/v1/vehicles/{vehicle_id}", "401")._value.get()
    answers = asyncio.run(_get(app, *paths, "/v1/drivers/d/events", "/v1/no/such/path"))
    assert [a.status_code for a in answers] == [401] * (len(paths) + 1) + [404]
    assert metrics.REQUESTS.labels("GET", "/v1/vehicles/{vehicle_id}", "401")._value.get() == before + 1
    body, _ = metrics.exposition()
    assert b'route="unmatched"' in body and b"fleetsense_live_clients" in body


class _EmptyDb:
    """Every partition empty: a request that passes its checks answers an empty page."""

    async def page(self, *args: Any, **kwargs: Any) -> Page:
        return Page([], None)

    async def rows(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


_segment = st.text(min_size=1, max_size=30).filter(lambda s: s not in (".", ".."))  # no path's dot segments
_text = st.one_of(st.none(), st.text(max_size=40), st.integers(-(10**20), 10**20).map(str))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.just("/v1/events"),
        _segment.map(lambda v: f"/v1/vehicles/{quote(v, safe='')}/events"),
        _segment.map(lambda d: f"/v1/drivers/{quote(d, safe='')}/events"),
    ),
    _text,
    _text,
    st.one_of(st.none(), st.sampled_from(list(event_kinds.BY_KEY)), st.text(max_size=20)),
    st.one_of(st.none(), st.integers(-5, 2000).map(str), st.text(max_size=5)),
    st.sampled_from([None, "csv", "json", "xml"]),
)
def test_any_query_parameters_are_an_answer_or_a_4xx_never_a_5xx(
    path: str, from_: str | None, to: str | None, kind: str | None, limit: str | None, format: str | None
) -> None:
    params = {k: v for k, v in {"from": from_, "to": to, "kind": kind, "limit": limit, "format": format}.items() if v}
    context = ServiceContext(db=_EmptyDb(), settings=ServeSettings(secret_key="k" * 32))  # type: ignore[arg-type]
    app = create_app(context=context)
    app.dependency_overrides[current_principal] = lambda: Principal("v", Role.VIEWER, "token")

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get(path, params=params)

    answer = asyncio.run(get())
    # 404: an id holding "/" (sent as %2F) makes a path no route has.
    assert answer.status_code in (200, 400, 404, 422), (path, params, answer.status_code, answer.text)
    if answer.status_code == 200 and format != "csv":
        assert answer.json() == {"items": [], "next_cursor": None}


def test_the_snapshots_answer_rendered_in_batches_is_the_fleet_now_of_its_vehicles() -> None:
    for count in (0, 1, 100, 101, 250):
        rng = random.Random(count)
        found = [replace(_rows(rng)[0], vehicle_id=f"van-{n:03d}", label=f"Van {n}") for n in range(count)]
        vehicles, body, packed = render(found, NOW)
        expected = FleetNow(as_of=q.utc_of_ms(NOW), as_of_ms=NOW, vehicles=list(vehicles))
        assert FleetNow.model_validate_json(body) == expected
        assert json.loads(body) == json.loads(expected.model_dump_json())
        assert gzip.decompress(packed) == body
        assert [v.vehicle_id for v in vehicles] == [f"van-{n:03d}" for n in range(count)]


class _FlakyDb:
    """A fleet of one vehicle with no rows yet; every read fails while `down`."""

    down = False

    async def rows(self, read: Any, params: Any = (), **kwargs: Any) -> list[Any]:
        if self.down:
            raise RuntimeError("Cassandra is down")
        return [SimpleNamespace(vehicle_id="van-1", label=None)] if "fleet_vehicles" in read.cql else []


def test_a_failed_refresh_keeps_the_previous_snapshot_and_the_next_good_one_replaces_it() -> None:
    async def until(done: Any) -> None:
        for _ in range(500):
            if done():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("timed out")

    async def main() -> None:
        db = _FlakyDb()
        snapshotter = FleetSnapshotter(refresh_s=0.01)
        await snapshotter.start(ServiceContext(db=db, settings=ServeSettings()))  # type: ignore[arg-type]
        try:
            first = await snapshotter.current()
            assert [v.vehicle_id for v in first.vehicles] == ["van-1"] and first.vehicles[0].online is None
            failed_before = metrics.FLEET_REFRESH_FAILURES._value.get()
            db.down = True
            await until(lambda: snapshotter.failures >= 3)
            kept = snapshotter.latest
            assert kept is not None and kept.as_of_ms >= first.as_of_ms and kept.age_s(kept.as_of_ms + 1500) == 1.5
            assert metrics.FLEET_REFRESH_FAILURES._value.get() >= failed_before + 3
            db.down = False
            await until(lambda: snapshotter.latest is not kept)
        finally:
            await snapshotter.stop()

    asyncio.run(main())
