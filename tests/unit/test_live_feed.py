"""The live feed's consumer without a broker (service/live_feed.py): the dedupe LRU against a model in seeded random
runs (FLEETSENSE_SIM_SEED=N replays one), and handling of every message a broker could deliver (hypothesis)."""

from __future__ import annotations

import asyncio
import json
import os
import random
from typing import Any

import pytest
from fleetsense.service.context import ServiceContext
from fleetsense.service.live_event import EventHub, LiveEvent
from fleetsense.service.live_feed import LiveFeed, RecentKeys, decode
from fleetsense.service.settings import ServeSettings
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsense.errors import ConfigError
from tests.unit.service_events import live_event

CASES = int(os.environ.get("FLEETSENSE_SIM_CASES", "2000"))
SEED_ENV = os.environ.get("FLEETSENSE_SIM_SEED")
SEEDS = [int(SEED_ENV)] if SEED_ENV else list(range(CASES))


def event(vehicle: str = "van-1", start_ms: int = 1_000, kind: str = "harsh_brake") -> LiveEvent:
    return live_event(vehicle, start_ms, kind)


class ModelLru:
    """The LRU rule spelled out: a list, most recent last."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.keys: list[str] = []

    def add(self, key: str) -> bool:
        new = key not in self.keys
        if not new:
            self.keys.remove(key)
        self.keys.append(key)
        del self.keys[: max(0, len(self.keys) - self.size)]
        return new


def test_the_dedupe_lru_agrees_with_its_model_in_seeded_random_runs() -> None:
    for seed in SEEDS:
        rng = random.Random(seed)
        size = rng.randint(1, 12)
        lru, model = RecentKeys(size), ModelLru(size)
        for step in range(rng.randint(1, 80)):
            key = f"v/{rng.randint(0, 2 * size)}/k"
            assert lru.add(key) == model.add(key), f"seed {seed} step {step}: FLEETSENSE_SIM_SEED={seed} replays it"
            assert len(lru) == len(model.keys) <= size, f"seed {seed}"
            assert all(k in lru for k in model.keys), f"seed {seed}"


def test_a_replay_of_the_last_checkpoints_events_is_dropped_whole_while_it_fits_the_lru() -> None:
    lru = RecentKeys(100)
    keys = [f"van-{i % 7}/{i}/bump" for i in range(100)]
    assert all(lru.add(k) for k in keys)
    assert not any(lru.add(k) for k in keys)  # the job restored and published the same 100 again


def test_an_lru_of_no_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RecentKeys(0)


async def started_feed(hub: EventHub, dedupe_keys: int = 100) -> LiveFeed:
    feed = LiveFeed(dedupe_keys=dedupe_keys)
    context = ServiceContext(db=None, settings=ServeSettings(amqp_url=None), hub=hub)  # type: ignore[arg-type]
    await feed.start(context)  # no amqp_url: nothing to connect to
    return feed


def test_each_key_reaches_the_hub_once_and_the_repeats_and_malformed_are_counted() -> None:
    hub = EventHub()

    async def run() -> list[LiveEvent]:
        subscription = hub.subscribe()
        feed = await started_feed(hub)
        for body in (event().to_json(), event().to_json(), b"{not json", event(start_ms=2_000).to_json()):
            feed.handle(body)
        assert (feed.counters.received, feed.counters.duplicates, feed.counters.malformed) == (4, 1, 1)
        return [subscription.queue.get_nowait() for _ in range(subscription.queue.qsize())]

    assert asyncio.run(run()) == [event(), event(start_ms=2_000)]


@pytest.mark.parametrize(
    "change",
    [
        {"start_ms": "1000"},
        {"start_ms": True},
        {"peak": "0.6"},
        {"vehicle_id": ["van-1"]},
        {"vehicle_id": "van/1"},
        {"start_ms": -5},
        {"kind": ""},
    ],
)
def test_a_message_with_a_field_of_the_wrong_type_or_a_key_that_does_not_read_back_is_malformed(
    change: dict[str, Any],
) -> None:
    data = json.loads(event().to_json()) | change
    with pytest.raises(ConfigError):
        decode(json.dumps(data).encode())


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
_fields = st.fixed_dictionaries({name: _json for name in sorted(LiveEvent.__dataclass_fields__)})


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        _json.map(lambda v: json.dumps(v).encode()),
        _fields.map(lambda v: json.dumps(v).encode()),
    )
)
def test_no_message_makes_the_feed_or_a_filtering_subscriber_raise(body: bytes) -> None:
    hub = EventHub()
    hub.subscribe(lambda e: e.vehicle_id in {"van-1"} and e.kind in {"bump"})
    feed = LiveFeed()
    feed.hub, feed._recent = hub, RecentKeys(10)
    passed = feed.handle(body)
    assert feed.counters.malformed + feed.counters.published == 1
    if passed is not None:
        assert decode(passed.to_json()) == passed


def test_a_feed_whose_broker_is_away_retries_with_a_doubling_back_off_and_stops_cleanly() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused

    async def run() -> LiveFeed:
        feed = LiveFeed(first_backoff_s=0.05, max_backoff_s=0.2)
        settings = ServeSettings(amqp_url=f"amqp://u:p@127.0.0.1:{port}/fleet")
        await feed.start(ServiceContext(db=None, settings=settings))  # type: ignore[arg-type]
        await asyncio.sleep(0.6)  # 0.05 + 0.1 + 0.2 + 0.2: four or five attempts, not dozens
        await feed.stop()
        return feed

    feed = asyncio.run(run())
    assert 3 <= feed.counters.connect_failures <= 6, feed.counters
    assert not feed.connected and feed.counters.connects == 0
