"""Filling a new column from the one it replaces, for a migration (Cassandra 2.1 cannot rename a non-key column).

Each copied cell is written with the write timestamp of the cell it copies (`USING TIMESTAMP writetime(source)`), as
if the old writer had written the new column at the same moment. That makes the copy safe whatever runs beside it
and however often it runs: a value the new job wrote (later, so newer) always wins over a copy, whichever lands
first; a row copied already is skipped (its target is as new as its source); a run cut off halfway is simply run
again. The table is read in pages (`fetch_size`), so its size does not matter.
"""

from __future__ import annotations

from typing import Any

from fleetsense.cloud.table_model import Table

PAGE_ROWS = 1000
IN_FLIGHT = 32


def copy_column(
    session: Any, keyspace: str, table: Table, *, source: str, target: str, page_rows: int = PAGE_ROWS
) -> int:
    """Copy `source` into `target` in every row where `target` is missing or older than `source`; returns how many
    rows were written."""
    from cassandra.query import SimpleStatement

    keys = table.key_names
    read = SimpleStatement(
        f"SELECT {', '.join(keys)}, {source}, writetime({source}), writetime({target}) FROM {keyspace}.{table.name}",
        fetch_size=page_rows,
    )
    write = session.prepare(
        f"UPDATE {keyspace}.{table.name} USING TIMESTAMP ? SET {target} = ? WHERE "
        + " AND ".join(f"{key} = ?" for key in keys)
    )
    copied = 0
    pending: list[Any] = []
    for row in session.execute(read):  # the driver fetches the next page as this one is used up
        *key, value, source_written_us, target_written_us = row
        if not needs_copy(value, source_written_us, target_written_us):
            continue
        pending.append(session.execute_async(write, (source_written_us, value, *key)))
        copied += 1
        if len(pending) >= IN_FLIGHT:
            pending.pop(0).result()
    for future in pending:
        future.result()
    return copied


def needs_copy(value: Any, source_written_us: int | None, target_written_us: int | None) -> bool:
    """A source cell with a value, and no target cell as new as it (a null target has no write time)."""
    if value is None or source_written_us is None:
        return False
    return target_written_us is None or target_written_us < source_written_us
