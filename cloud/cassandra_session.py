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


def open_cluster(contact: tuple[str, int], *, connect_timeout_s: float = 10.0) -> Any:
    """A driver Cluster for `contact` (not yet connected); the caller shuts it down."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy, TokenAwarePolicy

    host, port = contact
    # A single local node: keep the driver from warning about missing DC-aware settings.
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    kwargs: dict[str, Any] = {
        "contact_points": [host],
        "port": port,
        "connect_timeout": connect_timeout_s,
        # Token-aware: on a ring each write goes straight to a replica of its partition. Set through the default
        # execution profile (the Cluster-level policy argument is deprecated in the driver).
        "execution_profiles": {
            EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=TokenAwarePolicy(RoundRobinPolicy()))
        },
    }
    version = protocol_version()
    if version is not None:
        kwargs["protocol_version"] = version
    return Cluster(**kwargs)


@contextmanager
def connect(contact: tuple[str, int], *, keyspace: str | None = None, connect_timeout_s: float = 10.0) -> Iterator[Any]:
    from cassandra.cluster import NoHostAvailable

    host, port = contact
    cluster = open_cluster(contact, connect_timeout_s=connect_timeout_s)
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
