"""The table reference of docs/cloud-etl.md, generated from the declarations (cloud/tables.py), so an outside reader
sees every table's columns, types, units and keys exactly as the code has them. A unit test checks that the doc
holds what this renders; after changing a declaration, regenerate it:

    python -m fleetsense.cloud.table_docs docs/cloud-etl.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from fleetsense.cloud.schema import MIGRATIONS
from fleetsense.cloud.table_model import Table, Ttl
from fleetsense.cloud.tables import READ_CONSISTENCY_WHY, TABLES, WRITE_CONSISTENCY_WHY

BEGIN = "<!-- tables: generated from cloud/tables.py by `python -m fleetsense.cloud.table_docs`; do not edit -->"
END = "<!-- end of generated tables -->"


def _ttl(ttl: Ttl) -> str:
    days = f"{ttl.default_s // 86_400} days"
    return f"TTL {days} (`{ttl.env}` overrides it, read when the table is created)" if ttl.env else f"TTL {days}"


def _keys(table: Table) -> str:
    partition = ", ".join(f"`{name}`" for name in table.partition_key)
    clustering = ", ".join(f"`{name}` {order.value}" for name, order in table.clustering)
    return f"partition ({partition})" + (f", clustering {clustering}" if clustering else "")


def table_section(table: Table) -> list[str]:
    options = [_keys(table)]
    if table.ttl is not None:
        options.append(_ttl(table.ttl))
    if table.compaction_window_hours is not None:
        options.append(f"time-series compaction, {table.compaction_window_hours} h windows")
    if table.own_timestamp:
        options.append("written `USING TIMESTAMP` (the row's own time)")
    options += [f"SAI index on `{i.column}`: {i.why}" for i in table.indexes]
    if table.replaces:
        options.append(
            f"holds a copy of `{table.replaces}`'s rows (migration {table.since}, write times and TTLs kept)"
        )
    retired = f", retired in {table.retired}" if table.retired else ""
    lines = [f"#### `{table.name}` (migration {table.since}{retired})", "", f"{table.why[0].upper()}{table.why[1:]}."]
    lines.append("")
    lines += ["; ".join(options) + ".", ""]
    if table.retired is None:
        lines += [_consistency(table), ""]
    lines += ["| column | type | unit | meaning |", "|---|---|---|---|"]
    replaced = {c.replaces for c in table.columns}
    for c in table.columns:
        # A pipe inside a cell would end it (|lateral g|); a type in backticks keeps map<text, int> from being HTML.
        meaning = (c.meaning + (f" (added in migration {c.since})" if c.since else "")).replace("|", "\\|")
        name = f"~~`{c.name}`~~" if c.name in replaced else f"`{c.name}`"
        lines.append(f"| {name} | `{c.cql_type}` | {c.unit or '-'} | {meaning} |")
    return [*lines, ""]


def _consistency(table: Table) -> str:
    levels = f"Writes `{table.write_consistency}`, reads `{table.read_consistency}`"
    return f"{levels}: {table.consistency_why}." if table.consistency_why else f"{levels}."


def render() -> str:
    latest = MIGRATIONS[-1].version
    current = [t for t in TABLES if t.exists_at(latest)]
    lines = [BEGIN, "", f"Schema version {latest}.", ""]
    lines += [
        f"Consistency, unless a table says otherwise: writes {WRITE_CONSISTENCY_WHY}; reads {READ_CONSISTENCY_WHY}."
    ]
    lines += ["With replication factor 1 (the local stack) every level is the same; on a ring of 3 they are not.", ""]
    lines += ["Tables the job writes:", ""]
    for table in current:
        if table.write is not None:
            lines += table_section(table)
    lines += ["Written by other code:", ""]
    for table in current:
        if table.write is None and table.retired is None:
            lines += table_section(table)
    lines += ["Kept, no longer written (their rows age out by their TTL or stay as they were):", ""]
    for table in current:
        if table.retired is not None:
            lines += table_section(table)
    dropped = [t for t in TABLES if t.dropped is not None]
    lines += [
        "Dropped:",
        "",
        *(f"- `{t.name}` (migration {t.since}, dropped in {t.dropped}): {t.why}" for t in dropped),
        "",
    ]
    return "\n".join([*lines, END])


def replaced_in(doc: str) -> str:
    """`doc` with its generated part (between the markers) rendered anew."""
    start, end = doc.index(BEGIN), doc.index(END) + len(END)
    return doc[:start] + render() + doc[end:]


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "docs/cloud-etl.md")
    path.write_text(replaced_in(path.read_text()))
    print(f"{path}: table reference regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
