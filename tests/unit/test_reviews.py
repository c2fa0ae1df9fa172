"""The coaching workflow (service/reviews.py) over the in-memory database: which queue a harsh event enters, a
review taking it out, a review back to `new` putting it in again, the catch-up over fleet_events' hours, and the
dismissed events the scores leave out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from fleetsense.cloud import tables as t
from fleetsense.cloud.store import day_bucket
from fleetsense.service import assignment_writes as aw
from fleetsense.service import drivers as d
from fleetsense.service import reviews as r
from fleetsense.service.event_key import EventKey
from fleetsense.service.live_event import LiveEvent

from fleetsense.errors import ConfigError
from tests.unit.service_events import live_event
from tests.unit.service_memory_db import MemoryDb

H = 3_600_000
T0 = 1_796_515_200_000  # 2026-12-06T00:00Z
FLEET = "default"
R = TypeVar("R")


def run(make: Callable[[], Awaitable[R]]) -> R:
    return asyncio.run(make())  # type: ignore[arg-type]


def event(start_ms: int, kind: str = "harsh_brake", vehicle: str = "van-1") -> LiveEvent:
    return live_event(vehicle, start_ms, kind, detected_after_ms=900)


def store_event(db: MemoryDb, e: LiveEvent) -> None:
    common: dict[str, Any] = {
        "vehicle_id": e.vehicle_id,
        "day_bucket": day_bucket(e.start_ms * 1000),
        "start_time": e.start_ms,
        "kind": e.kind,
        "end_time": e.end_ms,
        "duration_ms": e.duration_ms,
        "peak": e.peak,
        "peak_unit": e.peak_unit,
    }
    db.put(t.EVENTS_BY_VEHICLE, **common, detected_at=e.detected_ms)
    hour = datetime.fromtimestamp(e.start_ms / 1000, UTC).hour
    db.put(t.EVENTS_BY_FLEET, **common, hour=hour)


async def fleet(db: MemoryDb) -> None:
    """ann (managed by mia) drives van-1 from 08:00 to 12:00; bob (no manager) from 12:00."""
    await d.save_driver(db, FLEET, d.Driver(driver_id="ann", name="Ann", manager="mia"), before=None)
    await d.save_driver(db, FLEET, d.Driver(driver_id="bob", name="Bob"), before=None)
    for driver, hour in (("ann", 8), ("bob", 12)):
        await aw.create(
            db, FLEET, vehicle_id="van-1", driver_id=driver, from_ms=T0 + hour * H, source="api", set_by="m", now_ms=0
        )


def queue_keys(db: MemoryDb, manager: str) -> list[str]:
    items, _ = run(lambda: r.queue_of(db, manager))
    return [item.key for item in items]


def test_a_harsh_event_enters_its_drivers_managers_queue_and_others_the_unassigned_one() -> None:
    db = MemoryDb()
    run(lambda: fleet(db))
    assert run(lambda: r.queue_event(db, event(T0 + 9 * H))) == "mia"
    assert run(lambda: r.queue_event(db, event(T0 + 13 * H))) == r.UNASSIGNED  # bob has no manager
    assert run(lambda: r.queue_event(db, event(T0 + 3 * H))) == r.UNASSIGNED  # nobody had the van
    assert run(lambda: r.queue_event(db, event(T0 + 9 * H, kind="bump"))) is None  # not judged: never queued
    assert queue_keys(db, "mia") == [f"van-1/{T0 + 9 * H}/harsh_brake"]
    assert queue_keys(db, r.UNASSIGNED) == [f"van-1/{T0 + 13 * H}/harsh_brake", f"van-1/{T0 + 3 * H}/harsh_brake"]


def test_a_review_takes_the_event_off_the_queue_and_new_puts_it_back() -> None:
    db = MemoryDb()
    run(lambda: fleet(db))
    e = event(T0 + 9 * H)
    store_event(db, e)
    run(lambda: r.queue_event(db, e))
    key = EventKey.parse(e.key)
    done = run(lambda: r.review(db, FLEET, key, state="coached", note="talked", reviewed_by="mia", now_ms=T0 + 20 * H))
    assert done.driver_id == "ann" and queue_keys(db, "mia") == []
    assert run(lambda: r.queue_event(db, e)) is None  # a replay of a reviewed event stays out of the queue
    run(lambda: r.review(db, FLEET, key, state="new", note="", reviewed_by="mia", now_ms=T0 + 21 * H))
    assert queue_keys(db, "mia") == [e.key]
    stored = run(lambda: r.review_of(db, key))
    assert stored is not None and stored.state == "new" and stored.reviewed_by == "mia"


def test_a_review_follows_a_retroactive_correction_of_the_driver() -> None:
    db = MemoryDb()
    run(lambda: fleet(db))
    e = event(T0 + 9 * H)
    store_event(db, e)
    run(lambda: aw.correct(db, FLEET, vehicle_id="van-1", from_ms=T0 + 8 * H, driver_id="bob", set_by="m", now_ms=1))
    done = run(lambda: r.review(db, FLEET, EventKey.parse(e.key), state="reviewed", note="", reviewed_by="x", now_ms=2))
    assert done.driver_id == "bob"


@pytest.mark.parametrize(
    ("key", "state", "error", "match"),
    [
        (f"van-1/{T0}/harsh_brake", "reviewed", d.NotFound, "no event"),
        (f"van-1/{T0}/bump", "reviewed", ConfigError, "bump events are not reviewed"),
        (f"van-1/{T0}/harsh_brake", "maybe", ConfigError, "no review state"),
        (f"van-1/{10**30}/harsh_brake", "reviewed", ConfigError, "an event starting at"),
        (f"van 1/{T0}/harsh_brake", "reviewed", ConfigError, "invalid vehicle id"),
    ],
)
def test_a_review_of_a_missing_event_an_unjudged_kind_or_an_unknown_state_is_refused(
    key: str, state: str, error: type[Exception], match: str
) -> None:
    db = MemoryDb()
    with pytest.raises(error, match=match):
        run(lambda: r.review(db, FLEET, EventKey.parse(key), state=state, note="", reviewed_by="mia", now_ms=0))
    assert db.all(t.EVENT_REVIEWS) == []


def test_dismissed_events_are_what_the_scores_leave_out() -> None:
    db = MemoryDb()
    run(lambda: fleet(db))
    events = [event(T0 + 9 * H), event(T0 + 10 * H, kind="harsh_acceleration"), event(T0 + 11 * H)]
    for e, state in zip(events, ("dismissed", "dismissed", "coached"), strict=True):
        store_event(db, e)
        run(
            lambda e=e, s=state: r.review(db, FLEET, EventKey.parse(e.key), state=s, note="", reviewed_by="m", now_ms=0)
        )
    day = day_bucket(T0 * 1000)
    assert run(lambda: r.dismissed_events(db, "van-1", day)) == {
        (T0 + 9 * H, "harsh_brake"),
        (T0 + 10 * H, "harsh_acceleration"),
    }


def test_the_catch_up_queues_the_harsh_events_since_a_time_once() -> None:
    db = MemoryDb()
    run(lambda: fleet(db))
    for e in (event(T0 + 7 * H), event(T0 + 9 * H), event(T0 + 9 * H + 1, kind="stop"), event(T0 + 13 * H)):
        store_event(db, e)
    assert run(lambda: r.enqueue_since(db, T0 + 8 * H, now_ms=T0 + 14 * H)) == 2
    assert queue_keys(db, "mia") == [f"van-1/{T0 + 9 * H}/harsh_brake"]
    assert queue_keys(db, r.UNASSIGNED) == [f"van-1/{T0 + 13 * H}/harsh_brake"]


def test_the_catch_up_walks_at_most_a_week_of_hours() -> None:
    hours = r.hour_partitions(0, T0)
    assert len(hours) == r.MAX_CATCH_UP_HOURS
    assert hours[-1] == (datetime.fromtimestamp(T0 / 1000, UTC).date(), 0)
    assert r.hour_partitions(T0 + 30 * 60_000, T0 + H) == [(hours[-1][0], 0), (hours[-1][0], 1)]
