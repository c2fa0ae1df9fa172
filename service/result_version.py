"""Which result version a read sees (issue 19; docs/plan-19-versions.md §2). Results are versioned, one keyspace per
version, and `result_versions` (cloud/result_versions.py) names the active one. A process caches the active version
for `results_version_cache_s` (ActiveVersionCache), and each request pins one version at its start (Pin, held in a
context variable that the tasks a request starts share), so a response never mixes two versions; a promotion
reaches the requests that start after the cache time. A read outside any pin (a background component's) takes the
cache's version at that moment.

No I/O here: the cache reads through the source it is given (service/db.py gives it Cassandra), on the clock it is
given, so the rules are tested alone (tests/unit/test_service_result_versions.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from fleetsense.cloud.analytics.events import DEFAULT_VEHICLE_CLASS, VEHICLE_CLASSES, EventThresholds
from fleetsense.cloud.query import Keyspaces
from fleetsense.cloud.result_versions import ResultVersion, keyspace_of, versions_of
from fleetsense.cloud.stream_settings import parse_thresholds

# Every response of a request pinned to a version names it (service/results_http.py).
HEADER = "X-Fleetsense-Results-Version"

# One read of `result_versions`: the active version's number and every version (cloud's `versions_of`).
VersionSource = Callable[[], Awaitable[tuple[int, list[ResultVersion]]]]


@dataclass(frozen=True)
class Active:
    """The active result version as one read of `result_versions` found it, and every version beside it."""

    main_keyspace: str
    version: int
    versions: tuple[ResultVersion, ...]

    @property
    def record(self) -> ResultVersion | None:
        return next((v for v in self.versions if v.version == self.version), None)

    @property
    def keyspaces(self) -> Keyspaces:
        """Where each read goes under this version (cloud/query.py's rule: the result tables to its keyspace)."""
        record = self.record
        results = record.results_keyspace if record is not None else keyspace_of(self.main_keyspace, self.version)
        return Keyspaces(main=self.main_keyspace, results=results)

    @property
    def settings(self) -> Mapping[str, Any]:
        """The result-affecting job settings the version was computed with ({}: the code's defaults)."""
        record = self.record
        return record.settings if record is not None else {}


def code_only() -> Active:
    """What an app without a database serves (its OpenAPI document, a browser test): version 1 as no read of
    `result_versions` found any, computed with the code's own settings."""
    version, versions = versions_of((), "")
    return Active("", version, tuple(versions))


def class_thresholds(active: Active) -> Mapping[str, EventThresholds]:
    """Every vehicle class's event thresholds as the version computed its results: its `thresholds` setting over the
    code's (cloud/stream_settings.py), the code's (VEHICLE_CLASSES) when it has none."""
    return parse_thresholds(str(active.settings.get("thresholds", "")))


def default_class(active: Active) -> str:
    """The class of a vehicle nobody set one for, as the version's job had it (its `vehicle_class` setting)."""
    chosen = active.settings.get("vehicle_class")
    return chosen if isinstance(chosen, str) and chosen in VEHICLE_CLASSES else DEFAULT_VEHICLE_CLASS


class ActiveVersionCache:
    """The active version, read through `source` at most once per `ttl_s` of `clock` (one read at a time: callers
    arriving during a read wait for it). A value is as old as the moment its read started, so a promotion is seen
    by every call that starts more than `ttl_s` after it (plus one read's duration). A failed read raises to its
    callers and is tried again by the next call."""

    def __init__(
        self,
        source: VersionSource,
        *,
        main_keyspace: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self.main_keyspace = main_keyspace
        self.ttl_s = ttl_s
        self._clock = clock
        self._value: Active | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()
        self.reads = 0  # reads of the source since start (a test's measure of the cache)

    def _fresh(self) -> Active | None:
        if self._value is not None and self._clock() - self._read_at < self.ttl_s:
            return self._value
        return None

    async def current(self) -> Active:
        if (fresh := self._fresh()) is not None:
            return fresh
        async with self._lock:
            if (fresh := self._fresh()) is not None:  # read by the caller we waited for
                return fresh
            started = self._clock()
            self.reads += 1
            version, versions = await self._source()
            self._value = Active(self.main_keyspace, version, tuple(versions))
            self._read_at = started
            return self._value


class Pin:
    """One request's result version: the cache's at the request's first need of it, then the same for every read
    of the request, whichever of its tasks makes it."""

    def __init__(self, cache: ActiveVersionCache) -> None:
        self.cache = cache
        self._active: Active | None = None

    @property
    def resolved(self) -> Active | None:
        return self._active

    async def active(self) -> Active:
        if self._active is None:
            found = await self.cache.current()
            if self._active is None:  # two tasks of the request asked at once: the first answer holds for both
                self._active = found
        return self._active


_PIN: ContextVar[Pin | None] = ContextVar("fleetsense_results_pin", default=None)


def current_pin() -> Pin | None:
    return _PIN.get()


def pinned_version() -> int | None:
    """The version the running request reads, once resolved (None: no pin, or not resolved yet)."""
    pin = _PIN.get()
    return None if pin is None or pin.resolved is None else pin.resolved.version


@contextmanager
def pinned(cache: ActiveVersionCache) -> Iterator[Pin]:
    """Every read inside, and in the tasks started inside, reads one version: the first read's. Inside another pin
    (of the same cache) that one holds: a request's parts never re-pin."""
    outer = _PIN.get()
    if outer is not None and outer.cache is cache:
        yield outer
        return
    pin = Pin(cache)
    token = _PIN.set(pin)
    try:
        yield pin
    finally:
        _PIN.reset(token)
