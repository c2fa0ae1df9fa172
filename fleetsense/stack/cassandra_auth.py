"""Who may do what in Cassandra: the stack's users, where their passwords live and what each is granted.

Dev profile: no login (AllowAllAuthenticator), so the developer's loop stays simple. Secure profile: the node runs
PasswordAuthenticator and CassandraAuthorizer; our own superuser "operator" replaces the well-known cassandra/cassandra,
and each component logs in as its own least-privilege user. The CQL works on 2.1 and on 4.x/5.x: USER statements
(2.1 has no ROLE statements; 4.x and 5.x still accept the USER ones). docs/security.md (Cassandra) explains it all.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetsense.errors import ConfigError, StackError
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.secrets import Credentials, load_or_create

OPERATOR, JOB, READER, SERVICE = "operator", "job", "reader", "service"
# A directory holding operator.json, job.json and reader.json ({"username": ..., "password": ...}, mode 0600):
# how an external cluster's credentials reach the stack. Default: <data dir>/secrets/cassandra/.
CREDENTIALS_ENV = "FLEETSENSE_CASSANDRA_CREDENTIALS"
# What a fresh node with PasswordAuthenticator lets everyone in with, until `stack up` drops it.
DEFAULT_SUPERUSER = Credentials(username="cassandra", password="cassandra")
# Plain lowercase identifiers mean the same unquoted on 2.1 and 4.x/5.x, and can never inject CQL.
_USERNAME = re.compile(r"[a-z][a-z0-9_]{0,47}")


@dataclass(frozen=True, kw_only=True)
class CqlUser:
    """One user of the stack's Cassandra, declared once: the stack creates it and grants exactly this."""

    role: str  # what the code asks for; its credentials file is <role>.json
    username: str  # on the local node (an external cluster's credentials file may name another)
    superuser: bool
    keyspace_permissions: tuple[str, ...]  # on the fleetsense keyspace, nothing elsewhere


USERS: dict[str, CqlUser] = {
    user.role: user
    for user in (
        # Applies the schema and manages users and grants: on 2.1 only a superuser may create a user.
        CqlUser(role=OPERATOR, username="operator", superuser=True, keyspace_permissions=()),
        # Writes results and reads vehicle profiles; cannot create, alter or drop a table, nor touch a user.
        CqlUser(role=JOB, username="fleetsense_job", superuser=False, keyspace_permissions=("SELECT", "MODIFY")),
        # `fleetsense query`, the report and the demo's reads: cannot change a row.
        CqlUser(role=READER, username="fleetsense_reader", superuser=False, keyspace_permissions=("SELECT",)),
        # `fleetsense serve`: reads every result and writes its own tables (drivers, assignments, reviews, accounts,
        # webhooks). Grants are per keyspace here, so it could write the job's tables too (a known weakness).
        CqlUser(
            role=SERVICE, username="fleetsense_service", superuser=False, keyspace_permissions=("SELECT", "MODIFY")
        ),
    )
}


def login_required(config: StackConfig) -> bool:
    return config.profile == "secure"


def credentials_dir(config: StackConfig) -> Path:
    env = os.environ.get(CREDENTIALS_ENV)
    return Path(env) if env else config.secrets_dir / "cassandra"


def credentials_file(config: StackConfig, role: str) -> Path:
    return credentials_dir(config) / f"{role}.json"


def login(config: StackConfig, role: str) -> Credentials | None:
    """The credentials `role` connects with, None for a session without login.

    Local node: none in the dev profile; in the secure profile generated once into a 0600 file. External cluster:
    read from its file when there is one (required in the secure profile); the stack never invents them.
    """
    path = credentials_file(config, role)
    if config.cassandra is None:
        if not login_required(config):
            return None
        private_dir(path.parent)
        return read_credentials(path) if path.exists() else load_or_create(path, USERS[role].username)
    if path.exists():
        return read_credentials(path)
    if login_required(config):
        raise ConfigError(
            f"the secure profile needs the Cassandra {role} user's credentials in {path}",
            hint='write {"username": "...", "password": "..."} there with mode 0600, or point '
            f"${CREDENTIALS_ENV} at the directory holding operator.json, job.json and reader.json",
        )
    return None


def read_credentials(path: Path) -> Credentials:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"{path} holds a password and can be read by other users (mode {mode:o})", hint=f"chmod 600 {path}"
        )
    try:
        data = json.loads(path.read_text())
        return Credentials(username=str(data["username"]), password=str(data["password"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # The exception's own text could quote the file's content: name only its kind.
        raise ConfigError(
            f"cannot read Cassandra credentials from {path} ({type(exc).__name__})",
            hint='the file holds {"username": "...", "password": "..."}',
        ) from exc


def private_dir(path: Path) -> None:
    """Create `path` if needed and make it 0700 (mkdir's mode is cut by the umask and never applied to an old dir)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def checked_username(name: str) -> str:
    if not _USERNAME.fullmatch(name):
        raise ConfigError(
            f"Cassandra username {name!r} is not a plain lowercase identifier",
            hint="use letters, digits and _, starting with a letter (the stack writes it into CQL unquoted)",
        )
    return name


def user_statements(
    user: CqlUser, creds: Credentials, *, keyspace: str, exists: bool, password_current: bool = False
) -> list[tuple[str, tuple[str, ...]]]:
    """CQL (with its bound values) making `creds.username` exist with this password, the superuser status and the
    grants of `user`; safe to run every `stack up`.

    The password is set by at most one statement: CREATE for a new user, ALTER for an existing one whose password
    is not already this one (the file is the truth: a rotated password, or a user first made by hand, is brought
    in line), none when it already logs in with it. Cassandra 5.0 refuses a second password change of one role
    within role_password_update_min_interval (5 s by default): CREATE then ALTER, or two `stack up`s in a row that
    both set it, would fail on any 5.0 cluster that keeps the default."""
    name = checked_username(creds.username)
    status = "SUPERUSER" if user.superuser else "NOSUPERUSER"
    statements: list[tuple[str, tuple[str, ...]]]
    if not exists:
        statements = [(f"CREATE USER IF NOT EXISTS {name} WITH PASSWORD %s {status}", (creds.password,))]
    elif not password_current:
        statements = [(f"ALTER USER {name} WITH PASSWORD %s {status}", (creds.password,))]
    else:
        statements = [(f"ALTER USER {name} {status}", ())]
    grants: list[tuple[str, tuple[str, ...]]] = [
        (f"GRANT {permission} ON KEYSPACE {keyspace} TO {name}", ()) for permission in user.keyspace_permissions
    ]
    return statements + grants


def user_exists(session: Any, username: str) -> bool:
    rows = session.execute("SELECT role FROM system_auth.roles WHERE role = %s", (username,))
    return rows.one() is not None


def logs_in(config: StackConfig, creds: Credentials) -> bool:
    """Whether `creds` can log in now (a refused login is the answer no; a node that does not answer raises)."""
    from fleetsense.cloud.cassandra_session import CassandraLoginRefused, connect

    try:
        with connect(config.cql_contact, login=creds):
            return True
    except CassandraLoginRefused:
        return False


def ensure_user(
    config: StackConfig, session: Any, user: CqlUser, creds: Credentials, *, keyspace: str, known_absent: bool = False
) -> None:
    exists = not known_absent and user_exists(session, creds.username)
    current = exists and logs_in(config, creds)
    for statement, values in user_statements(user, creds, keyspace=keyspace, exists=exists, password_current=current):
        session.execute(statement, values)


@contextmanager
def session_as(config: StackConfig, role: str, *, connect_timeout_s: float = 10.0) -> Iterator[Any]:
    """A session on the stack's Cassandra logged in as `role`'s user (no login where none is needed)."""
    from fleetsense.cloud.cassandra_session import CassandraLoginRefused, connect

    creds = login(config, role)
    with ExitStack() as opened:
        try:
            session = opened.enter_context(
                connect(config.cql_contact, login=creds, connect_timeout_s=connect_timeout_s)
            )
        except CassandraLoginRefused as exc:
            raise CassandraLoginRefused(
                exc.message,
                hint=f"the {role} user's credentials are in {credentials_file(config, role)}; "
                "see docs/security.md, Cassandra",
            ) from exc
        yield session


def bootstrap_operator(config: StackConfig, *, default_user_wait_s: float = 20.0) -> None:
    """On the local node in the secure profile: make our superuser exist and the default one unusable.

    A fresh node creates cassandra/cassandra, which everyone knows: we log in with it once, create the operator
    with its generated password, then drop it as the operator. Later starts find the operator and the default
    gone; a bootstrap cut off between its steps is finished.
    """
    from fleetsense.cloud.cassandra_session import CassandraLoginRefused, connect
    from fleetsense.cloud.schema import KEYSPACE

    operator = login(config, OPERATOR)
    assert operator is not None, "bootstrap_operator runs only where logins are required"
    try:
        with connect(config.cql_contact, login=operator) as session:
            drop_default_superuser(session, operator)
        return
    except CassandraLoginRefused:
        pass  # a fresh node: the operator does not exist yet
    # The node creates its default user a moment after it opens CQL (immediately with superuser_setup_delay_ms=0,
    # 10 s without it): retry until then.
    deadline = time.monotonic() + default_user_wait_s
    while True:
        try:
            with connect(config.cql_contact, login=DEFAULT_SUPERUSER) as session:
                # The operator's own login was refused just now: create it, or set its password (once).
                exists = user_exists(session, operator.username)
                for statement, values in user_statements(USERS[OPERATOR], operator, keyspace=KEYSPACE, exists=exists):
                    session.execute(statement, values)
            break
        except CassandraLoginRefused as exc:
            if time.monotonic() > deadline:
                raise StackError(
                    "neither our operator nor the default superuser can log in to the local Cassandra",
                    hint=f"the operator's password in {credentials_file(config, OPERATOR)} does not match this "
                    f"node's users: restore that file, or remove {config.component_dir('cassandra')} to start afresh",
                ) from exc
            time.sleep(1)
    with connect(config.cql_contact, login=operator) as session:
        drop_default_superuser(session, operator)


def drop_default_superuser(session: Any, operator: Credentials) -> None:
    if operator.username != DEFAULT_SUPERUSER.username:
        session.execute(f"DROP USER IF EXISTS {DEFAULT_SUPERUSER.username}")


def provision_users(config: StackConfig, session: Any, keyspace: str) -> list[str]:
    """As the operator, after the schema (a grant needs its keyspace): each component's user with its password
    and grants. An external cluster's user without a credentials file is left to its administrator.
    Returns the usernames provisioned."""
    done: list[str] = []
    for user in USERS.values():
        if user.superuser or (config.cassandra is not None and not credentials_file(config, user.role).exists()):
            continue
        creds = login(config, user.role)
        if creds is None:
            continue
        ensure_user(config, session, user, creds, keyspace=keyspace)
        done.append(creds.username)
    return done
