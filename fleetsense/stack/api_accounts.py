"""The API's accounts from the command line and the demo: `fleetsense user ...`, `fleetsense token ...`, and the
demo's admin. They write the same tables the API reads (service/user_store.py), as the stack's `service` user."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from fleetsense.service import users as u
from fleetsense.service.passwords import HashParams, Passwords
from fleetsense.service.roles import Role
from fleetsense.service.users import Accounts
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.secrets import load_or_create, write_private

T = TypeVar("T")
DEMO_ADMIN = "admin"
ADMIN_PASSWORD_FILE = "api-admin.json"  # {"username": "admin", "password": ...}, 0600
DEMO_TOKEN_FILE = "api-admin-token"  # the demo's curl line's token, 0600


def with_accounts(config: StackConfig, work: Callable[[Accounts, Passwords], Awaitable[T]]) -> T:
    """Run `work` on the stack's account store (Cassandra, as the service user) with the API's password hashing."""
    from fleetsense.service.db import Db
    from fleetsense.service.user_store import CassandraAccounts
    from fleetsense.stack.api import serve_settings
    from fleetsense.stack.cassandra_auth import SERVICE, session_as

    settings = serve_settings(config)
    params = HashParams(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    with session_as(config, SERVICE) as session:

        async def run() -> T:
            passwords = Passwords(params, concurrency=1)
            return await work(CassandraAccounts(Db(session, settings.keyspace), settings.fleet_id), passwords)

        return asyncio.run(run())


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password_file: Path
    token: str


def ensure_demo_admin(config: StackConfig) -> DemoLogin:
    """The demo's admin: made once with a generated password kept in <data>/secrets/api-admin.json, reused on
    later demos (its password reset to the file's if they differ, re-enabled if disabled), and an API token for the
    printed curl line, kept beside it and replaced when revoked."""
    password_file = config.secrets_dir / ADMIN_PASSWORD_FILE
    creds = load_or_create(password_file, DEMO_ADMIN)
    token_file = config.secrets_dir / DEMO_TOKEN_FILE
    saved = token_file.read_text().strip() if token_file.exists() else ""

    async def work(accounts: Accounts, passwords: Passwords) -> str:
        user = await accounts.user(creds.username)
        if user is None:
            await u.add_user(accounts, passwords, creds.username, Role.ADMIN, creds.password)
        elif not (await passwords.verify(user.password_hash, creds.password)).ok:
            await u.set_password(accounts, passwords, creds.username, creds.password)
        await u.update_user(accounts, creds.username, role=Role.ADMIN, disabled=False)
        if saved and await u.principal_for_token(accounts, saved) is not None:
            return saved
        secret, _ = await u.create_token(accounts, creds.username, "demo: the printed curl line")
        return secret

    token = with_accounts(config, work)
    if token != saved:
        write_private(token_file, token + "\n")
    return DemoLogin(creds.username, password_file, token)
