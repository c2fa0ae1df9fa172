"""The signed cursor (service/cursor.py) and the walk over partitions it resumes (service/fleet_walk.py): a cursor
round-trips, any other text is refused with a CursorError (a 400 through the API, never a 5xx), and following the
cursors of any list, with any page size and any short pages Cassandra may return, yields every row exactly once in
order (2,000 seeded random lists)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from fleetsense.cloud.table_model import Read
from fleetsense.service import cursor as c
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.context import ServiceContext
from fleetsense.service.db import Page
from fleetsense.service.fleet_walk import Partition, resume_index, walk
from fleetsense.service.roles import Principal, Role
from fleetsense.service.settings import ServeSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KEY = c.signing_key("a secret")
QUERY = c.query_tag("events", None, None, "harsh_brake")
positions = st.lists(st.one_of(st.text(max_size=20), st.integers(-(2**53), 2**53)), max_size=4).map(tuple)
states = st.one_of(st.none(), st.binary(max_size=64))
pinned = st.lists(st.integers(-(2**62), 2**62), max_size=3).map(tuple)


@given(positions, states, pinned)
def test_a_cursor_round_trips(position: tuple[Any, ...], state: bytes | None, pin: tuple[int, ...]) -> None:
    cursor = c.Cursor(position, state, pin)
    assert c.decode(c.encode(cursor, key=KEY, query=QUERY), key=KEY, query=QUERY) == cursor


@given(positions, states, st.data())
def test_any_changed_character_is_refused(position: tuple[Any, ...], state: bytes | None, data: st.DataObject) -> None:
    text = c.encode(c.Cursor(position, state), key=KEY, query=QUERY)
    index = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.sampled_from("AQgw-_xyz09").filter(lambda ch: ch != text[index]))
    changed = text[:index] + replacement + text[index + 1 :]
    try:
        decoded = c.decode(changed, key=KEY, query=QUERY)
    except c.CursorError:
        return
    # Only the last character's unused low bits may change without changing the bytes.
    assert index == len(text) - 1 and decoded == c.Cursor(position, state)


def test_another_key_or_another_query_is_refused_with_a_reason() -> None:
    text = c.encode(c.Cursor(("2026-12-06", 13), b"state"), key=KEY, query=QUERY)
    with pytest.raises(c.CursorError, match="not made by this service"):
        c.decode(text, key=c.signing_key("another secret"), query=QUERY)
    with pytest.raises(c.CursorError, match="another list or other filters"):
        c.decode(text, key=KEY, query=c.query_tag("events", None, None, "bump"))


@given(st.text(max_size=300))
def test_any_text_is_a_cursor_error_never_another_exception(text: str) -> None:
    with pytest.raises(c.CursorError):
        c.decode(text, key=KEY, query=QUERY)


@given(st.binary(max_size=300))
def test_any_bytes_in_base64url_are_a_cursor_error(raw: bytes) -> None:
    with pytest.raises(c.CursorError):
        c.decode(c._b64(raw), key=KEY, query=QUERY)


def test_a_signed_payload_that_is_not_a_cursor_is_refused_as_another_version() -> None:
    for payload in (b"[]", b'{"v": 2}', b'{"v": 1, "q": "x"}', b'{"v":1,"q":"x","p":[1.5],"s":null,"n":[]}', b"\xff"):
        with pytest.raises(c.CursorError, match="another version"):
            c.decode(c._b64(payload + c._mac(KEY, payload)), key=KEY, query="x")


class _NoDb:
    """A database no request may reach: a refused cursor is refused before any query."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the database was used ({name}) for a request that should have been refused")


def _app() -> Any:
    context = ServiceContext(db=_NoDb(), settings=ServeSettings(secret_key="k" * 32))  # type: ignore[arg-type]
    app = create_app(context=context)
    app.dependency_overrides[current_principal] = lambda: Principal("v", Role.VIEWER, "token")
    return app


async def _get(app: Any, path: str, params: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get(path, params=params)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["/v1/events", "/v1/vehicles/van-1/events", "/v1/drivers/ann/events"]),
    st.text(min_size=1, max_size=200),
)
def test_through_the_api_any_cursor_text_is_a_400(path: str, text: str) -> None:
    answer = asyncio.run(_get(_app(), path, {"cursor": text}))
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"]


# --- the walk over partitions ------------------------------------------------------------------------------------

_READ = Read("SELECT * FROM {ks}.t WHERE p = %s", "LOCAL_QUORUM")


class ListDb:
    """Partitions as lists; pages of at most page_rows rows, sometimes shorter with more behind (Cassandra may return
    a short page), sometimes a paging state after the last row (an exact fill)."""

    def __init__(self, data: Sequence[list[int]], rng: random.Random) -> None:
        self.data, self.rng, self.queries = data, rng, 0

    async def page(self, read: Read, params: Sequence[Any], *, page_rows: int, paging_state: bytes | None = None,
                   suffix: str = "") -> Page:  # fmt: skip
        self.queries += 1
        rows = self.data[params[0]]
        start = int(paging_state or b"0")
        size = page_rows if self.rng.random() < 0.7 else self.rng.randint(0, page_rows)
        end = min(start + size, len(rows))
        more = end < len(rows) or (end == len(rows) and size > 0 and self.rng.random() < 0.2)
        return Page(rows[start:end], str(end).encode() if more else None)


def test_following_the_cursors_of_any_list_yields_every_row_once_in_order() -> None:
    for seed in range(2_000):
        rng = random.Random(seed)
        data = [[n * 100 + i for i in range(rng.choice([0, 0, 1, 2, 3, 7]))] for n in range(rng.randint(0, 8))]
        partitions = [Partition((len(data) - n,), _READ, (n,)) for n in range(len(data))]
        db = ListDb(data, rng)
        limit, most = rng.randint(1, 5), rng.randint(1, 4)
        got: list[int] = []
        cursor: c.Cursor | None = None
        for _ in range(1_000):
            page = asyncio.run(walk(db, partitions, cursor, limit, max_partitions=most))  # type: ignore[arg-type]
            assert len(page.rows) <= limit, seed
            got += [row for _, row in page.rows]
            if page.next is None:
                break
            text = c.encode(page.next, key=KEY, query=QUERY)  # as a client holds it
            cursor = c.decode(text, key=KEY, query=QUERY)
        assert got == [row for rows in data for row in rows], f"seed {seed}"


def test_a_cursor_whose_partition_is_gone_resumes_at_the_next_in_walk_order() -> None:
    partitions = [Partition(p, _READ, ()) for p in [(30, "b"), (20, "a"), (10, "z")]]
    assert resume_index(partitions, c.Cursor((20, "a"), b"s")) == (1, b"s")
    assert resume_index(partitions, c.Cursor((25, "q"), b"s")) == (1, None)
    assert resume_index(partitions, c.Cursor((5, "a"), b"s")) == (3, None)
    with pytest.raises(c.CursorError):
        resume_index(partitions, c.Cursor(("x", 1), None))
