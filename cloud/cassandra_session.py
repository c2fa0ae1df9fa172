"""Opening a cassandra-driver session against the local node or an external cluster, logged in as a user when the
cluster requires it (PasswordAuthenticator)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from fleetsense.errors import FleetsenseError

PROTOCOL_ENV = "FLEETSENSE_CQL_PROTOCOL"


class CassandraUnavailable(FleetsenseError):
    """No Cassandra node answered."""


class CassandraLoginRefused(FleetsenseError):
    """A node answered but refused the login: no credentials given to a cluster that requires them, or wrong ones."""


class Login(Protocol):
    """A Cassandra username and password (the stack's Credentials, or CqlLogin from the job's settings)."""

    @property
    def username(self) -> str: ...

    @property
    def password(self) -> str: ...


@dataclass(frozen=True, kw_only=True)
class CqlLogin:
    username: str
    password: str

    def __repr__(self) -> str:  # never let a password reach a log line
        return f"CqlLogin(username={self.username!r}, password='***')"


def protocol_version() -> int | None:
    """The CQL protocol to pin; None (the default, or FLEETSENSE_CQL_PROTOCOL=auto) lets the driver negotiate: it
    offers its newest (v5) and steps down to what the node speaks (v5 on Cassandra 4.0+ and 5.0, v4 on 2.2-3.x).
    Pin a number (3, 4, 5) only for a node whose downgrade fails, as Cassandra 2.1's does (pin 3 there)."""
    text = os.environ.get(PROTOCOL_ENV, "auto").strip()
    if text == "auto":
        return None
    if not text.isdigit():
        raise FleetsenseError(
            f"{PROTOCOL_ENV} must be 'auto' or a CQL protocol version (3, 4, 5), got {text!r}",
            hint=f"unset {PROTOCOL_ENV} to let the driver negotiate",
        )
    return int(text)


def open_cluster(
    contact: tuple[str, int],
    *,
    login: Login | None = None,
    connect_timeout_s: float = 10.0,
    local_dc: str | None = None,
) -> Any:
    """A driver Cluster for `contact` (not yet connected), logging in as `login` if given; the caller shuts it down.
    `contact`'s host may be a ring's nodes separated by commas: each is a contact point, so the session opens while
    any one answers. Requests go to `local_dc`'s nodes (None: the datacenter of the first contact point reached)."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    from fleetsense.cloud.host_list import parse_host_list

    host, port = contact
    # The driver logs at WARNING what it infers (the local datacenter) and each node it finds down; the errors
    # that matter reach the caller as exceptions.
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    # Token-aware within the local datacenter: each write goes straight to a replica of its partition there (what
    # LOCAL_QUORUM counts). Set through the default execution profile (the Cluster-level argument is deprecated).
    policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc or ""))
    kwargs: dict[str, Any] = {
        "contact_points": list(parse_host_list(host, what="the Cassandra contact points")),
        "port": port,
        "connect_timeout": connect_timeout_s,
        "execution_profiles": {EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=policy)},
    }
    if login is not None:
        # SASL PLAIN: the password crosses the wire in clear unless the connection is TLS (loopback here).
        kwargs["auth_provider"] = PlainTextAuthProvider(username=login.username, password=login.password)
    version = protocol_version()
    if version is not None:
        kwargs["protocol_version"] = version
    return Cluster(**kwargs)


def statement(cql: str, *, consistency: str, fetch_size: int | None = None) -> Any:
    """A statement at a consistency level named as cloud/tables.py declares it ("LOCAL_QUORUM"), read `fetch_size`
    rows a page (the driver fetches the next page as the rows are iterated)."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    level = ConsistencyLevel.name_to_value[consistency]
    return SimpleStatement(cql, consistency_level=level, fetch_size=fetch_size)


def negotiated_protocol(session: Any) -> int:
    """The CQL native protocol version the session's connections speak (what the driver and node agreed on)."""
    return int(session.cluster.protocol_version)


class _TranslatedByConnect(logging.Filter):
    """Drops the driver's ERROR logs (one with a traceback) of a failed first connection or login: connect() raises
    them as a CassandraUnavailable or CassandraLoginRefused that says what to do, and a waiting `stack up` expects
    a few."""

    PREFIXES = ("Control connection failed to connect", "Failed to authenticate to")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.PREFIXES)


_CONNECT_FILTER = _TranslatedByConnect()


def refused_login(errors: dict[Any, Exception]) -> bool:
    """Whether a NoHostAvailable's per-host errors are all refused logins: the nodes are up, the login is wrong."""
    from cassandra import AuthenticationFailed

    return bool(errors) and all(isinstance(error, AuthenticationFailed) for error in errors.values())


@contextmanager
def connect(
    contact: tuple[str, int],
    *,
    keyspace: str | None = None,
    login: Login | None = None,
    connect_timeout_s: float = 10.0,
) -> Iterator[Any]:
    from cassandra.cluster import NoHostAvailable

    host, port = contact
    # Installed by connect() only (for the rest of the process): the Flink job opens its clusters with open_cluster
    # and never calls connect(), so its workers keep the driver's own logs.
    for name in ("cassandra.cluster", "cassandra.connection"):
        logging.getLogger(name).addFilter(_CONNECT_FILTER)  # idempotent
    cluster = open_cluster(contact, login=login, connect_timeout_s=connect_timeout_s)
    try:
        try:
            session = cluster.connect(keyspace)
        except NoHostAvailable as exc:
            if refused_login(exc.errors):
                who = f"the login of user {login.username!r}" if login else "a session without credentials"
                raise CassandraLoginRefused(
                    f"Cassandra at {host}:{port} refused {who}",
                    hint="check the user's credentials file (docs/security.md, Cassandra, says which user does what)",
                ) from exc
            raise CassandraUnavailable(
                f"no Cassandra node answers at {host}:{port}",
                hint="start the local stack with `fleetsense stack up`, or check --cassandra HOST:PORT",
            ) from exc
        yield session
    finally:
        cluster.shutdown()
