"""A keyspace's schema as plain JSON data, two ways: as the server has it (the driver reads system.schema_* on 2.1,
system_schema.* on 3.0+) and as cloud/tables.py declares it at a schema version; the two must agree."""

from __future__ import annotations

from typing import Any

from fleetsense.cloud.schema import time_series_compaction
from fleetsense.cloud.tables import TABLES

Shape = dict[str, dict[str, Any]]


def live_shape(session: Any, keyspace: str) -> Shape:
    """Per table: columns and their CQL types, partition key, clustering key with order, and every table option."""
    session.cluster.refresh_schema_metadata()
    tables = session.cluster.metadata.keyspaces[keyspace].tables
    return {
        name: {
            "columns": {column.name: column.cql_type for column in table.columns.values()},
            "partition_key": [column.name for column in table.partition_key],
            "clustering": [[c.name, "DESC" if c.is_reversed else "ASC"] for c in table.clustering_key],
            "options": {key: value for key, value in sorted(table.options.items())},
        }
        for name, table in sorted(tables.items())
        if name != "schema_migrations"
    }


def declared_shape(version: int, release_version: str) -> Shape:
    """What the declarations say the keyspace holds at `version`, in `live_shape`'s form, with the options they
    set (TTL, compaction strategy) in 2.1's option names."""
    shape: Shape = {}
    for table in TABLES:
        if not table.exists_at(version):
            continue
        hours = table.compaction_window_hours
        compaction = (
            time_series_compaction(release_version, hours) if hours else "{'class': 'SizeTieredCompactionStrategy'}"
        )
        shape[table.name] = {
            "columns": {c.name: c.cql_type for c in table.columns_at(version)},
            "partition_key": list(table.partition_key),
            "clustering": [[name, order.value] for name, order in table.clustering],
            "options": {
                "default_time_to_live": table.ttl.seconds if table.ttl else 0,
                "compaction_strategy_class": "org.apache.cassandra.db.compaction." + compaction.split("'")[3],
            },
        }
    return dict(sorted(shape.items()))


def compaction_class(options: dict[str, Any]) -> str:
    """The compaction strategy's class in either server's options: 2.1's compaction_strategy_class, or the class
    in 3.0+'s compaction map (system_schema.tables)."""
    if "compaction_strategy_class" in options:
        return str(options["compaction_strategy_class"])
    return str(options["compaction"]["class"])


def comparable(live: Shape) -> Shape:
    """`live` with only the options the declarations set (TTL and compaction strategy), in 2.1's option names."""
    return {
        name: {
            **table,
            "options": {
                "default_time_to_live": table["options"]["default_time_to_live"],
                "compaction_strategy_class": compaction_class(table["options"]),
            },
        }
        for name, table in live.items()
    }


def structure(shape: Shape) -> Shape:
    """`shape` without table options: columns, their types, keys and clustering order, the same on every release."""
    return {name: {key: value for key, value in table.items() if key != "options"} for name, table in shape.items()}
