"""CSV of every list, the rest of them: a GET answered with JSON that is a list of records (or a record holding one
list of records: a leaderboard, a review queue) becomes a CSV file when the client asks for one (`?format=csv` or
`Accept: text/csv`). The long lists (events, the fleet, vehicles) stream their CSV page by page themselves
(service/csv_stream.py) and pass through untouched; these are bounded lists a route has already built in memory.

A pure ASGI middleware, so the live stream and every answer not asked as CSV go through without being read."""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from urllib.parse import parse_qs

from fleetsense.service.csv_stream import CSV_MEDIA_TYPE, _cell, safe_filename

Scope = dict[str, Any]


def records_of(data: Any) -> list[dict[str, Any]] | None:
    """The records a JSON answer lists: the answer itself when it is a list of objects, or the one list of objects
    an object holds; None when it is no list (or holds several)."""
    if isinstance(data, list):
        return data if all(isinstance(item, dict) for item in data) else None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)]
        if len(lists) == 1:
            return lists[0]
        empty = [v for v in data.values() if isinstance(v, list)]
        if not lists and len(empty) == 1:
            return []
    return None


def csv_text(records: list[dict[str, Any]]) -> str:
    """RFC 4180 text: a header of every key in first-seen order, a row per record (a missing key is an empty cell)."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(list(names))
    writer.writerows([_cell(record.get(name)) for name in names] for record in records)
    return out.getvalue()


def asks_csv(scope: Scope) -> bool:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if "format" in query:
        return bool(query["format"][-1] == "csv")
    accept = dict(scope.get("headers") or []).get(b"accept", b"").decode("latin-1")
    return any(part.split(";")[0].strip().lower() == CSV_MEDIA_TYPE for part in accept.split(","))


class CsvExport:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not asks_csv(scope):
            await self.app(scope, receive, send)
            return
        started: dict[str, Any] = {}
        body: list[bytes] = []
        passing = False

        async def capture(message: dict[str, Any]) -> None:
            nonlocal passing
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                kind = headers.get(b"content-type", b"")
                encoded = b"content-encoding" in headers  # a pre-compressed answer: not ours to rewrite
                passing = message["status"] != 200 or encoded or not kind.startswith(b"application/json")
                if passing:
                    await send(message)
                else:
                    started.update(message)
                return
            if passing:
                await send(message)
                return
            body.append(message.get("body", b""))
            if not message.get("more_body"):
                await self._answer(scope, started, b"".join(body), send)

        await self.app(scope, receive, capture)

    async def _answer(self, scope: Scope, started: dict[str, Any], body: bytes, send: Any) -> None:
        records = records_of(json.loads(body or b"null"))
        if records is None:
            status, kind = 406, b"application/json"
            payload = json.dumps({"detail": "this answer is no list, so it has no CSV: ask for JSON"}).encode()
            extra: list[tuple[bytes, bytes]] = []
        else:
            status, kind = 200, f"{CSV_MEDIA_TYPE}; charset=utf-8".encode()
            payload = csv_text(records).encode()
            name = safe_filename(scope["path"].removeprefix("/v1/").replace("/", "-") + ".csv")
            extra = [(b"content-disposition", f'attachment; filename="{name}"'.encode())]
        headers = [(k, v) for k, v in started.get("headers", []) if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", kind), (b"content-length", str(len(payload)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
