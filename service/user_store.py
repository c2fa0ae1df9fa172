"""The accounts in Cassandra (service/users.py's `Accounts`): `users` (one fleet partition), `api_tokens` (by the
token's hash: a request's token is one key lookup), `user_tokens` (a user's list), `sessions` (by the cookie's
hash, expiring by the table's 12 h TTL). Every read names its partition."""

from __future__ import annotations

from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.service.db import Db
from fleetsense.service.roles import Role
from fleetsense.service.users import ApiToken, Session, User

_USER_COLUMNS = ("username", "password_hash", "role", "created_at", "disabled_at", "sessions_from")
_USER = t.USERS.read(*_USER_COLUMNS, where=("fleet_id", "username"))
_USERS = t.USERS.read(*_USER_COLUMNS, where=("fleet_id",))
_TOKEN_COLUMNS = ("token_hash", "username", "token_id", "name", "created_at", "revoked_at")
_TOKEN = t.API_TOKENS.read(*_TOKEN_COLUMNS, where=("token_hash",))
_TOKENS = t.USER_TOKENS.read(*_TOKEN_COLUMNS, where=("username",))
_SESSION = t.SESSIONS.read("session_hash", "username", "csrf_token", "created_at", where=("session_hash",))
_END_SESSION = f"DELETE FROM {{ks}}.{t.SESSIONS.name} WHERE session_hash = ?"


def _user(row: Any) -> User:
    return User(
        username=row.username,
        password_hash=row.password_hash,
        role=Role.parse(row.role),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        sessions_from=row.sessions_from,
    )


def _token(row: Any) -> ApiToken:
    return ApiToken(
        token_id=row.token_id,
        token_hash=row.token_hash,
        username=row.username,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class CassandraAccounts:
    def __init__(self, db: Db, fleet_id: str) -> None:
        self.db = db
        self.fleet_id = fleet_id

    async def user(self, username: str) -> User | None:
        rows = await self.db.rows(_USER, (self.fleet_id, username))
        return _user(rows[0]) if rows else None

    async def users(self) -> list[User]:
        return [_user(row) for row in await self.db.rows(_USERS, (self.fleet_id,))]

    async def put_user(self, user: User) -> None:
        await self.db.write(
            t.USERS.row(
                fleet_id=self.fleet_id,
                username=user.username,
                password_hash=user.password_hash,
                role=user.role.label,
                created_at=user.created_at,
                disabled_at=user.disabled_at,
                sessions_from=user.sessions_from,
            )
        )

    async def token(self, token_hash: str) -> ApiToken | None:
        rows = await self.db.rows(_TOKEN, (token_hash,))
        return _token(rows[0]) if rows else None

    async def tokens(self, username: str) -> list[ApiToken]:
        return [_token(row) for row in await self.db.rows(_TOKENS, (username,))]

    async def put_token(self, token: ApiToken) -> None:
        common = {
            "username": token.username,
            "token_id": token.token_id,
            "token_hash": token.token_hash,
            "name": token.name,
            "created_at": token.created_at,
            "revoked_at": token.revoked_at,
        }
        # One logged batch: a token revoked in the list is revoked for lookups too, or neither.
        await self.db.write(t.API_TOKENS.row(**common), t.USER_TOKENS.row(**common), logged_batch=True)

    async def session(self, session_hash: str) -> Session | None:
        rows = await self.db.rows(_SESSION, (session_hash,))
        if not rows:
            return None
        row = rows[0]
        return Session(
            session_hash=row.session_hash, username=row.username, csrf_token=row.csrf_token, created_at=row.created_at
        )

    async def put_session(self, session: Session) -> None:
        await self.db.write(
            t.SESSIONS.row(
                session_hash=session.session_hash,
                username=session.username,
                csrf_token=session.csrf_token,
                created_at=session.created_at,
            )
        )

    async def end_session(self, session_hash: str) -> None:
        await self.db.execute(_END_SESSION, (session_hash,), consistency=t.SESSIONS.write_consistency)
