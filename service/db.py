"""Cassandra from the event loop: the driver's own async requests (`execute_async`) bridged into asyncio futures, so a
request handler never blocks the loop on a query. Statements are prepared once (a blocking call, made in a worker
thread) and cached; reads are the readers' declared statements (`Table.read`, cloud/tables.py) at their consistency,
and the service's writes are its tables' declared INSERTs (`Table.row`, `SERVICE_WRITTEN`).

A page is `Page(rows, paging_state)`: Cassandra's opaque paging state, handed back to continue where the page ended
(service/cursor.py makes it a signed cursor a client cannot forge).

Results are versioned (issue 19): `keyspace_of` is where every read is routed, the result tables to the keyspace of
the version the request is pinned to (service/result_version.py), every other table to the main keyspace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from fleetsense.cloud.query import reads_results
from fleetsense.cloud.result_versions import FLEET, versions_of
from fleetsense.cloud.table_model import Read, Table, Write
from fleetsense.cloud.tables import RESULT_VERSIONS, SERVICE_WRITTEN
from fleetsense.service.result_version import Active, ActiveVersionCache, Pin, current_pin, pinned
from fleetsense.service.settings import RESULTS_VERSION_CACHE_S

# A row's removal: its table (one the service writes) and its whole primary key's values, in key order.
Delete = tuple[Table, Sequence[Any]]
PAGE_ROWS = 500  # rows a page unless a reader says otherwise
_VERSIONS = RESULT_VERSIONS.read(*RESULT_VERSIONS.written_columns, where=("fleet",))


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    paging_state: bytes | None  # None: this was the last page


class Db:
    """One driver session shared by every request of the process (the driver multiplexes it)."""

    def __init__(
        self,
        session: Any,
        keyspace: str,
        *,
        results_cache_s: float = RESULTS_VERSION_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.keyspace = keyspace  # the main keyspace: every table but the results of versions after the first
        self.results = ActiveVersionCache(
            self._read_versions, main_keyspace=keyspace, ttl_s=results_cache_s, clock=clock
        )
        self._prepared: dict[tuple[str, str, str], Any] = {}
        self._lock = asyncio.Lock()

    def pinned(self) -> AbstractContextManager[Pin]:
        """Every read inside reads one result version (service/result_version.py): a request, a background pass."""
        return pinned(self.results)

    async def active_version(self) -> Active:
        """The result version a read here sees: the pin's (resolved at its first need), else the cache's now."""
        pin = current_pin()
        if pin is not None and pin.cache is self.results:
            return await pin.active()
        return await self.results.current()

    async def keyspace_of(self, read: Read) -> str:
        """Where a read goes: a result table's to the active version's keyspace, any other to the main one."""
        if not reads_results(read):
            return self.keyspace  # no version needed (the read of the versions themselves is one of these)
        return (await self.active_version()).keyspaces.of(read)

    async def _read_versions(self) -> tuple[int, list[Any]]:
        return versions_of(await self.rows(_VERSIONS, (FLEET,)), self.keyspace)

    async def prepared(self, cql: str, consistency: str, keyspace: str | None = None) -> Any:
        """`cql` (keyspace as `{ks}`, markers `?`) prepared at `consistency` in `keyspace` (None: the main one), once
        per process."""
        keyspace = keyspace or self.keyspace
        key = (cql, consistency, keyspace)
        if (found := self._prepared.get(key)) is not None:
            return found
        async with self._lock:
            if (cached := self._prepared.get(key)) is not None:
                return cached
            from cassandra import ConsistencyLevel

            made = await asyncio.to_thread(self.session.prepare, cql.format(ks=keyspace))
            made.consistency_level = ConsistencyLevel.name_to_value[consistency]
            self._prepared[key] = made
        return made

    async def page(
        self,
        read: Read,
        params: Sequence[Any] = (),
        *,
        page_rows: int = PAGE_ROWS,
        paging_state: bytes | None = None,
        suffix: str = "",
    ) -> Page:
        """One page of a reader's statement (`read.cql` written with `%s` markers by `Table.read`; prepared here with
        `?`), `suffix` appended (" LIMIT 10", " AND start_time >= ?": its values after `params`), in the keyspace
        `keyspace_of` routes it to."""
        return await self._page(read, params, await self.keyspace_of(read), page_rows, paging_state, suffix)

    async def _page(
        self,
        read: Read,
        params: Sequence[Any],
        keyspace: str,
        page_rows: int,
        paging_state: bytes | None,
        suffix: str,
    ) -> Page:
        statement = await self.prepared(read.cql.replace("%s", "?") + suffix, read.consistency, keyspace)
        bound = statement.bind(list(params))
        bound.fetch_size = page_rows
        result = await self._execute(bound, paging_state)
        return Page(list(result.current_rows), result.paging_state)

    async def rows(self, read: Read, params: Sequence[Any] = (), *, suffix: str = "", most: int = 100_000) -> list[Any]:
        """Every row of a reader's statement, page after page, at most `most` (a bound, never expected to bite); every
        page from the one keyspace the first was routed to (a paging state is only valid in its own table)."""
        keyspace = await self.keyspace_of(read)
        out: list[Any] = []
        state: bytes | None = None
        while True:
            page = await self._page(read, params, keyspace, PAGE_ROWS, state, suffix)
            out.extend(page.rows)
            state = page.paging_state
            if state is None or len(out) >= most:
                return out[:most]

    async def write(self, *writes: Write, deletes: Sequence[Delete] = (), logged_batch: bool = False) -> None:
        """The service's writes (built by `Table.row` for a table of `SERVICE_WRITTEN`) and removals of rows by their
        whole key, each at its table's write consistency; all in one logged batch when they must land together (an
        assignment and its mirror; a corrected assignment's old rows and its new ones)."""
        statements = []
        for name, values in writes:
            table = SERVICE_WRITTEN[name]
            prepared = await self.prepared(table.insert_cql(), table.write_consistency)
            statements.append(prepared.bind(list(values)))
        for table, key in deletes:
            if SERVICE_WRITTEN.get(table.write or "") is not table:
                raise ValueError(f"the service deletes only from its own tables, not {table.name}")
            prepared = await self.prepared(delete_cql(table), table.write_consistency)
            statements.append(prepared.bind(list(key)))
        if logged_batch and len(statements) > 1:
            from cassandra.query import BatchStatement, BatchType

            batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=statements[0].consistency_level)
            for bound in statements:
                batch.add(bound)
            await self._execute(batch, None)
            return
        await asyncio.gather(*(self._execute(bound, None) for bound in statements))

    async def execute(self, cql: str, params: Sequence[Any] = (), *, consistency: str = "LOCAL_QUORUM") -> list[Any]:
        """Any other statement (a DELETE by key; keyspace as `{ks}`, markers `?`): its first page."""
        statement = await self.prepared(cql, consistency)
        result = await self._execute(statement.bind(list(params)), None)
        return list(result.current_rows)

    async def _execute(self, statement: Any, paging_state: bytes | None) -> Any:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        future = self.session.execute_async(statement, paging_state=paging_state)

        def resolve(_rows: Any) -> None:
            # The driver's I/O thread: the request is complete, so result() returns at once.
            loop.call_soon_threadsafe(_settle, done, future.result, None)

        def fail(error: BaseException) -> None:
            loop.call_soon_threadsafe(_settle, done, None, error)

        future.add_callbacks(resolve, fail)
        return await done


def delete_cql(table: Table) -> str:
    """The DELETE of one row of `table` by its whole primary key (keyspace as `{ks}`, markers `?` in key order)."""
    where = " AND ".join(f"{name} = ?" for name in table.key_names)
    return f"DELETE FROM {{ks}}.{table.name} WHERE {where}"


def _settle(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is not None:
        done.set_exception(error)
    else:
        try:
            done.set_result(result())
        except BaseException as exc:  # the driver's result() re-raises the request's error
            done.set_exception(exc)
