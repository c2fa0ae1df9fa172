"""CSV of the bounded lists (service/csv_export.py): which JSON answers are lists, the CSV they become, and the
middleware that converts only what a client asked as CSV, letting streams and everything else through unread."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fleetsense.service.csv_export import CsvExport, csv_text, records_of
from hypothesis import given, settings
from hypothesis import strategies as st

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
@settings(max_examples=2_000)
def test_any_json_answer_is_records_or_none_never_an_error(data: Any) -> None:
    records = records_of(data)
    if records is not None:
        assert all(isinstance(r, dict) for r in records)
        text = csv_text(records)
        rows = list(csv.reader(io.StringIO(text)))
        assert len(rows) == len(records) + 1


@given(
    st.lists(st.dictionaries(st.sampled_from("abcde"), st.text(max_size=10) | st.integers(), min_size=1, max_size=5))
)
@settings(max_examples=1_000)
def test_records_read_back_cell_for_cell(records: list[dict[str, Any]]) -> None:
    back = list(csv.DictReader(io.StringIO(csv_text(records))))
    assert len(back) == len(records)
    for sent, got in zip(records, back, strict=True):
        assert {k: str(v) for k, v in sent.items()} == {k: v for k, v in got.items() if k in sent}
        assert all(v == "" for k, v in got.items() if k not in sent)


def test_a_record_holding_one_list_is_that_list_and_two_lists_are_none() -> None:
    assert records_of({"period": "day", "entries": [{"a": 1}]}) == [{"a": 1}]
    assert records_of({"manager": "m", "events": [], "more": False}) == []
    assert records_of({"x": [{"a": 1}], "y": [{"b": 2}]}) is None
    assert records_of({"t_ms": [1, 2], "g": [0.1, 0.2]}) is None
    assert records_of([1, 2]) is None


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/things")
    async def things() -> list[dict[str, Any]]:
        return [{"id": "a", "n": 1, "tags": ["x"]}, {"id": "b", "n": None}]

    @app.get("/v1/board")
    async def board() -> dict[str, Any]:
        return {"period": "week", "entries": [{"driver": "d1", "score": 90.5}]}

    @app.get("/v1/one")
    async def one() -> dict[str, Any]:
        return {"id": "a"}

    @app.get("/v1/stream")
    async def stream() -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            yield b"data: 1\n\n"

        return StreamingResponse(lines(), media_type="text/event-stream")

    app.add_middleware(CsvExport)
    return app


def _get(path: str, **headers: str) -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(main())


def test_a_list_asked_as_csv_is_csv_and_json_otherwise() -> None:
    answer = _get("/v1/things?format=csv")
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="things.csv"' in answer.headers["content-disposition"]
    assert answer.text == 'id,n,tags\r\na,1,"[""x""]"\r\nb,,\r\n'
    assert _get("/v1/board", accept="text/csv").text == "driver,score\r\nd1,90.5\r\n"
    assert _get("/v1/things").json()[0]["id"] == "a"
    assert _get("/v1/things?format=json").headers["content-type"] == "application/json"


def test_no_list_is_a_clear_406_and_a_stream_passes_untouched() -> None:
    refused = _get("/v1/one?format=csv")
    assert refused.status_code == 406 and "no list" in json.loads(refused.text)["detail"]
    streamed = _get("/v1/stream?format=csv")
    assert streamed.headers["content-type"].startswith("text/event-stream") and streamed.text == "data: 1\n\n"
    assert _get("/v1/missing?format=csv").status_code == 404
