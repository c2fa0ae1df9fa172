"""Binding the job's writes without a server: each statement's values serialised with the Cassandra driver's own
types for the columns its table declares (cloud/tables.py), as `session.prepare(...).bind(values)` would on a real
cluster. A value its column cannot hold (a seq of 2^63, a float in an int column) raises here as it would in the
job."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from cassandra import cqltypes
from fleetsense.cloud.tables import WRITTEN

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
def statement_types(name: str) -> list[Any]:
    table = WRITTEN[name]
    types = [_cql_type(table.column(column).cql_type) for column in table.written_columns]
    return [*types, cqltypes.LongType] if table.own_timestamp else types


def bind(name: str, values: Sequence[Any]) -> list[bytes | None]:
    types = statement_types(name)
    if len(values) != len(types):
        raise ValueError(f"{name}: {len(values)} values for {len(types)} markers")
    return [None if value is None else t.to_binary(value, PROTOCOL) for t, value in zip(types, values, strict=True)]
