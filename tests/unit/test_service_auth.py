"""The access-control logic without a server: passwords (argon2id, policy, rehash), tokens, CSRF comparison, the
login brake (seeded randomized against a reference model), the serve settings' bounds, and the account rules over
thousands of random operations."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from fleetsense.service import csrf, tokens
from fleetsense.service import users as u
from fleetsense.service.login_brake import LoginBrake, address_key, username_key
from fleetsense.service.passwords import (
    MIN_LENGTH,
    HashParams,
    Passwords,
    Verdict,
    generated_password,
    password_problem,
)
from fleetsense.service.roles import Role
from fleetsense.service.settings import ServeSettings
from hypothesis import given
from hypothesis import strategies as st

from fleetsense.errors import ConfigError
from tests.unit.accounts_memory import MemoryAccounts

T = TypeVar("T")
CHEAP = HashParams(time_cost=1, memory_kib=64, parallelism=1)  # the unit tests' argon2id: fast, same code path
GOOD = "correct horse battery staple"


def run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(work)


# --- passwords ---------------------------------------------------------------------------------------------------


def test_a_password_is_stored_as_argon2id_with_its_parameters_and_verifies() -> None:
    passwords = Passwords(CHEAP)
    stored = passwords.hash_now(GOOD)
    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$") and GOOD not in stored
    assert passwords.verify_now(stored, GOOD).ok
    assert not passwords.verify_now(stored, GOOD + "!").ok
    assert passwords.hash_now(GOOD) != stored  # a fresh salt each time


def test_the_default_parameters_are_rfc_9106_low_memory() -> None:
    assert HashParams() == HashParams(time_cost=3, memory_kib=65_536, parallelism=4)
    settings = ServeSettings()
    assert (settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism) == (3, 65_536, 4)


def test_a_hash_made_with_older_parameters_is_replaced_at_the_next_login() -> None:
    old = Passwords(CHEAP).hash_now(GOOD)
    newer = Passwords(HashParams(time_cost=2, memory_kib=128, parallelism=1))
    verdict = newer.verify_now(old, GOOD)
    assert verdict.ok and verdict.rehashed is not None and "m=128,t=2" in verdict.rehashed
    assert newer.verify_now(verdict.rehashed, GOOD) == Verdict(True)
    assert newer.verify_now(old, "wrong password here!").rehashed is None


def test_an_unknown_account_costs_a_hash_too_and_never_verifies() -> None:
    passwords = Passwords(CHEAP)
    assert not passwords.verify_now(None, GOOD).ok
    assert not passwords.verify_now("not a hash", GOOD).ok
    assert not passwords.verify_now(passwords.hash_now(GOOD), "x" * 5_000).ok  # over the length bound


def test_the_password_policy_is_a_minimum_length_and_nothing_else() -> None:
    assert password_problem("a" * (MIN_LENGTH - 1)) is not None
    assert password_problem("a" * MIN_LENGTH) is None
    assert password_problem(" " * 20) is not None
    assert password_problem(generated_password()) is None
    with pytest.raises(ConfigError, match="at least 15"):
        Passwords(CHEAP).hash_now("short")


@given(st.text(max_size=40))
def test_any_text_gets_an_answer_from_the_policy_never_an_exception(text: str) -> None:
    problem = password_problem(text)
    assert (problem is None) == (len(text) >= MIN_LENGTH and bool(text.strip()))


# --- tokens, CSRF --------------------------------------------------------------------------------------------------


def test_a_token_is_32_random_bytes_shown_as_fst_base64url_and_stored_as_sha256_hex() -> None:
    made = {tokens.new_token() for _ in range(1_000)}
    assert len(made) == 1_000
    for token in list(made)[:50]:
        assert tokens.is_token(token) and len(token) == 4 + 43
        digest = tokens.token_hash(token)
        assert len(digest) == 64 and int(digest, 16) >= 0 and token[4:] not in digest


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer fst_abc", "fst_abc"),
        ("bearer   fst_abc ", "fst_abc"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_the_bearer_credential_is_read_from_the_authorization_header(header: str | None, expected: str | None) -> None:
    assert tokens.bearer(header) == expected


@given(st.text(max_size=80))
def test_only_the_token_shape_passes_is_token(text: str) -> None:
    assert tokens.is_token(text) == (
        text.startswith("fst_") and len(text) == 47 and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)
    )


def test_csrf_is_needed_on_every_method_that_may_change_state() -> None:
    assert [m for m in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE") if csrf.needs_token(m)] == [
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
    ]
    assert csrf.token_matches("abc", "abc")
    assert not csrf.token_matches("abd", "abc") and not csrf.token_matches(None, "abc")
    assert not csrf.token_matches("", "") and not csrf.token_matches("abc", "")


# --- the login brake ---------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def model_hold(failures: list[float], now: float, brake: LoginBrake) -> float:
    recent = [t for t in failures if t > now - brake.window_s]
    if len(recent) < brake.attempts:
        return 0.0
    hold = min(brake.backoff_max_s, brake.backoff_s * 2.0 ** (len(recent) - brake.attempts))
    return max(0.0, max(recent) + hold - now)


@pytest.mark.parametrize("seed", range(40))
def test_the_brake_holds_back_as_the_reference_model_says_over_random_histories(seed: int) -> None:
    rng = random.Random(seed)
    clock = Clock()
    brake = LoginBrake(
        attempts=rng.randint(1, 6),
        window_s=rng.choice([5.0, 60.0, 900.0]),
        backoff_s=rng.choice([0.5, 1.0, 2.0]),
        backoff_max_s=rng.choice([8.0, 60.0]),
        clock=clock,
    )
    history: dict[str, list[float]] = {}
    names = ["alice", "bob", "carol"]
    addresses = ["10.0.0.1", "10.0.0.2"]
    for _step in range(250):
        clock.now += rng.choice([0.0, 0.1, 1.0, 3.0, 30.0, 400.0])
        name, address = rng.choice(names), rng.choice(addresses)
        keys = [username_key(name), address_key(address)]
        expected = max(model_hold(history.get(k, []), clock.now, brake) for k in keys)
        assert brake.hold_s(keys) == pytest.approx(expected), f"seed {seed}"
        if expected > 0:
            continue  # a held try is refused before the password is checked: nothing counts
        if rng.random() < 0.8:
            brake.failed(keys)
            for key in keys:
                history.setdefault(key, []).append(clock.now)
        else:
            brake.succeeded(name)
            history.pop(username_key(name), None)


def test_the_brake_doubles_the_hold_back_up_to_its_maximum_and_forgets_after_the_window() -> None:
    clock = Clock()
    brake = LoginBrake(attempts=3, window_s=100.0, backoff_s=1.0, backoff_max_s=4.0, clock=clock)
    keys = [username_key("alice")]
    holds = []
    for _ in range(6):
        brake.failed(keys)
        holds.append(brake.hold_s(keys))
    assert holds == [0.0, 0.0, 1.0, 2.0, 4.0, 4.0]
    clock.now += 100.0
    assert brake.hold_s(keys) == 0.0
    assert username_key("Alice") == username_key("alice")  # case does not make a fresh budget


# --- settings ------------------------------------------------------------------------------------------------------


def test_the_dev_profile_listens_on_loopback_only_and_the_secure_one_needs_tls() -> None:
    assert ServeSettings().host == "127.0.0.1"
    ServeSettings(host="::1")
    with pytest.raises(ConfigError, match="loopback only"):
        ServeSettings(host="0.0.0.0")
    with pytest.raises(ConfigError, match="TLS"):
        ServeSettings(profile="secure")
    secure = ServeSettings(profile="secure", host="0.0.0.0", tls_cert="c.pem", tls_key="k.pem", secure_cookies=True)
    assert secure.tls


@pytest.mark.parametrize(
    ("field", "value"),
    [("port", 0), ("port", 70_000), ("login_attempts", 0), ("argon2_memory_kib", 1024), ("profile", "prod")],
)
def test_a_setting_out_of_bounds_is_refused_naming_it(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        ServeSettings(**{field: value})  # type: ignore[arg-type]


def test_the_secret_key_is_long_and_never_shown() -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        ServeSettings(secret_key="short")
    key = "k" * 43
    assert key not in repr(ServeSettings(secret_key=key))


# --- the account rules over random operations ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_tokens_work_exactly_while_unrevoked_and_their_user_is_active_over_random_operations(seed: int) -> None:
    """A model of who may do what, against service/users.py's operations; each seed replays the same ~300 steps."""

    async def scenario() -> None:
        rng = random.Random(seed)
        accounts = MemoryAccounts()
        passwords = Passwords(CHEAP)
        model_users: dict[str, tuple[Role, bool]] = {}  # name -> (role, active)
        model_tokens: dict[str, tuple[str, str, bool]] = {}  # secret -> (user, token id, revoked)
        for step in range(300):
            action = rng.choice(["add", "role", "disable", "enable", "token", "revoke", "check", "check"])
            name = rng.choice(["ann", "ben", "cy", "dee"])
            where = f"seed {seed} step {step} {action} {name}"
            if action == "add":
                role = rng.choice(list(Role))
                if name in model_users:
                    with pytest.raises(u.AccountError, match="taken"):
                        await u.add_user(accounts, passwords, name, role, GOOD)
                else:
                    await u.add_user(accounts, passwords, name, role, GOOD)
                    model_users[name] = (role, True)
            elif action in ("role", "disable", "enable"):
                if name not in model_users:
                    with pytest.raises(u.AccountError, match="no user"):
                        await u.update_user(accounts, name, disabled=True)
                    continue
                role, active = model_users[name]
                if action == "role":
                    role = rng.choice(list(Role))
                    await u.update_user(accounts, name, role=role)
                else:
                    active = action == "enable"
                    await u.update_user(accounts, name, disabled=not active)
                model_users[name] = (role, active)
            elif action == "token":
                if name in model_users and model_users[name][1]:
                    secret, token = await u.create_token(accounts, name, f"t{step}")
                    model_tokens[secret] = (name, token.token_id, False)
                else:
                    with pytest.raises(u.AccountError):
                        await u.create_token(accounts, name, "x")
            elif action == "revoke" and model_tokens:
                secret = rng.choice(sorted(model_tokens))
                owner, token_id, _ = model_tokens[secret]
                await u.revoke_token(accounts, owner, token_id)
                model_tokens[secret] = (owner, token_id, True)
            for secret, (owner, _token_id, revoked) in model_tokens.items():
                principal = await u.principal_for_token(accounts, secret)
                role, active = model_users[owner]
                if revoked or not active:
                    assert principal is None, where
                else:
                    assert principal is not None and (principal.username, principal.role) == (owner, role), where
        assert await u.principal_for_token(accounts, tokens.new_token()) is None

    run(scenario())


def test_a_login_checks_the_password_and_that_the_user_is_active() -> None:
    async def scenario() -> None:
        accounts, passwords = MemoryAccounts(), Passwords(CHEAP)
        await u.add_user(accounts, passwords, "ann", Role.VIEWER, GOOD)
        assert await u.check_password(accounts, passwords, "ann", GOOD) is not None
        assert await u.check_password(accounts, passwords, "ann", GOOD + "x") is None
        assert await u.check_password(accounts, passwords, "nobody", GOOD) is None
        assert await u.check_password(accounts, passwords, "Not A Name!", GOOD) is None
        await u.update_user(accounts, "ann", disabled=True)
        assert await u.check_password(accounts, passwords, "ann", GOOD) is None
        with pytest.raises(ConfigError, match="username"):
            await u.add_user(accounts, passwords, "Bad Name", Role.VIEWER, GOOD)

    run(scenario())


def test_a_login_rehashes_a_stored_hash_with_old_parameters() -> None:
    async def scenario() -> None:
        accounts = MemoryAccounts()
        await u.add_user(accounts, Passwords(CHEAP), "ann", Role.VIEWER, GOOD)
        newer = Passwords(HashParams(time_cost=2, memory_kib=64, parallelism=1))
        assert await u.check_password(accounts, newer, "ann", GOOD) is not None
        stored = (await accounts.user("ann")).password_hash  # type: ignore[union-attr]
        assert "t=2" in stored and newer.verify_now(stored, GOOD).ok

    run(scenario())


def test_a_session_begun_in_the_millisecond_of_a_password_change_is_over_and_a_new_one_begins_after_it() -> None:
    from datetime import timedelta

    moment = u.now_ms() + timedelta(seconds=5)  # in the future: session_start must still land after it
    user = u.User(username="ann", password_hash="h", role=Role.VIEWER, created_at=moment, sessions_from=moment)

    def session(at: Any) -> u.Session:
        return u.Session(session_hash="s", username="ann", csrf_token="c", created_at=at)

    assert not user.keeps(session(moment)) and not user.keeps(session(moment - timedelta(milliseconds=1)))
    assert user.keeps(session(moment + timedelta(milliseconds=1)))
    assert user.session_start() == moment + timedelta(milliseconds=1) and user.keeps(session(user.session_start()))


@pytest.mark.parametrize("seed", range(20))
def test_sessions_last_until_a_password_change_or_a_disable_over_random_operations(seed: int) -> None:
    """Sessions begun, passwords changed, users disabled and enabled, hundreds of times within a few milliseconds
    (the store is in memory): a session holds exactly while its user is active and nothing ended it since."""
    from fleetsense.service.sessions import new_session

    async def scenario() -> None:
        rng = random.Random(seed)
        accounts, passwords = MemoryAccounts(), Passwords(CHEAP)
        ended_at: dict[str, int] = {}  # user -> the step of the last password change or disable
        active: dict[str, bool] = {}
        begun: dict[str, tuple[str, int]] = {}  # session hash -> (user, step)
        for name in ("ann", "ben"):
            await u.add_user(accounts, passwords, name, Role.VIEWER, GOOD)
            ended_at[name], active[name] = -1, True
        for step in range(300):
            name = rng.choice(["ann", "ben"])
            action = rng.choice(["login", "login", "password", "disable", "enable", "logout"])
            if action == "login" and active[name]:
                user = await accounts.user(name)
                assert user is not None
                made = new_session()
                await accounts.put_session(
                    u.Session(
                        session_hash=made.session_hash,
                        username=name,
                        csrf_token=made.csrf_token,
                        created_at=user.session_start(),
                    )
                )
                begun[made.session_hash] = (name, step)
            elif action == "password":
                await u.set_password(accounts, passwords, name, GOOD + str(step))
                ended_at[name] = step
            elif action in ("disable", "enable"):
                await u.update_user(accounts, name, disabled=action == "disable")
                if action == "disable":
                    ended_at[name] = step
                active[name] = action == "enable"
            elif action == "logout" and begun:
                gone = rng.choice(sorted(begun))
                await accounts.end_session(gone)
                del begun[gone]
            for session_hash, (owner, at_step) in begun.items():
                holds = await u.session_principal(accounts, session_hash) is not None
                assert holds == (active[owner] and at_step > ended_at[owner]), f"seed {seed} step {step}"

    run(scenario())
