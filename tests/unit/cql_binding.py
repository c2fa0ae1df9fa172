"""Binding the job's writes without a server: each statement's values serialised with the Cassandra driver's own
types for the columns the schema declares (cloud/schema.py), as `session.prepare(...).bind(values)` would on a
real cluster. A value its column cannot hold (a seq of 2^63, a float in an int column) raises here as it would
in the job."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from cassandra import cqltypes
from fleetsense.cloud import schema
from fleetsense.cloud.store import STATEMENTS

PROTOCOL = 3  # what the local stack speaks (cloud/cassandra_session.py)


def _cql_type(text: str) -> Any:
    collection = re.fullmatch(r"(map|list|set)<(.*)>", text.replace(" ", ""))
    if collection:
        kind, inner = collection.groups()
        parts = [_cql_type(part) for part in inner.split(",")]
        return {"map": cqltypes.MapType, "list": cqltypes.ListType, "set": cqltypes.SetType}[kind].apply_parameters(
            parts
        )
    return cqltypes._cqltypes[text]


@cache
def table_columns() -> dict[str, dict[str, Any]]:
    """Table -> column -> driver type, from the last CREATE TABLE of each table in the migrations and the columns
    added to it by ALTER TABLE."""
    tables: dict[str, dict[str, Any]] = {}
    for migration in schema.MIGRATIONS:
        for cql in migration.statements:
            table = re.search(r"CREATE TABLE IF NOT EXISTS \{ks\}\.(\w+) \((.*)\)", cql, re.S)
            if not table:
                continue
            columns: dict[str, Any] = {}
            for line in table.group(2).splitlines():
                column = re.fullmatch(r"\s*(\w+) ([\w<>, ]+?)( PRIMARY KEY)?,?\s*", line)
                if column and column.group(1) != "PRIMARY":
                    columns[column.group(1)] = _cql_type(column.group(2))
            tables[table.group(1)] = columns
    for migration in schema.MIGRATIONS:  # columns added later (schema.add_column)
        for cql in migration.statements:
            if added := schema.ADDED_COLUMN.fullmatch(cql):
                tables[added.group(1)][added.group(2)] = _cql_type(added.group(3))
    return tables


@cache
def statement_types(name: str) -> list[Any]:
    insert = re.match(r"INSERT INTO \{ks\}\.(\w+) \(([^)]*)\)", STATEMENTS[name])
    assert insert, name
    columns = table_columns()[insert.group(1)]
    types = [columns[column.strip()] for column in insert.group(2).split(",")]
    if "USING TIMESTAMP ?" in STATEMENTS[name]:
        types.append(cqltypes.LongType)
    return types


def bind(name: str, values: Sequence[Any]) -> list[bytes | None]:
    types = statement_types(name)
    if len(values) != len(types):
        raise ValueError(f"{name}: {len(values)} values for {len(types)} markers")
    return [None if value is None else t.to_binary(value, PROTOCOL) for t, value in zip(types, values, strict=True)]
