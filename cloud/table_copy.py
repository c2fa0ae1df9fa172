"""Copying a table's rows into its successor, for a migration (a key column's type cannot be altered in place:
migration 8 moves every day key from text to a CQL `date` this way).

Each cell keeps its write timestamp and its remaining TTL: the copy writes the cells of a row that share a
(writetime, ttl) with `USING TIMESTAMP writetime AND TTL ttl` (TTL 0 for a cell that had none, which overrides the
successor's default TTL), so a copied row expires when its original would have and loses to any later write, e.g.
the new job's. That makes the copy idempotent (the same cell at the same timestamp again) and safe to run beside
the new job, and a run cut off halfway is simply run again. The source is read in pages (`fetch_size`), so its size
does not matter; the writes go `IN_FLIGHT` at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from fleetsense.cloud.cassandra_session import statement
from fleetsense.cloud.table_model import Table

log = logging.getLogger(__name__)

PAGE_ROWS = 1000
IN_FLIGHT = 32

Convert = Callable[[Any], Any]


def text_day(value: str) -> date:
    """A day key of migrations 3-7 ("YYYY-MM-DD") as the date a `date` column binds."""
    return date.fromisoformat(value)


# How a value of one CQL type becomes a value of another, by (source type, target type).
CONVERSIONS: dict[tuple[str, str], Convert] = {("text", "date"): text_day}


class CopyError(ValueError):
    """The successor's declaration cannot take the source's rows: a column it lacks, or a type with no conversion."""


def conversions(source: Table, target: Table) -> dict[str, Convert]:
    """Per column of `target` whose type differs from the same column in `source`, the conversion; raises a
    CopyError for a column `source` lacks or a change of type nothing converts."""
    converts: dict[str, Convert] = {}
    for name in target.written_columns:
        try:
            before = source.column(name).cql_type
        except KeyError:
            raise CopyError(f"{target.name}.{name} has no column in {source.name} to be copied from") from None
        after = target.column(name).cql_type
        if before == after:
            continue
        if (before, after) not in CONVERSIONS:
            raise CopyError(f"{source.name}.{name} is {before}, {target.name}.{name} {after}: nothing converts it")
        converts[name] = CONVERSIONS[(before, after)]
    return converts


def copy_cql(source: Table, target: Table, keyspace: str) -> str:
    """The paged read: the key columns, then each other column with its writetime and TTL (a collection without
    its TTL: 5.0 answers one per element, with nulls the Python driver cannot decode)."""
    keys = target.key_names
    selected = [*keys, *(", ".join(cell_parts(target, c)) for c in _value_columns(target))]
    return f"SELECT {', '.join(selected)} FROM {keyspace}.{source.name}"


def _value_columns(table: Table) -> list[str]:
    return [c for c in table.written_columns if c not in table.key_names]


def _is_collection(table: Table, column: str) -> bool:
    return table.column(column).cql_type.startswith(("map<", "list<", "set<"))


def cell_parts(table: Table, column: str) -> list[str]:
    """What the copy selects of one non-key column: its value, write time and (not of a collection) TTL."""
    parts = [column, f"writetime({column})"]
    return parts if _is_collection(table, column) else [*parts, f"ttl({column})"]


Cell = tuple[str, Any]
Group = tuple[int | None, int]  # (write timestamp in µs since 1970, TTL left in s; 0: none)


def row_writes(target: Table, row: Sequence[Any], converts: dict[str, Convert]) -> list[tuple[Group, list[Cell]]]:
    """A row read by `copy_cql` as the writes that copy it: its key cells, plus its non-null cells grouped by their
    (writetime, ttl), one write per group; a row with only its key is one write without a timestamp. A collection
    joins the group of the row's other cells written at its (newest element's) time: one INSERT wrote them."""
    keys = target.key_names
    key_cells = [(name, _converted(name, value, converts)) for name, value in zip(keys, row, strict=False)]
    cells: list[tuple[str, Any, int | None, int, bool]] = []  # name, value, written_us, ttl_s (0: none), collection
    at = len(keys)
    for name in _value_columns(target):
        collection = _is_collection(target, name)
        value, written_us, ttl_s = (*row[at : at + 2], None) if collection else row[at : at + 3]
        at += 2 if collection else 3
        if value is not None:  # a null has no cell to copy (writing one would write a tombstone)
            cells.append((name, _converted(name, value, converts), _newest(written_us), ttl_s or 0, collection))
    ttl_at = {written_us: ttl_s for _, _, written_us, ttl_s, collection in cells if not collection}
    groups: dict[Group, list[Cell]] = {}
    for name, value, written_us, ttl_s, collection in cells:
        group = (written_us, ttl_at.get(written_us, 0) if collection else ttl_s)
        groups.setdefault(group, []).append((name, value))
    if not groups:
        return [((None, 0), key_cells)]
    return [(group, key_cells + group_cells) for group, group_cells in groups.items()]


def _converted(name: str, value: Any, converts: dict[str, Convert]) -> Any:
    if name not in converts or value is None:
        return value
    try:
        return converts[name](value)
    except ValueError as exc:
        raise CopyError(
            f"a stored {name} {value!r} cannot be converted ({exc}): correct or delete that row in the old table, "
            "then run the migration again (the copy starts over and rewrites what it copied, harmlessly)"
        ) from exc


def _newest(written_us: Any) -> int | None:
    """A collection's writetime is one per element on 5.0 (a list): the newest stands for the whole."""
    if isinstance(written_us, list):
        return max((w for w in written_us if w is not None), default=None)
    return written_us if isinstance(written_us, int) else None


def copy_table(
    session: Any,
    keyspace: str,
    source: Table,
    target: Table,
    *,
    page_rows: int | None = None,
    target_keyspace: str | None = None,
    keep: Callable[[Any], bool] | None = None,
) -> int:
    """Copy every row of `source` into `target` (its successor, or the same table in `target_keyspace`: a result
    version's copy of its parent's days before it, docs/reprocessing.md), or only the rows `keep` says; returns how
    many rows were copied."""
    from cassandra import ConsistencyLevel

    converts = conversions(source, target)
    # At the tables' own levels: the read sees every write the old job had acknowledged, the copy lasts as its writes.
    read = statement(
        copy_cql(source, target, keyspace), consistency=source.read_consistency, fetch_size=page_rows or PAGE_ROWS
    )
    level = ConsistencyLevel.name_to_value[target.write_consistency]
    prepared: dict[tuple[tuple[str, ...], bool], Any] = {}
    copied = 0
    pending: list[Any] = []
    into = target_keyspace or keyspace
    for row in session.execute(read):  # the driver fetches the next page as this one is used up
        if keep is not None and not keep(row):
            continue
        for (written_us, ttl_s), cells in row_writes(target, row, converts):
            names = tuple(name for name, _ in cells)
            stamped = written_us is not None
            if (names, stamped) not in prepared:
                prepared[(names, stamped)] = session.prepare(_insert(into, target, names, stamped=stamped))
                prepared[(names, stamped)].consistency_level = level
            bound = [value for _, value in cells] + ([written_us, ttl_s] if stamped else [])
            pending.append(session.execute_async(prepared[(names, stamped)], bound))
            if len(pending) >= IN_FLIGHT:
                pending.pop(0).result()
        copied += 1
    for future in pending:
        future.result()
    log.info("%d %s row(s) copied into %s.%s", copied, source.name, into, target.name)
    return copied


def _insert(keyspace: str, target: Table, names: Sequence[str], *, stamped: bool) -> str:
    using = " USING TIMESTAMP ? AND TTL ?" if stamped else ""
    markers = ", ".join("?" * len(names))
    return f"INSERT INTO {keyspace}.{target.name} ({', '.join(names)}) VALUES ({markers}){using}"
