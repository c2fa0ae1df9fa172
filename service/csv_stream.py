"""CSV for every list: `Accept: text/csv` or `?format=csv` answers the list as a streamed CSV file, written page by
page as Cassandra returns them (never the whole list in memory), following the cursor to the end of the range.

Generic over any pydantic model of flat-ish fields: the header is the model's field names in declaration order; a
value that is a list or a mapping is written as compact JSON, a time as ISO 8601, a null as an empty cell.

    if wants_csv(request, format):
        return csv_response(Event, pages(fetch_page, cursor), "events.csv")
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

CSV_MEDIA_TYPE = "text/csv"
Format = Literal["json", "csv"]
M = TypeVar("M", bound=BaseModel)
C = TypeVar("C")
CSV_PAGE_ITEMS = 1_000  # items a page when a list is exported: the API's largest page


def wants_csv(request: Request, format: Format | None) -> bool:
    """`?format=` decides when given; otherwise the Accept header (text/csv before any JSON type)."""
    if format is not None:
        return format == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == CSV_MEDIA_TYPE for part in accept.split(","))


def header(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def cells(item: BaseModel, names: list[str]) -> list[str]:
    data = item.model_dump(mode="json")
    return [_cell(data[name]) for name in names]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def csv_lines(model: type[M], pages: AsyncIterator[list[M]]) -> AsyncIterator[str]:
    """The header row, then each page's rows as one chunk of text."""
    names = header(model)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(names)
    yield out.getvalue()
    async for page in pages:
        out.seek(0)
        out.truncate()
        writer.writerows(cells(item, names) for item in page)
        if out.tell():
            yield out.getvalue()


def csv_response(model: type[M], pages: AsyncIterator[list[M]], filename: str) -> StreamingResponse:
    return StreamingResponse(
        csv_lines(model, pages),
        media_type=f"{CSV_MEDIA_TYPE}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{safe_filename(filename)}"'},
    )


def safe_filename(name: str) -> str:
    """`name` with anything but letters, digits, '.', '-' and '_' made '_' (it may hold a path parameter: a quote or
    a line break would break the header), at most 100 characters."""
    kept = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in name)
    return kept[-100:] or "list.csv"


async def follow(
    fetch: Callable[[C | None], Awaitable[tuple[list[M], C | None]]], first: C | None
) -> AsyncIterator[list[M]]:
    """Every page of a list, from `first` (None: the beginning) until `fetch` returns no next cursor."""
    cursor = first
    while True:
        items, cursor = await fetch(cursor)
        yield items
        if cursor is None:
            return
