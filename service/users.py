"""Operator accounts, their API tokens and browser sessions: the records, the store's interface, and the operations
on them (add a user, change a role or password, disable; make and revoke tokens; prove who a request is).

The rules live here, over any `Accounts` store: service/user_store.py keeps them in Cassandra (`users`,
`api_tokens`, `user_tokens`, `sessions`); the unit tests keep them in memory. A user's row is read on every
request, so a disabled user's tokens and sessions stop at once, and a role change applies to the next request."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from fleetsense.service import tokens
from fleetsense.service.passwords import Passwords
from fleetsense.service.roles import Principal, Role

from fleetsense.errors import ConfigError

USERNAME_PATTERN = "[a-z][a-z0-9._-]{0,63}"  # also the API's schema for a username (service/routes_auth.py)
_USERNAME = re.compile(USERNAME_PATTERN)
TOKEN_NAME_MAX = 100


def now_ms() -> datetime:
    """Now, to the millisecond Cassandra keeps (so a record reads back equal), naive UTC as the driver returns."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def check_username(name: str) -> str:
    if not _USERNAME.fullmatch(name):
        raise ConfigError(
            f"{name[:80]!r} is no username",
            hint="1 to 64 characters: lowercase letters, digits, '.', '_' and '-', starting with a letter",
        )
    return name


def check_token_name(name: str) -> str:
    if not name.strip() or len(name) > TOKEN_NAME_MAX:
        raise ConfigError(
            "a token's name says what it is for, in 1 to 100 characters", hint="for example --name grafana"
        )
    return name


@dataclass(frozen=True, kw_only=True)
class User:
    username: str
    password_hash: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None = None
    sessions_from: datetime | None = None  # sessions begun before it are over (a password change, a disable)

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def keeps(self, session: Session) -> bool:
        # Strictly after: a session begun in the very millisecond of a password change is over too (timestamps
        # are kept to the ms); a new one starts after it (`session_start`).
        return self.sessions_from is None or session.created_at > self.sessions_from

    def session_start(self) -> datetime:
        """When a new session of this user begins: now, and always after `sessions_from`."""
        return self._after_sessions_from()

    def sessions_end(self) -> datetime:
        """The `sessions_from` that ends every session begun so far (each began at most 1 ms after the last one)."""
        return self._after_sessions_from()

    def _after_sessions_from(self) -> datetime:
        # Timestamps are kept to the ms: within one, order is kept by stepping 1 ms past the last mark.
        now = now_ms()
        if self.sessions_from is not None and now <= self.sessions_from:
            return self.sessions_from + timedelta(milliseconds=1)
        return now


@dataclass(frozen=True, kw_only=True)
class ApiToken:
    token_id: str
    token_hash: str
    username: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Session:
    session_hash: str
    username: str
    csrf_token: str
    created_at: datetime


class Accounts(Protocol):
    async def user(self, username: str) -> User | None: ...

    async def users(self) -> list[User]: ...

    async def put_user(self, user: User) -> None: ...

    async def token(self, token_hash: str) -> ApiToken | None: ...

    async def tokens(self, username: str) -> list[ApiToken]: ...

    async def put_token(self, token: ApiToken) -> None:
        """Both copies (by hash, and in the user's list) together."""

    async def session(self, session_hash: str) -> Session | None: ...

    async def put_session(self, session: Session) -> None: ...

    async def end_session(self, session_hash: str) -> None: ...


class AccountError(ConfigError):
    """A request about accounts that cannot be done (no such user, a username taken): a 4xx, never a 5xx."""

    def __init__(self, message: str, *, hint: str | None = None, status: int = 400) -> None:
        super().__init__(message, hint=hint)
        self.status = status


async def add_user(accounts: Accounts, passwords: Passwords, username: str, role: Role, password: str) -> User:
    check_username(username)
    if await accounts.user(username) is not None:
        raise AccountError(f"the username {username!r} is taken", hint="choose another", status=409)
    user = User(username=username, password_hash=await passwords.hash(password), role=role, created_at=now_ms())
    await accounts.put_user(user)
    return user


async def existing_user(accounts: Accounts, username: str) -> User:
    user = await accounts.user(username)
    if user is None:
        raise AccountError(f"no user {username[:80]!r}", hint="GET /v1/users lists them", status=404)
    return user


async def update_user(
    accounts: Accounts, username: str, *, role: Role | None = None, disabled: bool | None = None
) -> User:
    user = await existing_user(accounts, username)
    if role is not None:
        user = replace(user, role=role)
    if disabled:
        # Its sessions end for good: enabling the user again later does not bring them back.
        user = replace(user, disabled_at=user.disabled_at or now_ms(), sessions_from=user.sessions_end())
    elif disabled is not None:
        user = replace(user, disabled_at=None)
    await accounts.put_user(user)
    return user


async def set_password(accounts: Accounts, passwords: Passwords, username: str, password: str) -> User:
    """A new password; every session begun before it is over (whoever knew the old one is logged out)."""
    password_hash = await passwords.hash(password)
    user = await existing_user(accounts, username)
    user = replace(user, password_hash=password_hash, sessions_from=user.sessions_end())
    await accounts.put_user(user)
    return user


async def check_password(accounts: Accounts, passwords: Passwords, username: str, password: str) -> User | None:
    """The user if `password` is theirs and they are active, else None (the caller says one generic thing). A hash
    made with older parameters is replaced by one with the current ones."""
    user = await accounts.user(username) if _USERNAME.fullmatch(username) else None
    verdict = await passwords.verify(user.password_hash if user else None, password)
    if user is None or not verdict.ok or not user.active:
        return None
    if verdict.rehashed is not None:
        user = replace(user, password_hash=verdict.rehashed)
        await accounts.put_user(user)
    return user


async def create_token(accounts: Accounts, username: str, name: str) -> tuple[str, ApiToken]:
    """(the token's secret, shown once; its record)."""
    check_token_name(name)
    user = await existing_user(accounts, username)
    if not user.active:
        raise AccountError(
            f"{username} is disabled", hint="enable the user first (PATCH /v1/users/{username})", status=409
        )
    secret = tokens.new_token()
    token = ApiToken(
        token_id=tokens.new_token_id(),
        token_hash=tokens.token_hash(secret),
        username=username,
        name=name,
        created_at=now_ms(),
    )
    await accounts.put_token(token)
    return secret, token


async def revoke_token(accounts: Accounts, username: str, token_id: str) -> ApiToken:
    found = next((t for t in await accounts.tokens(username) if t.token_id == token_id), None)
    if found is None:
        raise AccountError(
            f"{username} has no token {token_id[:80]!r}", hint="list the user's tokens for their ids", status=404
        )
    if found.revoked_at is None:
        found = replace(found, revoked_at=now_ms())
        await accounts.put_token(found)
    return found


async def principal_for_token(accounts: Accounts, secret: str) -> Principal | None:
    if not tokens.is_token(secret):
        return None
    token = await accounts.token(tokens.token_hash(secret))
    if token is None or token.revoked_at is not None:
        return None
    user = await accounts.user(token.username)
    if user is None or not user.active:
        return None
    return Principal(user.username, user.role, "token")


async def session_principal(accounts: Accounts, session_hash: str) -> tuple[Principal, Session] | None:
    session = await accounts.session(session_hash)
    if session is None:
        return None
    user = await accounts.user(session.username)
    if user is None or not user.active or not user.keeps(session):
        return None
    return Principal(user.username, user.role, "session"), session
