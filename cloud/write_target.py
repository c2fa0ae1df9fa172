"""Where each of the job's writes goes: the rule, pure, that the Python writer, the binder of the Java sink's records
and the Java sink's statements all follow (cloud/store.py, cloud/cassandra_sink.py).

A result version is a keyspace of its own holding the versioned tables (cloud/tables.py RESULT_TABLES): the job
writes their statements (RESULT_WRITES) into `results_keyspace` and everything else (batches, vehicles, gaps,
rejections, quarantine, ...) into its main `keyspace`. A reprocessing job (`writes=results`) writes results only:
the ingest facts record what arrived and when, which a replay would duplicate with wrong arrival times.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fleetsense.cloud.table_model import Write
from fleetsense.cloud.tables import RESULT_WRITES, WRITTEN

from fleetsense.errors import ConfigError

WRITES_ALL = "all"  # every statement: the live job
WRITES_RESULTS = "results"  # the versioned tables' only: a reprocessing job
WRITES = (WRITES_ALL, WRITES_RESULTS)

# A keyspace name as Cassandra allows it unquoted (at most 48 characters): written into CQL, so never anything else.
KEYSPACE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")


def check_keyspace_name(name: str, *, what: str) -> str:
    if not KEYSPACE_NAME.fullmatch(name):
        raise ConfigError(
            f"{what} {name!r} is no keyspace name",
            hint="letters, digits and _, starting with a letter, at most 48 characters (e.g. fleetsense_r2)",
        )
    return name


@dataclass(frozen=True, kw_only=True)
class WriteTarget:
    """The keyspaces a job writes and which of its writes it keeps. `results_keyspace` "" means `keyspace`."""

    keyspace: str
    results_keyspace: str = ""
    writes: str = WRITES_ALL

    def __post_init__(self) -> None:
        if self.writes not in WRITES:
            raise ConfigError(f"writes={self.writes!r} is neither of {', '.join(WRITES)}", hint="use all or results")

    @property
    def results_in(self) -> str:
        """The keyspace the result statements write."""
        return self.results_keyspace or self.keyspace

    def keyspace_of(self, statement: str) -> str:
        """The keyspace a statement writes: a result statement the results keyspace, any other the main one."""
        return self.results_in if statement in RESULT_WRITES else self.keyspace

    def keeps(self, statement: str) -> bool:
        """Whether this job writes a statement at all: a results-only job drops every non-result write."""
        return self.writes == WRITES_ALL or statement in RESULT_WRITES

    def kept(self, writes: Iterable[Write]) -> list[Write]:
        """The writes this job sends, in their order; the others are dropped before they reach any sink."""
        if self.writes == WRITES_ALL:
            return list(writes)
        return [write for write in writes if write[0] in RESULT_WRITES]

    def statements(self) -> dict[str, str]:
        """The prepared INSERT of each statement this job writes, its keyspace filled in."""
        return {
            name: table.insert_cql().format(ks=self.keyspace_of(name))
            for name, table in WRITTEN.items()
            if self.keeps(name)
        }
