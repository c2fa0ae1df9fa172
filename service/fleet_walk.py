"""A page of a list that spans partitions: walk them in order, newest first, continuing Cassandra's paging state
inside one, and say where the next page starts (service/cursor.py). Every query names its partition.

A request reads at most `MAX_PARTITIONS` partitions: a month of mostly empty hours of fleet_events is 744 of them,
so a page may come back short (even empty) with a cursor to continue from: clients follow next_cursor until null."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetsense.cloud.table_model import Read
from fleetsense.service.cursor import Cursor, CursorError, Position
from fleetsense.service.db import Db

MAX_PARTITIONS = 48  # two days of hour partitions per request


@dataclass(frozen=True)
class Partition:
    """One query of the walk: `position` sorts descending in walk order (a cursor records it)."""

    position: Position
    read: Read
    params: tuple[Any, ...]
    suffix: str = ""  # e.g. a time slice, its values in `params` after the key's
    keep: Callable[[Any], bool] | None = None  # rows the query cannot leave out itself (None: every row)


@dataclass(frozen=True)
class WalkPage:
    rows: list[tuple[Partition, Any]]
    next: Cursor | None


def resume_index(partitions: Sequence[Partition], cursor: Cursor | None) -> tuple[int, bytes | None]:
    """Where a walk continues: the first partition at or after the cursor's (in walk order), with the paging state
    only if it is the very partition the cursor was made in (a list that changed since, e.g. a corrected
    assignment, continues at the next partition in time order)."""
    if cursor is None:
        return 0, None
    for index, partition in enumerate(partitions):
        try:
            at_or_after = partition.position <= cursor.position
        except TypeError:
            raise CursorError("this cursor does not fit this list: start again without a cursor") from None
        if at_or_after:
            return index, cursor.paging_state if partition.position == cursor.position else None
    return len(partitions), None


async def walk(
    db: Db, partitions: Sequence[Partition], cursor: Cursor | None, limit: int, *, max_partitions: int = MAX_PARTITIONS
) -> WalkPage:
    index, state = resume_index(partitions, cursor)
    rows: list[tuple[Partition, Any]] = []
    read = 0
    while index < len(partitions):
        partition = partitions[index]
        page = await db.page(
            partition.read, partition.params, page_rows=limit - len(rows), paging_state=state, suffix=partition.suffix
        )
        rows += [(partition, row) for row in page.rows if partition.keep is None or partition.keep(row)]
        read += 1
        if page.paging_state is not None:
            state = page.paging_state
            if len(rows) >= limit or read >= max_partitions:
                return WalkPage(rows, Cursor(partition.position, state))
            continue  # a short page with more behind it: keep reading this partition
        index, state = index + 1, None
        if len(rows) >= limit or read >= max_partitions:
            break
    following = Cursor(partitions[index].position) if index < len(partitions) else None
    return WalkPage(rows, following)
