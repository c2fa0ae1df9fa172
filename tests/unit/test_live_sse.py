"""The live route's logic without a server (service/live_sse.py, service/routes_live.py): the SSE text, per-client
filters, the resume order against a model in seeded random runs (FLEETSENSE_SIM_SEED=N replays one), a slow client's
last word, and the 400s for bad filters."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import HTTPException
from fleetsense.service import routes_live
from fleetsense.service.app import create_app
from fleetsense.service.attribution import Assignment
from fleetsense.service.auth import current_principal
from fleetsense.service.context import ServiceContext
from fleetsense.service.event_key import EventKey
from fleetsense.service.live_event import EventHub, LiveEvent
from fleetsense.service.live_sse import ClientFilter, by_vehicle, resume_order, sse_event
from fleetsense.service.roles import Principal, Role
from fleetsense.service.settings import ServeSettings
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.service_events import live_event

CASES = int(os.environ.get("FLEETSENSE_SIM_CASES", "2000"))
SEED_ENV = os.environ.get("FLEETSENSE_SIM_SEED")
SEEDS = [int(SEED_ENV)] if SEED_ENV else list(range(CASES))
KINDS = ("harsh_brake", "bump", "stop")


def event(vehicle: str = "van-1", start_ms: int = 1_000, kind: str = "harsh_brake") -> LiveEvent:
    return live_event(vehicle, start_ms, kind)


def test_an_event_is_its_key_as_the_id_and_its_json_as_the_data() -> None:
    text = sse_event(event()).decode()
    assert text == f"id: van-1/1000/harsh_brake\ndata: {event().to_json().decode()}\n\n"
    assert "\n" not in event().to_json().decode()  # one data line: the JSON has no newline


def test_resume_order_agrees_with_its_model_in_seeded_random_runs() -> None:
    for seed in SEEDS:
        rng = random.Random(seed)
        stored = [
            event(f"van-{rng.randint(1, 3)}", rng.randint(0, 20), rng.choice(KINDS)) for _ in range(rng.randint(0, 30))
        ]
        after_event = rng.choice(stored) if stored and rng.random() < 0.8 else event("van-9", rng.randint(0, 20))
        after = EventKey.parse(after_event.key)
        got = resume_order(rng.sample(stored, len(stored)), after)
        # The model: every distinct stored key that started at or after `after`, but `after`, oldest start first.
        model = sorted(
            {e.key: e for e in stored if e.start_ms >= after.start_ms and e.key != after_event.key}.values(),
            key=lambda e: (e.start_ms, e.key),
        )
        assert got == model, f"seed {seed}: FLEETSENSE_SIM_SEED={seed} replays it"
        assert all(a.start_ms <= b.start_ms for a, b in itertools.pairwise(got)), f"seed {seed}"


def test_filters_combine_and_a_driver_matches_the_vehicle_they_held_at_the_events_start() -> None:
    h = 3_600_000  # ms
    ann = [Assignment(vehicle_id="van-1", driver_id="ann", valid_from_us=0, valid_to_us=2 * h * 1000)]
    bob = Assignment(vehicle_id="van-2", driver_id="bob", valid_from_us=0, valid_to_us=None)
    assert ClientFilter().accepts(event())
    assert not ClientFilter(vehicles=frozenset({"van-2"})).accepts(event())
    assert not ClientFilter(kinds=frozenset({"bump"})).accepts(event())
    by_ann = ClientFilter(driver="ann", assignments=by_vehicle([*ann, bob]))
    assert by_ann.accepts(event("van-1", h))
    assert not by_ann.accepts(event("van-1", 3 * h))  # after ann's shift ended
    assert not by_ann.accepts(event("van-2", h))  # bob's van
    assert not ClientFilter(driver="carl").accepts(event())


Row = namedtuple(
    "Row", "start_time vehicle_id kind end_time duration_ms peak peak_unit writetime_peak"
)  # as the driver names writetime(peak)


class StoredEvents:
    """The Db's `rows` over a list of events, by (day, hour) partition and start, as fleet_events answers."""

    def __init__(self, events: Sequence[LiveEvent]) -> None:
        self.events = events
        self.partitions_read: list[tuple[date, int]] = []

    async def rows(self, _read: Any, params: Sequence[Any], *, suffix: str = "") -> list[Row]:
        day, hour, since = params
        assert suffix == " AND start_time >= ?"
        self.partitions_read.append((day, hour))
        epoch = datetime(1970, 1, 1)
        out = []
        for e in self.events:
            start = epoch + timedelta(milliseconds=e.start_ms)
            if start.date() == day and start.hour == hour and start >= since.replace(tzinfo=None):
                end = epoch + timedelta(milliseconds=e.end_ms)
                out.append(
                    Row(start, e.vehicle_id, e.kind, end, e.duration_ms, e.peak, e.peak_unit, e.detected_ms * 1000)
                )
        return sorted(out, key=lambda r: r.start_time, reverse=True)


def test_a_resume_reads_each_hour_from_the_keys_to_now_and_sends_what_followed_it() -> None:
    h = 3_600_000
    t0 = 1_765_000_000_000 - 1_765_000_000_000 % h  # an hour's start
    stored = [event("van-1", t0 + 5), event("van-2", t0 + 10), event("van-1", t0 + h + 1), event("van-3", t0 + 2)]
    db = StoredEvents(stored)
    after = EventKey.parse(stored[0].key)
    got = asyncio.run(routes_live.stored_since(db, after, t0 + 2 * h + 7))  # type: ignore[arg-type]
    assert got == [stored[1], stored[2]]
    assert [hour for _, hour in db.partitions_read] == [(t0 // h + i) % 24 for i in range(3)]


def test_a_resume_after_a_key_from_the_future_reads_and_sends_nothing() -> None:
    db = StoredEvents([])
    future = EventKey("van-1", 10**30, "bump")
    assert asyncio.run(routes_live.stored_since(db, future, 1_765_000_000_000)) == []  # type: ignore[arg-type]
    assert db.partitions_read == []


def test_a_resume_from_long_ago_reads_only_the_last_day() -> None:
    h = 3_600_000
    db = StoredEvents([])
    asyncio.run(routes_live.stored_since(db, EventKey("van-1", 0, "bump"), 1_765_000_000_000))  # type: ignore[arg-type]
    assert len(db.partitions_read) == routes_live.RESUME_HOURS
    assert db.partitions_read[-1][1] == (1_765_000_000_000 // h) % 24


async def _take(stream: AsyncIterator[bytes], n: int) -> list[bytes]:
    return [await asyncio.wait_for(anext(stream), 2) for _ in range(n)]


def test_a_resumed_event_that_also_arrives_live_is_sent_once_and_then_live_follows() -> None:
    now_ms = int(time.time() * 1000)
    stored = [event(start_ms=now_ms - 3_000), event(start_ms=now_ms - 2_000), event(start_ms=now_ms - 1_000)]
    live = event(start_ms=now_ms)

    async def run() -> list[bytes]:
        hub = EventHub()
        context = ServiceContext(db=StoredEvents(stored), settings=ServeSettings(), hub=hub)  # type: ignore[arg-type]
        stream = routes_live._stream(context, ClientFilter(), EventKey.parse(stored[0].key))
        first = await _take(stream, 1)  # subscribed now
        hub.publish(stored[2])  # stored and published while the resume is read
        hub.publish(live)
        got = first + await _take(stream, 3)
        await stream.aclose()
        assert hub.subscribers == 0
        return got

    got = asyncio.run(run())
    assert got[0] == b"retry: 1000\n\n"
    assert got[1:] == [sse_event(stored[1]), sse_event(stored[2]), sse_event(live)]


def test_a_slow_client_is_closed_with_a_last_comment_and_the_others_get_everything() -> None:
    async def run() -> tuple[list[bytes], list[bytes]]:
        hub = EventHub(queue_size=5)
        context = ServiceContext(db=None, settings=ServeSettings(), hub=hub)  # type: ignore[arg-type]
        slow = routes_live._stream(context, ClientFilter(), None)
        fast = routes_live._stream(context, ClientFilter(), None)
        await _take(slow, 1)
        await _take(fast, 1)
        fast_got = []
        for i in range(20):
            hub.publish(event(start_ms=i))
            fast_got += await _take(fast, 1)
        slow_got = [chunk async for chunk in slow]  # ends by itself
        await fast.aclose()
        return slow_got, fast_got

    slow_got, fast_got = asyncio.run(run())
    assert fast_got == [sse_event(event(start_ms=i)) for i in range(20)]
    assert len(slow_got) == 1 and slow_got[0].startswith(b": closed: this client fell 15 events behind")


def test_a_quiet_feed_sends_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes_live, "HEARTBEAT_S", 0.01)

    async def run() -> list[bytes]:
        context = ServiceContext(db=None, settings=ServeSettings(), hub=EventHub())  # type: ignore[arg-type]
        stream = routes_live._stream(context, ClientFilter(), None)
        got = await _take(stream, 3)
        await stream.aclose()
        return got

    assert asyncio.run(run())[1:] == [b": heartbeat\n\n"] * 2


@pytest.mark.parametrize(
    ("query", "headers", "says"),
    [
        ("kind=harsh_brak", {}, "kind: 'harsh_brak' is no event kind"),
        ("vehicle=van.1", {}, "vehicle: invalid vehicle id"),
        ("driver=", {}, "driver: an empty driver id"),
        ("", {"Last-Event-ID": "van-1/x/bump"}, "Last-Event-ID"),
        ("", {"Last-Event-ID": b"van-1/\xb2/bump"}, "Last-Event-ID"),
    ],
)
def test_a_bad_filter_or_resume_id_is_a_400_that_says_what_is_wrong(
    query: str, headers: dict[str, Any], says: str
) -> None:
    context = ServiceContext(db=None, settings=ServeSettings(), hub=EventHub())  # type: ignore[arg-type]
    app = create_app(context=context)
    app.dependency_overrides[current_principal] = lambda: Principal("v", Role.VIEWER, "token")

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get(f"/v1/events/live?{query}", headers=headers)

    response = asyncio.run(run())
    assert response.status_code == 400, response.text
    assert says in json.loads(response.text)["detail"]


def test_the_feed_needs_a_login() -> None:
    app = create_app(context=ServiceContext(db=None, settings=ServeSettings()))  # type: ignore[arg-type]

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get("/v1/events/live")

    assert asyncio.run(run()).status_code == 401


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.text(max_size=70), max_size=3),
    st.lists(st.one_of(st.sampled_from(KINDS), st.text(max_size=12)), max_size=3),
    st.one_of(st.none(), st.text(max_size=20)),
    st.one_of(
        st.none(), st.text(max_size=40), st.builds(lambda v, n, k: f"{v}/{n}/{k}", st.text(), st.text(), st.text())
    ),
)
def test_any_filter_or_resume_id_is_accepted_or_a_400_never_another_error(
    vehicles: list[str], kinds: list[str], driver: str | None, last_event_id: str | None
) -> None:
    for check in (
        lambda: routes_live.client_filter(vehicles, kinds, driver),
        lambda: routes_live.resume_after(last_event_id),
    ):
        try:
            check()
        except HTTPException as exc:
            assert exc.status_code == 400 and exc.detail
