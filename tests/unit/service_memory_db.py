"""An in-memory model of the service's database for unit tests: `service.db.Db`'s interface over dicts, one per
table, keyed by each table's declared primary key, returning rows as the driver does (timestamps as naive UTC
datetimes, a partition's rows in clustering order). A logged batch applies its writes, then its deletes: in one
batch every statement has the same timestamp and a tombstone wins a tie, as in Cassandra."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

from fleetsense.cloud.table_model import Order, Read, Table, Write
from fleetsense.cloud.tables import SERVICE_WRITTEN, TABLES
from fleetsense.service.db import Delete, Page

_SELECT = re.compile(r"SELECT (?P<cols>.+?) FROM \{ks\}\.(?P<table>\w+)(?: WHERE (?P<where>.+))?$")
_INSERT = re.compile(r"INSERT INTO \{ks\}\.(?P<table>\w+) \((?P<cols>[^)]+)\) VALUES")
BY_NAME: dict[str, Table] = {t.name: t for t in TABLES if t.dropped is None}


def _stored(table: Table, column: str, value: Any) -> Any:
    cql_type = table.column(column).cql_type
    if value is None:
        return None
    if cql_type == "timestamp" and isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None)
    if cql_type == "timestamp" and isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if cql_type == "date":
        assert isinstance(value, date), f"{table.name}.{column} bound with {value!r}"
    return value


class MemoryDb:
    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self.batches = 0  # logged batches written

    # --- seeding and inspecting ----------------------------------------------------------------------------------

    def put(self, table: Table, **values: Any) -> None:
        row = {c: _stored(table, c, values.get(c)) for c in table.written_columns}
        key = tuple(row[k] for k in table.key_names)
        self.tables.setdefault(table.name, {})[key] = row

    def all(self, table: Table) -> list[dict[str, Any]]:
        return list(self.tables.get(table.name, {}).values())

    def _delete(self, table: Table, key: Sequence[Any]) -> None:
        stored = tuple(_stored(table, k, v) for k, v in zip(table.key_names, key, strict=True))
        self.tables.get(table.name, {}).pop(stored, None)

    # --- Db's interface -----------------------------------------------------------------------------------------

    async def rows(self, read: Read, params: Sequence[Any] = (), *, suffix: str = "", most: int = 100_000) -> list[Any]:
        return self._select(read, params)[:most]

    async def page(
        self,
        read: Read,
        params: Sequence[Any] = (),
        *,
        page_rows: int = 500,
        paging_state: bytes | None = None,
        suffix: str = "",
    ) -> Page:
        found = self._select(read, params)
        start = int(paging_state or b"0")
        end = start + page_rows
        return Page(found[start:end], str(end).encode() if end < len(found) else None)

    async def write(self, *writes: Write, deletes: Sequence[Delete] = (), logged_batch: bool = False) -> None:
        for name, values in writes:
            table = SERVICE_WRITTEN[name]
            self.put(table, **dict(zip(table.written_columns, values, strict=True)))
        for table, key in deletes:
            self._delete(table, key)
        if logged_batch and len(writes) + len(deletes) > 1:
            self.batches += 1

    async def execute(self, cql: str, params: Sequence[Any] = (), *, consistency: str = "LOCAL_QUORUM") -> list[Any]:
        insert = _INSERT.match(cql)
        assert insert, f"the memory db runs INSERTs only: {cql}"
        table = BY_NAME[insert["table"]]
        self.put(table, **dict(zip((c.strip() for c in insert["cols"].split(",")), params, strict=True)))
        return []

    def _select(self, read: Read, params: Sequence[Any]) -> list[Any]:
        match = _SELECT.match(read.cql)
        assert match, read.cql
        table = BY_NAME[match["table"]]
        where = [w.split(" = ")[0] for w in (match["where"] or "").split(" AND ") if w]
        wanted = {c: _stored(table, c, v) for c, v in zip(where, params, strict=True)}
        found = [r for r in self.tables.get(table.name, {}).values() if all(r[c] == v for c, v in wanted.items())]
        for column, order in reversed(table.clustering):
            found.sort(key=lambda r, c=column: r[c], reverse=order is Order.DESC)  # type: ignore[misc]
        columns = [c.strip() for c in match["cols"].split(",")]
        return [SimpleNamespace(**{c: r[c] for c in columns}) for r in found]
