"""The accounts store in memory (service/users.py's `Accounts`), for unit tests of the rules above it; the
Cassandra store is tested against the real node (tests/integration/test_api_auth.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetsense.service.users import ApiToken, Session, User


@dataclass
class MemoryAccounts:
    users_by_name: dict[str, User] = field(default_factory=dict)
    tokens_by_hash: dict[str, ApiToken] = field(default_factory=dict)
    sessions_by_hash: dict[str, Session] = field(default_factory=dict)

    async def user(self, username: str) -> User | None:
        return self.users_by_name.get(username)

    async def users(self) -> list[User]:
        return [self.users_by_name[name] for name in sorted(self.users_by_name)]

    async def put_user(self, user: User) -> None:
        self.users_by_name[user.username] = user

    async def token(self, token_hash: str) -> ApiToken | None:
        return self.tokens_by_hash.get(token_hash)

    async def tokens(self, username: str) -> list[ApiToken]:
        found = (t for t in self.tokens_by_hash.values() if t.username == username)
        return sorted(found, key=lambda t: t.token_id)

    async def put_token(self, token: ApiToken) -> None:
        self.tokens_by_hash[token.token_hash] = token

    async def session(self, session_hash: str) -> Session | None:
        return self.sessions_by_hash.get(session_hash)

    async def put_session(self, session: Session) -> None:
        self.sessions_by_hash[session.session_hash] = session

    async def end_session(self, session_hash: str) -> None:
        self.sessions_by_hash.pop(session_hash, None)
