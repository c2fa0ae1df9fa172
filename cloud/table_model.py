"""What a Cassandra table declaration is (cloud/tables.py declares them all), and everything derived from one: its
CREATE at any schema version, its prepared INSERT, its rows built by column name, and readers' SELECTs.

A row travels as `Write` = (statement name, values in the order of the table's written columns): positional on the
way to the driver, which binds prepared statements positionally and costs nothing to pickle, but built and read by
name only (`Table.row`, `Table.value`), so a column added, removed or moved in the declaration can never shift a value
into the wrong column: a row missing a column, or naming one the table does not write, fails when it is built.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from operator import itemgetter
from typing import Any

Write = tuple[str, Sequence[Any]]  # (statement name, bound values)

# The pseudo-column of a table written with its own timestamp (`USING TIMESTAMP ?`, bound after the columns).
USING_TIMESTAMP = "using_timestamp_us"


class Order(Enum):
    ASC = "ASC"
    DESC = "DESC"


class RowError(ValueError):
    """A row built with a column its table does not write, or without one it does: a fault in the code that builds
    it (the declaration in cloud/tables.py is the truth), raised before anything is written."""


@dataclass(frozen=True)
class Ttl:
    """A table's default_time_to_live: `default_s`, or the environment variable `env` when set (read when the
    migration that creates the table runs)."""

    default_s: int
    env: str | None = None

    @property
    def seconds(self) -> int:
        return int(os.environ.get(self.env, str(self.default_s))) if self.env else self.default_s


@dataclass(frozen=True, kw_only=True)
class Column:
    name: str
    cql_type: str  # one of cloud/tables.py's type constants: the one place a type is spelled
    unit: str = ""  # of the value as stored ("s", "g", "ms", "µs since 1970", ...); "" for names, flags and text
    meaning: str
    since: int | None = None  # the migration that added it to an existing table (None: created with the table)
    replaces: str | None = None  # the column it takes over from (Cassandra 2.1 renames no column): copied in `since`
    static: bool = False  # one value per partition (CQL STATIC), shared by its rows: never a key column


@dataclass(frozen=True, kw_only=True)
class Index:
    """A storage-attached index (SAI, Cassandra 5.0) on one column, so a reader can filter on it inside a partition
    or across partitions without ALLOW FILTERING; `why` names the reader."""

    column: str
    why: str
    since: int | None = None  # the migration that adds it to an existing table (None: created with the table)


# CQL consistency levels, by the names the drivers use (ConsistencyLevel.name_to_value, DefaultConsistencyLevel).
LOCAL_QUORUM = "LOCAL_QUORUM"
LOCAL_ONE = "LOCAL_ONE"
CONSISTENCY_LEVELS = frozenset({LOCAL_QUORUM, LOCAL_ONE, "ONE", "QUORUM", "ALL", "EACH_QUORUM"})
# Who writes a table: the stream's job (its sink prepares every such statement) or the service layer (issue 17).
WRITERS = frozenset({"job", "service"})


@dataclass(frozen=True, kw_only=True)
class Table:
    """One table: columns in the order its rows are written (key columns first), keys, options, and why it exists.

    `since`/`retired`/`dropped` are migration versions; `write` names the job's statement for it (None: nothing
    writes it any more, or it is written elsewhere); `replaces` names the table whose rows migration `since` copies
    into it (a key column's type cannot change in place). `write_consistency`/`read_consistency` are CQL level names
    its writers and readers use; `consistency_why` says why they are what they are. `versioned`: it holds what the
    analysis computes, so each result version has its own copy (a keyspace per version, cloud/write_target.py)."""

    name: str
    why: str
    columns: tuple[Column, ...]
    partition_key: tuple[str, ...]
    clustering: tuple[tuple[str, Order], ...] = ()
    ttl: Ttl | None = None
    compaction_window_hours: int | None = None  # a time-series table: its compaction window (schema.py chooses)
    since: int
    dropped: int | None = None
    retired: int | None = None  # no longer written from this migration on (kept: its rows age out or stay)
    write: str | None = None
    writer: str = "job"  # who runs `write`: "job" (the stream's sink) or "service" (the service layer's own tables)
    own_timestamp: bool = False  # written USING TIMESTAMP its last bound value (`USING_TIMESTAMP`)
    replaces: str | None = None
    indexes: tuple[Index, ...] = ()
    write_consistency: str = LOCAL_QUORUM
    read_consistency: str = LOCAL_QUORUM
    consistency_why: str = ""
    versioned: bool = False
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)
    _written: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _written_set: frozenset[str] = field(init=False, repr=False, compare=False)
    _getter: Callable[[Mapping[str, Any]], tuple[Any, ...]] = field(init=False, repr=False, compare=False)
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {column.name: column for column in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError(f"{self.name}: a column is declared twice")
        keys = self.key_names
        if tuple(c.name for c in self.columns[: len(keys)]) != keys:
            raise ValueError(f"{self.name}: the key columns {keys} must come first, in key order")
        if self.writer not in WRITERS:
            raise ValueError(f"{self.name}: writer {self.writer!r} is none of {', '.join(sorted(WRITERS))}")
        for level in (self.write_consistency, self.read_consistency):
            if level not in CONSISTENCY_LEVELS:
                raise ValueError(
                    f"{self.name}: {level!r} is no consistency level ({', '.join(sorted(CONSISTENCY_LEVELS))})"
                )
        if self.versioned and (self.writer != "job" or self.write is None):
            raise ValueError(f"{self.name}: only a table the job writes can be versioned (a result of the analysis)")
        for column in self.columns:
            if column.static and (column.name in keys or not self.clustering):
                raise ValueError(f"{self.name}.{column.name}: a static column needs clustering and is no key column")
        for index in self.indexes:
            if index.column not in by_name:
                raise ValueError(f"{self.name}: an index on an undeclared column {index.column!r}")
        for column in self.columns:
            if column.replaces is not None and (column.replaces not in by_name or column.since is None):
                raise ValueError(f"{self.name}.{column.name} replaces an undeclared column or has no migration")
        replaced = {c.replaces for c in self.columns}
        written = tuple(c.name for c in self.columns if c.name not in replaced)
        names = (*written, USING_TIMESTAMP) if self.own_timestamp else written
        getter = itemgetter(*names)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_written", written)
        object.__setattr__(self, "_written_set", frozenset(names))
        object.__setattr__(self, "_getter", getter if len(names) > 1 else lambda row: (getter(row),))
        object.__setattr__(self, "_index", {name: index for index, name in enumerate(names)})

    @property
    def key_names(self) -> tuple[str, ...]:
        return (*self.partition_key, *(name for name, _ in self.clustering))

    @property
    def written_columns(self) -> tuple[str, ...]:
        """The columns written and read now: every column but those another one replaces."""
        return self._written

    def column(self, name: str) -> Column:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.name} has no column {name!r}; it has {', '.join(self._by_name)}") from None

    def columns_at(self, version: int) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.since is None or c.since <= version)

    def indexes_at(self, version: int) -> tuple[Index, ...]:
        return tuple(i for i in self.indexes if i.since is None or i.since <= version)

    def exists_at(self, version: int) -> bool:
        return self.since <= version and (self.dropped is None or self.dropped > version)

    # --- writing ---------------------------------------------------------------------------------------------

    def insert_cql(self) -> str:
        """The prepared INSERT of the written columns (keyspace left as `{ks}`)."""
        columns = ", ".join(self._written)
        markers = ", ".join("?" * len(self._written))
        stamp = " USING TIMESTAMP ?" if self.own_timestamp else ""
        return f"INSERT INTO {{ks}}.{self.name} ({columns}) VALUES ({markers}){stamp}"

    def row(self, **values: Any) -> Write:
        """The write of one row, its values given by column name: every written column exactly once (None for a
        null), plus `using_timestamp_us` for a table written with its own timestamp."""
        if values.keys() != self._written_set:
            raise RowError(self._mismatch(values))
        if self.write is None:
            raise RowError(f"nothing writes {self.name} any more (cloud/tables.py)")
        return (self.write, self._getter(values))

    def value(self, values: Sequence[Any], column: str) -> Any:
        """One column's value in a row's values (as `row` built them)."""
        return values[self._index[column]]

    def _mismatch(self, values: Mapping[str, Any]) -> str:
        missing = sorted(self._written_set - values.keys())
        unknown = sorted(values.keys() - self._written_set)
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unknown {', '.join(unknown)}"] if unknown else []
        return f"a {self.name} row must name each of its columns once: {'; '.join(parts)} (cloud/tables.py)"

    # --- reading ---------------------------------------------------------------------------------------------

    def select(self, *columns: str, where: Sequence[str] = (), marker: str = "%s") -> str:
        """A reader's SELECT (keyspace left as `{ks}`, `marker`s for `where`: "?" to prepare it): each column must
        be one the table has now (`writetime(column)` too), each `where` column one of its key columns or an indexed
        one, or this raises when the reader's module is imported."""
        for selected in columns:
            writetime = _WRITETIME.fullmatch(selected)
            self._check_current(writetime.group(1) if writetime else selected)
        indexed = {index.column for index in self.indexes}
        for key in where:
            if key not in self.key_names and key not in indexed:
                raise KeyError(f"{self.name}.{key} is neither a key column nor indexed: a reader may not filter on it")
        condition = " WHERE " + " AND ".join(f"{name} = {marker}" for name in where) if where else ""
        return f"SELECT {', '.join(columns)} FROM {{ks}}.{self.name}{condition}"

    def read(self, *columns: str, where: Sequence[str] = (), consistency: str | None = None) -> Read:
        """A reader's statement: `select(...)`, read at the table's `read_consistency` unless the reader says
        otherwise (beside its statement, with the reason)."""
        level = consistency or self.read_consistency
        if level not in CONSISTENCY_LEVELS:
            raise ValueError(f"a read of {self.name}: {level!r} is no consistency level")
        return Read(self.select(*columns, where=where), level)

    def _check_current(self, name: str) -> None:
        if name not in self._written:
            self.column(name)  # raises for an undeclared column
            raise KeyError(f"{self.name}.{name} is replaced by another column: read that one (cloud/tables.py)")

    # --- the schema ------------------------------------------------------------------------------------------

    def create_cql(self, version: int, compaction: Callable[[int], str]) -> str:
        """The CREATE TABLE of this table as it was at `version` (`compaction(window_hours)` renders the
        time-series compaction the server has)."""
        lines = [f"{c.name} {c.cql_type}{' static' if c.static else ''}" for c in self.columns_at(version)]
        partition = self.partition_key[0] if len(self.partition_key) == 1 else f"({', '.join(self.partition_key)})"
        lines.append(f"PRIMARY KEY ({', '.join([partition, *(name for name, _ in self.clustering)])})")
        options = []
        if self.clustering:
            order = ", ".join(f"{name} {how.value}" for name, how in self.clustering)
            options.append(f"CLUSTERING ORDER BY ({order})")
        if self.ttl is not None:
            options.append(f"default_time_to_live = {self.ttl.seconds}")
        if self.compaction_window_hours is not None:
            options.append(f"compaction = {compaction(self.compaction_window_hours)}")
        body = ",\n    ".join(lines)
        with_options = f" WITH {' AND '.join(options)}" if options else ""
        return f"CREATE TABLE IF NOT EXISTS {{ks}}.{self.name} (\n    {body}\n){with_options}"

    def index_name(self, index: Index) -> str:
        return f"{self.name}_{index.column}_sai"

    def create_index_cql(self, index: Index) -> str:
        """The index as a storage-attached index (Cassandra 5.0; keyspace left as `{ks}`)."""
        return f"CREATE INDEX IF NOT EXISTS {self.index_name(index)} ON {{ks}}.{self.name} ({index.column}) USING 'sai'"


@dataclass(frozen=True)
class Read:
    """A reader's statement: its SELECT (keyspace left as `{ks}`) and the consistency level it reads at."""

    cql: str
    consistency: str


_WRITETIME = re.compile(r"writetime\((\w+)\)")
