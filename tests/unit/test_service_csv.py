"""Streamed CSV (service/csv_stream.py): the header is the model's fields, each page is written as it comes (a chunk
per page, never the whole list first), any text survives the round trip through a CSV reader, and the format is
chosen by ?format= before the Accept header."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fleetsense.service.csv_stream import csv_lines, follow, header, safe_filename, wants_csv
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from starlette.requests import Request


class Row(BaseModel):
    name: str
    count: int | None
    when: datetime
    counts: dict[str, int]
    ok: bool


def _row(name: str, n: int | None = 1) -> Row:
    return Row(name=name, count=n, when=datetime(2026, 12, 6, 13, tzinfo=UTC), counts={"b": 2, "a": 1}, ok=True)


async def _pages(pages: list[list[Row]], seen: list[int]) -> AsyncIterator[list[Row]]:
    for index, page in enumerate(pages):
        seen.append(index)  # the pages asked for so far
        yield page


async def _chunks(pages: list[list[Row]]) -> tuple[list[str], list[list[int]]]:
    """Each chunk written, and which pages had been fetched when it was."""
    seen: list[int] = []
    chunks, fetched = [], []
    async for chunk in csv_lines(Row, _pages(pages, seen)):
        chunks.append(chunk)
        fetched.append(list(seen))
    return chunks, fetched


def test_the_header_is_the_fields_and_each_page_is_its_own_chunk_written_before_the_next_is_read() -> None:
    chunks, fetched = asyncio.run(_chunks([[_row("a"), _row("b", None)], [], [_row("c")]]))
    assert chunks[0] == "name,count,when,counts,ok\r\n"
    assert chunks[1] == (
        'a,1,2026-12-06T13:00:00Z,"{""a"":1,""b"":2}",true\r\nb,,2026-12-06T13:00:00Z,"{""a"":1,""b"":2}",true\r\n'
    )
    assert fetched == [[], [0], [0, 1, 2]]  # the empty page writes nothing; nothing waits for the whole list
    assert header(Row) == ["name", "count", "when", "counts", "ok"]


@given(st.lists(st.text(max_size=40), max_size=20))
def test_any_text_round_trips(names: list[str]) -> None:
    chunks, _ = asyncio.run(_chunks([[_row(n) for n in names]]))
    table = list(csv.reader(io.StringIO("".join(chunks), newline="")))
    assert [r[0] for r in table[1:]] == names


def _request(accept: str | None) -> Request:
    headers = [] if accept is None else [(b"accept", accept.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""})


def test_format_decides_before_accept() -> None:
    assert wants_csv(_request("text/csv"), None)
    assert wants_csv(_request("application/json;q=0.5, text/csv; q=1"), None)
    assert not wants_csv(_request("application/json"), None)
    assert not wants_csv(_request(None), None)
    assert wants_csv(_request("application/json"), "csv")
    assert not wants_csv(_request("text/csv"), "json")


def test_follow_fetches_until_no_cursor() -> None:
    asked: list[int | None] = []

    async def fetch(cursor: int | None) -> tuple[list[Row], int | None]:
        asked.append(cursor)
        n = 0 if cursor is None else cursor
        return [_row(str(n))], (n + 1 if n < 3 else None)

    async def collect() -> list[str]:
        return [page[0].name async for page in follow(fetch, None)]

    assert asyncio.run(collect()) == ["0", "1", "2", "3"]
    assert asked == [None, 1, 2, 3]


@given(st.text(max_size=300))
def test_a_filename_from_any_path_parameter_is_a_safe_header_value(name: str) -> None:
    safe = safe_filename(name)
    assert 0 < len(safe) <= 100 and all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in safe)
