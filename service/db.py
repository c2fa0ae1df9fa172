"""Cassandra from the event loop: the driver's own async requests (`execute_async`) bridged into asyncio futures, so a
request handler never blocks the loop on a query. Statements are prepared once (a blocking call, made in a worker
thread) and cached; reads are the readers' declared statements (`Table.read`, cloud/tables.py) at their consistency,
and the service's writes are its tables' declared INSERTs (`Table.row`, `SERVICE_WRITTEN`).

A page is `Page(rows, paging_state)`: Cassandra's opaque paging state, handed back to continue where the page ended
(service/cursor.py makes it a signed cursor a client cannot forge)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetsense.cloud.table_model import Read, Table, Write
from fleetsense.cloud.tables import SERVICE_WRITTEN

# A row's removal: its table (one the service writes) and its whole primary key's values, in key order.
Delete = tuple[Table, Sequence[Any]]


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    paging_state: bytes | None  # None: this was the last page


class Db:
    """One driver session shared by every request of the process (the driver multiplexes it)."""

    def __init__(self, session: Any, keyspace: str) -> None:
        self.session = session
        self.keyspace = keyspace
        self._prepared: dict[tuple[str, str], Any] = {}
        self._lock = asyncio.Lock()

    async def prepared(self, cql: str, consistency: str) -> Any:
        """`cql` (keyspace as `{ks}`, markers `?`) prepared at `consistency`, once per process."""
        key = (cql, consistency)
        if (found := self._prepared.get(key)) is not None:
            return found
        async with self._lock:
            if (cached := self._prepared.get(key)) is not None:
                return cached
            from cassandra import ConsistencyLevel

            made = await asyncio.to_thread(self.session.prepare, cql.format(ks=self.keyspace))
            made.consistency_level = ConsistencyLevel.name_to_value[consistency]
            self._prepared[key] = made
        return made

    async def page(
        self,
        read: Read,
        params: Sequence[Any] = (),
        *,
        page_rows: int = 500,
        paging_state: bytes | None = None,
        suffix: str = "",
    ) -> Page:
        """One page of a reader's statement (`read.cql` written with `%s` markers by `Table.read`; prepared here with
        `?`), `suffix` appended (" LIMIT 10", " AND start_time >= ?": its values after `params`)."""
        statement = await self.prepared(read.cql.replace("%s", "?") + suffix, read.consistency)
        bound = statement.bind(list(params))
        bound.fetch_size = page_rows
        result = await self._execute(bound, paging_state)
        return Page(list(result.current_rows), result.paging_state)

    async def rows(self, read: Read, params: Sequence[Any] = (), *, suffix: str = "", most: int = 100_000) -> list[Any]:
        """Every row of a reader's statement, page after page, at most `most` (a bound, never expected to bite)."""
        out: list[Any] = []
        state: bytes | None = None
        while True:
            page = await self.page(read, params, paging_state=state, suffix=suffix)
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
