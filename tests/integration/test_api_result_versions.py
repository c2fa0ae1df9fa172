"""The API reads the active result version (issue 19), against the real Cassandra: a version keyspace made by
schema.apply_result_schema holds one row of an event the main keyspace holds another of; while version 1 is active
the API serves the old row, a request in flight at the flip (cloud/result_versions.flip_active) keeps reading it,
and once the cache time has passed the API serves the new row, names the version in its header, lists it active,
shows its thresholds, and refuses a cursor made under the old one; `fleetsense query`'s keyspaces follow too.

The flip changes the active version of the session's stack for every later test: the test flips back to the version
it found and drops its keyspace, whatever happens."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fleetsense.cloud import query
from fleetsense.cloud import result_versions as rv
from fleetsense.cloud.schema import KEYSPACE, apply_result_schema
from fleetsense.cloud.store import CassandraWriter
from fleetsense.cloud.write_target import WRITES_RESULTS, WriteTarget
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.context import ServiceContext
from fleetsense.service.db import Db
from fleetsense.service.fleet_query import HOUR_MS, day_of
from fleetsense.service.result_version import HEADER
from fleetsense.service.results_http import PinResultsVersion
from fleetsense.service.roles import Principal, Role
from fleetsense.service.settings import ServeSettings

from fleetsense.stack.cassandra_auth import OPERATOR, session_as
from fleetsense.stack.layout import StackConfig

from .. import service_rows as rows

pytestmark = pytest.mark.integration
CACHE_S = 0.5  # the API's cache time here: a flip is served after it
THRESHOLDS = "van.harsh_brake_g=0.28"


def _app(db: Db) -> Any:
    app = create_app(context=ServiceContext(db=db, settings=ServeSettings(secret_key="test-secret-" + "x" * 32)))
    if not any(m.cls is PinResultsVersion for m in app.user_middleware):
        app.add_middleware(PinResultsVersion)  # until service/app.py adds it (tests/unit checks that it does)
    app.dependency_overrides[current_principal] = lambda: Principal("viewer", Role.VIEWER, "token")
    return app


def test_the_api_switches_to_the_new_version_at_the_flip_and_never_mixes(stack: StackConfig) -> None:
    tag = uuid.uuid4().hex[:6]
    vehicle = f"rv-{tag}"
    now_ms = time.time_ns() // 1_000_000
    hour = now_ms - now_ms % HOUR_MS - 2 * HOUR_MS
    starts = (hour + 60_000, hour + 120_000)  # two events in each version: a page of one has a cursor
    with session_as(stack, OPERATOR) as op:
        before, _ = rv.read_versions(op, KEYSPACE)
        version = rv.add_version(
            op,
            KEYSPACE,
            from_time=datetime.fromtimestamp(hour / 1000, UTC),
            settings={"thresholds": THRESHOLDS},
            job_name=f"test-api-result-versions-{tag}",
        )
        keyspace = rv.keyspace_of(KEYSPACE, version)
        flipped = False
        try:
            apply_result_schema(op, keyspace)
            rows.write_all(op, [w for at in starts for w in rows.event(vehicle, "harsh_brake", at, 900, 0.5)])
            # The new version's rows, as a reprocessing job writes them: its results, into its keyspace only.
            replay = WriteTarget(keyspace=KEYSPACE, results_keyspace=keyspace, writes=WRITES_RESULTS)
            CassandraWriter(op, replay).write_all(
                [w for at in starts for w in rows.event(vehicle, "harsh_brake", at, 900, 0.4)]
            )

            async def main() -> None:
                nonlocal flipped
                db = Db(op, KEYSPACE, results_cache_s=CACHE_S)
                app = _app(db)
                path = f"/v1/vehicles/{vehicle}/events"
                span = {"from": str(hour), "to": str(hour + HOUR_MS)}
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                    old = await client.get(path, params={**span, "limit": 1})
                    assert old.status_code == 200, old.text
                    assert old.headers[HEADER] == str(before)
                    assert [e["peak"] for e in old.json()["items"]] == [pytest.approx(0.5)]
                    cursor = old.json()["next_cursor"]
                    assert cursor is not None

                    # A request in flight at the flip reads the version it started with, to its end.
                    with db.pinned():
                        first = await db.rows(query._EVENTS, (vehicle, day_of(starts[0])))
                        flipped = rv.flip_active(op, KEYSPACE, before, version)
                        assert flipped
                        await asyncio.sleep(CACHE_S * 2)
                        second = await db.rows(query._EVENTS, (vehicle, day_of(starts[0])))
                    assert {round(r.peak, 3) for r in first} == {round(r.peak, 3) for r in second} == {0.5}

                    new = await client.get(path, params={**span, "limit": 10})
                    assert new.status_code == 200 and new.headers[HEADER] == str(version)
                    assert [e["peak"] for e in new.json()["items"]] == [pytest.approx(0.4)] * 2
                    refused = await client.get(path, params={**span, "limit": 1, "cursor": cursor})
                    assert refused.status_code == 400
                    assert f"reprocessed into version {version}" in refused.json()["detail"]

                    listed = (await client.get("/v1/result-versions")).json()
                    mine = next(v for v in listed if v["version"] == version)
                    assert mine["active"] and mine["state"] == rv.ACTIVE and mine["from_ms"] == hour
                    assert [v["version"] for v in listed if v["active"]] == [version]
                    classes = {c["name"]: c for c in (await client.get("/v1/vehicle-classes")).json()}
                    assert classes["van"]["thresholds_g"]["harsh_brake"] == pytest.approx(0.28)

            asyncio.run(main())
            where = query.active_keyspaces(op, KEYSPACE)
            assert where == query.Keyspaces(main=KEYSPACE, results=keyspace)
            assert {round(r.peak, 3) for r in query.events(op, where, vehicle, day_of(starts[0]))} == {0.4}
        finally:
            if flipped:
                assert rv.flip_active(op, KEYSPACE, version, before), "the stack's active version could not be restored"
            rv.drop_version(op, KEYSPACE, version)
        assert rv.read_versions(op, KEYSPACE)[0] == before
