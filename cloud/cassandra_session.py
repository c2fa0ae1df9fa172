"""Opening a cassandra-driver session against the local node or an external cluster."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fleetsense.errors import FleetsenseError

PROTOCOL_ENV = "FLEETSENSE_CQL_PROTOCOL"


class CassandraUnavailable(FleetsenseError):
    """No Cassandra node answered."""


def protocol_version() -> int | None:
    """The CQL protocol to speak; None lets the driver negotiate.

    Cassandra 2.1 speaks v3 and the driver's downgrade from v5 does not reach it cleanly, so v3 is the default;
    set FLEETSENSE_CQL_PROTOCOL=4 (or 5) for a 4.x/5.x cluster.
    """
    text = os.environ.get(PROTOCOL_ENV, "3")
    return None if text == "auto" else int(text)


@contextmanager
def connect(contact: tuple[str, int], *, keyspace: str | None = None, connect_timeout_s: float = 10.0) -> Iterator[Any]:
    from cassandra.cluster import Cluster, NoHostAvailable
    from cassandra.policies import RoundRobinPolicy

    host, port = contact
    # A single local node: keep the driver from warning about missing DC-aware settings.
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    kwargs: dict[str, Any] = {
        "contact_points": [host],
        "port": port,
        "connect_timeout": connect_timeout_s,
        "load_balancing_policy": RoundRobinPolicy(),
    }
    version = protocol_version()
    if version is not None:
        kwargs["protocol_version"] = version
    cluster = Cluster(**kwargs)
    try:
        try:
            session = cluster.connect(keyspace)
        except NoHostAvailable as exc:
            raise CassandraUnavailable(
                f"no Cassandra node answers at {host}:{port}",
                hint="start the local stack with `fleetsense stack up`, or check --cassandra HOST:PORT",
            ) from exc
        yield session
    finally:
        cluster.shutdown()
