"""The webhook dispatcher (service/webhook_dispatcher.py) in virtual time: seeded random fleets of webhooks whose
receivers go down, answer slowly or fail, with events published and re-published into the hub. Every event reaches
every webhook that wants its kind exactly once (acknowledged), in event order, correctly signed, and never one that
does not; a dead receiver never delays a steady one's deliveries.

Virtual time: an asyncio loop whose clock jumps to the next timer instead of waiting (no sockets are used: the
receivers are an httpx transport), so an hour of retries runs in milliseconds and every run replays by its seed."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import random
import selectors
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fleetsense.service.live_event import EventHub, LiveEvent
from fleetsense.service.webhook_dispatcher import WebhookDispatcher
from fleetsense.service.webhook_retry import RetryPolicy
from fleetsense.service.webhook_settings import WebhookSettings
from fleetsense.service.webhook_signing import verify
from fleetsense.service.webhooks import Attempt, Webhook

WALL_BASE_S = 1_800_000_000.0
KINDS = ("harsh_brake", "harsh_acceleration", "bump", "stop")


# --- virtual time ------------------------------------------------------------------------------------------------


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, loop: VirtualLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready:
            return ready
        if timeout is None:
            raise RuntimeError("virtual time: every task waits and no timer is set (a deadlock)")
        self._loop.now_s += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now_s = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self.now_s


def run_virtual(main: Callable[[], Awaitable[Any]]) -> Any:
    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        return runner.run(main())


def wall_clock_s() -> float:
    return WALL_BASE_S + asyncio.get_running_loop().time()


# --- the store and the receivers ---------------------------------------------------------------------------------


@dataclass
class MemoryStore:
    hooks: list[Webhook]
    delivered: dict[tuple[str, str], int] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)

    async def webhooks(self) -> list[Webhook]:
        return list(self.hooks)

    async def was_delivered(self, webhook_id: str, event_key: str) -> bool:
        return (webhook_id, event_key) in self.delivered

    async def mark_delivered(self, webhook_id: str, event_key: str, at_ms: int) -> None:
        self.delivered[(webhook_id, event_key)] = at_ms

    async def log(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)


@dataclass
class Receiver:
    """One webhook's endpoint: down in its outages (connection refused), else answers after `answer_s(now)` with
    a 503 in `fail_p` of cases, else acknowledges (200) and records the event."""

    secret: str
    outages: list[tuple[float, float]] = field(default_factory=list)
    answer_s: Callable[[random.Random], float] = lambda _rng: 0.01
    fail_p: float = 0.0
    hang: bool = False  # never answers (a dead, slow endpoint)
    acked: list[tuple[str, float]] = field(default_factory=list)  # (event key, virtual time)
    bad_signatures: int = 0


class Receivers(httpx.AsyncBaseTransport):
    def __init__(self, receivers: dict[str, Receiver], rng: random.Random) -> None:
        self.receivers = receivers
        self.rng = rng

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        receiver = self.receivers[request.url.host]
        now = asyncio.get_running_loop().time()
        if any(start <= now < end for start, end in receiver.outages):
            raise httpx.ConnectError("connection refused", request=request)
        if receiver.hang:
            await asyncio.sleep(3_600)
        body = await request.aread()
        await asyncio.sleep(receiver.answer_s(self.rng))
        try:
            verify(receiver.secret, dict(request.headers), body, now_s=wall_clock_s())
        except ValueError:
            receiver.bad_signatures += 1
            return httpx.Response(401)
        if self.rng.random() < receiver.fail_p:
            return httpx.Response(503)
        receiver.acked.append((LiveEvent.from_json(body).key, asyncio.get_running_loop().time()))
        return httpx.Response(200)


def event(rng: random.Random, at_ms: int) -> LiveEvent:
    return LiveEvent(
        vehicle_id=f"van-{rng.randint(1, 3)}",
        kind=rng.choice(KINDS),
        start_ms=at_ms,
        end_ms=at_ms + 500,
        duration_ms=500,
        peak=round(rng.uniform(0.3, 1.2), 3),
        peak_unit="g",
        detected_ms=at_ms + 2_000,
    )


def hook(name: str, secret: str, kinds: frozenset[str] = frozenset(), disabled: bool = False) -> Webhook:
    return Webhook(
        webhook_id=name,
        url=f"http://{name}/hook",
        kinds=kinds,
        secret=secret,
        created_by="admin",
        created_at_ms=0,
        disabled_at_ms=1 if disabled else None,
    )


SHORT = WebhookSettings(
    retry=RetryPolicy(first_delay_s=1, factor=2, max_delay_s=30, max_attempts=1_000, max_age_s=100_000),
    timeout_s=5,
    queue_size=1_000,
    refresh_s=60,
)


@dataclass(frozen=True)
class Counted:
    delivered: float
    failed: float
    given_up: float
    dropped: float

    def __sub__(self, other: Counted) -> Counted:
        return Counted(*(a - b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)))


def metric_values() -> Counted:
    """The dispatcher's Prometheus counters now (process-wide: a test compares before and after)."""
    from prometheus_client import REGISTRY

    def value(name: str) -> float:
        found = REGISTRY.get_sample_value(f"fleetsense_webhook_{name}_total")
        assert found is not None, name
        return found

    return Counted(value("delivered"), value("attempts_failed"), value("given_up"), value("dropped"))


# --- the simulation ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    published: list[tuple[float, LiveEvent]]
    hooks: list[Webhook]
    receivers: dict[str, Receiver]
    store: MemoryStore
    dropped: dict[str, int]


@functools.cache  # each seed's run is shared by the tests that look at it
def simulate(seed: int) -> Run:
    rng = random.Random(seed)
    receivers: dict[str, Receiver] = {}
    hooks: list[Webhook] = []
    for n in range(rng.randint(1, 4)):
        name = f"flaky{n}"
        outages = []
        for _ in range(rng.randint(0, 3)):
            start = rng.uniform(0, 120)
            outages.append((start, start + rng.uniform(1, 80)))
        slow = rng.random() < 0.5
        receivers[name] = Receiver(
            secret=f"secret-{seed}-{n}",
            outages=outages,
            answer_s=(lambda r: r.choice((0.01, 0.5, 7.0))) if slow else (lambda _r: 0.02),
            fail_p=rng.choice((0.0, 0.1, 0.3)),
        )
        kinds = frozenset(k for k in KINDS if rng.random() < 0.5) if rng.random() < 0.7 else frozenset()
        hooks.append(hook(name, receivers[name].secret, kinds))
    receivers["steady"] = Receiver(secret="steady-secret", answer_s=lambda _r: 0.01)
    hooks.append(hook("steady", "steady-secret"))
    if rng.random() < 0.5:
        receivers["dead"] = Receiver(secret="dead", hang=rng.random() < 0.5, outages=[(0, 1e9)])
        if receivers["dead"].hang:
            receivers["dead"].outages = []
        hooks.append(hook("dead", "dead"))
    receivers["off"] = Receiver(secret="off")
    hooks.append(hook("off", "off", disabled=True))

    # Events at distinct tenths of a second over the first minute; some published again later (a replay).
    times = sorted(rng.sample(range(0, 600), rng.randint(1, 30)))
    published = [(t / 10, event(rng, 1_800_000_000_000 + t * 100)) for t in times]
    for at_s, again in list(published):
        if rng.random() < 0.25:
            published.append((at_s + rng.uniform(0.05, 200), again))
    published.sort(key=lambda p: p[0])
    store = MemoryStore(hooks)

    async def main() -> dict[str, int]:
        hub = EventHub(queue_size=10_000)
        dispatcher = WebhookDispatcher(
            hub,
            settings=SHORT,
            store=store,
            transport=Receivers(receivers, rng),
            wall_clock_s=wall_clock_s,
            rng=random.Random(seed),
        )
        await dispatcher.start(context=None)
        loop = asyncio.get_running_loop()
        for at_s, published_event in published:
            await asyncio.sleep(max(0.0, at_s - loop.time()))
            hub.publish(published_event)
        await asyncio.sleep(3_000 - loop.time())
        dropped = dispatcher.dropped
        await dispatcher.stop()
        assert hub.subscribers == 0
        return dropped

    return Run(published, hooks, receivers, store, run_virtual(main))


SEEDS = range(400)


@pytest.mark.parametrize("block", range(4))
def test_every_event_reaches_each_matching_webhook_exactly_once_in_order_signed(block: int) -> None:
    for seed in SEEDS[block::4]:
        run = simulate(seed)
        first_seen: dict[str, float] = {}
        for at_s, e in run.published:
            first_seen.setdefault(e.key, at_s)
        kinds = {e.key: e.kind for _, e in run.published}
        for webhook in run.hooks:
            receiver = run.receivers[webhook.webhook_id]
            got = [key for key, _ in receiver.acked]
            assert receiver.bad_signatures == 0, f"seed {seed}"
            assert len(got) == len(set(got)), f"seed {seed}: {webhook.webhook_id} got an event twice"
            assert all(webhook.wants(kinds[key]) for key in got), f"seed {seed}: an unwanted kind"
            if webhook.webhook_id == "dead" or not webhook.active:
                assert got == [], f"seed {seed}"
                continue
            wanted = sorted((k for k in first_seen if webhook.wants(kinds[k])), key=first_seen.__getitem__)
            assert got == wanted, f"seed {seed}: {webhook.webhook_id} got {got}, wanted {wanted} in this order"
            assert run.dropped[webhook.webhook_id] == 0
            # The log holds each attempt: the last for a key is its success, all before it failures.
            for key in wanted:
                log = [a for a in run.store.attempts if a.webhook_id == webhook.webhook_id and a.event_key == key]
                assert [a.attempt for a in log] == list(range(1, len(log) + 1)), f"seed {seed}"
                assert log[-1].delivered and not any(a.delivered for a in log[:-1]), f"seed {seed}"
                assert all(a.status_code is not None or a.error for a in log)


def test_a_dead_receiver_never_delays_a_steady_ones_deliveries() -> None:
    worst_s = 0.0
    runs_with_dead = 0
    for seed in SEEDS:
        run = simulate(seed)
        if "dead" not in run.receivers:
            continue
        runs_with_dead += 1
        first_seen: dict[str, float] = {}
        for at_s, e in run.published:
            first_seen.setdefault(e.key, at_s)
        for key, acked_s in run.receivers["steady"].acked:
            worst_s = max(worst_s, acked_s - first_seen[key])
    assert runs_with_dead > 100
    # The steady receiver answers in 10 ms and events come at least 100 ms apart: nothing queues behind anything.
    assert worst_s < 0.05, worst_s


def test_a_full_queue_drops_new_events_counting_them_and_the_others_still_get_theirs() -> None:
    receivers = {"dead": Receiver(secret="d", hang=True), "steady": Receiver(secret="s")}
    store = MemoryStore([hook("dead", "d"), hook("steady", "s")])
    rng = random.Random(5)
    events = [event(rng, 1_800_000_000_000 + i * 1_000) for i in range(10)]

    async def main() -> dict[str, int]:
        hub = EventHub()
        settings = dataclasses.replace(SHORT, queue_size=2)
        dispatcher = WebhookDispatcher(
            hub, settings=settings, store=store, transport=Receivers(receivers, rng), wall_clock_s=wall_clock_s
        )
        await dispatcher.start(context=None)
        for e in events:
            hub.publish(e)
            await asyncio.sleep(0.5)
        dropped = dispatcher.dropped
        await dispatcher.stop()
        return dropped

    counted = metric_values()
    dropped = run_virtual(main)
    assert (metric_values() - counted).dropped == 7
    assert (metric_values() - counted).delivered == 10
    assert dropped == {"dead": 7, "steady": 0}  # one in its first attempt, two waiting, seven dropped
    assert [k for k, _ in receivers["steady"].acked] == [e.key for e in events]


def test_a_delivery_is_given_up_after_the_policys_attempts_each_logged_with_its_error() -> None:
    receivers = {"down": Receiver(secret="d", outages=[(0, 1e9)])}
    store = MemoryStore([hook("down", "d")])
    rng = random.Random(1)
    one = event(rng, 1_800_000_000_000)

    async def main() -> float:
        hub = EventHub()
        settings = dataclasses.replace(SHORT, retry=RetryPolicy(max_attempts=5, jitter=0))
        dispatcher = WebhookDispatcher(
            hub, settings=settings, store=store, transport=Receivers(receivers, rng), wall_clock_s=wall_clock_s
        )
        await dispatcher.start(context=None)
        hub.publish(one)
        await asyncio.sleep(100)
        await dispatcher.stop()
        return asyncio.get_running_loop().time()

    counted = metric_values()
    run_virtual(main)
    assert metric_values() - counted == Counted(delivered=0, failed=5, given_up=1, dropped=0)
    assert [a.attempt for a in store.attempts] == [1, 2, 3, 4, 5]
    assert all(a.status_code is None and "ConnectError" in (a.error or "") for a in store.attempts)
    starts = [a.attempted_at_ms for a in store.attempts]
    assert [b - a for a, b in itertools.pairwise(starts)] == [1_000, 2_000, 4_000, 8_000]
    assert store.delivered == {}


def test_a_slow_receiver_times_out_and_a_non_2xx_is_a_failure_with_its_status() -> None:
    answers = iter([10.0, 0.01, 0.01])
    receivers = {"slow": Receiver(secret="s", answer_s=lambda _r: next(answers))}
    store = MemoryStore([hook("slow", "s")])
    rng = random.Random(2)

    async def main() -> None:
        hub = EventHub()
        dispatcher = WebhookDispatcher(
            hub, settings=SHORT, store=store, transport=Receivers(receivers, rng), wall_clock_s=wall_clock_s
        )
        await dispatcher.start(context=None)
        hub.publish(event(rng, 1_800_000_000_000))
        await asyncio.sleep(60)
        await dispatcher.stop()

    run_virtual(main)
    first, second = store.attempts
    assert first.error == "no answer within 5 s" and first.status_code is None and first.duration_ms == 5_000
    assert second.delivered and second.status_code == 200 and second.duration_ms == 10


def test_a_failing_store_does_not_stop_the_worker() -> None:
    class Flaky(MemoryStore):
        calls = 0

        async def was_delivered(self, webhook_id: str, event_key: str) -> bool:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("Cassandra is away")
            return await super().was_delivered(webhook_id, event_key)

    receivers = {"r": Receiver(secret="s")}
    store = Flaky([hook("r", "s")])
    rng = random.Random(3)
    events = [event(rng, 1_800_000_000_000 + i * 1_000) for i in range(3)]

    async def main() -> None:
        hub = EventHub()
        dispatcher = WebhookDispatcher(
            hub, settings=SHORT, store=store, transport=Receivers(receivers, rng), wall_clock_s=wall_clock_s
        )
        await dispatcher.start(context=None)
        for e in events:
            hub.publish(e)
        await asyncio.sleep(10)
        await dispatcher.stop()

    run_virtual(main)
    assert [k for k, _ in receivers["r"].acked] == [e.key for e in events[1:]]


def test_a_registry_change_reaches_the_running_dispatcher_on_refresh() -> None:
    receivers = {"a": Receiver(secret="s1")}
    store = MemoryStore([hook("a", "s1", kinds=frozenset({"bump"}))])
    rng = random.Random(4)
    brake = dataclasses.replace(event(rng, 1_800_000_000_000), kind="harsh_brake")
    later = dataclasses.replace(brake, start_ms=brake.start_ms + 5_000)

    async def main() -> None:
        hub = EventHub()
        dispatcher = WebhookDispatcher(
            hub, settings=SHORT, store=store, transport=Receivers(receivers, rng), wall_clock_s=wall_clock_s
        )
        await dispatcher.start(context=None)
        hub.publish(brake)  # not wanted yet
        await asyncio.sleep(1)
        # The admin widens the kinds and rotates the secret: the next event is delivered, signed with the new one.
        store.hooks = [hook("a", "s2", kinds=frozenset({"bump", "harsh_brake"}))]
        receivers["a"].secret = "s2"
        await dispatcher.refresh()
        hub.publish(later)
        await asyncio.sleep(1)
        store.hooks = []  # deleted: its lane stops
        await dispatcher.refresh()
        hub.publish(dataclasses.replace(later, start_ms=later.start_ms + 1))
        await asyncio.sleep(1)
        assert dispatcher.dropped == {}
        await dispatcher.stop()

    run_virtual(main)
    assert [k for k, _ in receivers["a"].acked] == [later.key]
    assert receivers["a"].bad_signatures == 0


def test_the_virtual_clock_really_jumps() -> None:
    async def main() -> float:
        await asyncio.sleep(86_400)
        return asyncio.get_running_loop().time()

    assert run_virtual(main) == pytest.approx(86_400)


def test_counts_by_outcome_are_plausible_over_the_seeds() -> None:
    # Not a property: a look at what the simulation exercised, so a change that stops it failing anything shows.
    outcomes: dict[str, int] = defaultdict(int)
    for seed in range(40):
        for a in simulate(seed).store.attempts:
            outcomes["delivered" if a.delivered else (a.error or "?").split(":")[0].split(" ")[0]] += 1
    assert outcomes["delivered"] > 100
    assert outcomes["ConnectError"] > 20 and outcomes["no"] > 5 and outcomes["the"] > 5, dict(outcomes)
