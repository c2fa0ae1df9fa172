"""The API's access control through HTTP, in process (the accounts in memory): every route of the app refuses a
request without credentials (so a route added later is covered the day it is merged), every role is refused what
it may not do, and sessions, CSRF, tokens, disabling and the login brake behave as docs/service.md says."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from fleetsense.service import users as u
from fleetsense.service.app import create_app
from fleetsense.service.auth import PUBLIC_PATHS, AuthState, routes_and_roles
from fleetsense.service.login_brake import LoginBrake
from fleetsense.service.passwords import HashParams, Passwords
from fleetsense.service.roles import Role
from fleetsense.service.routes_auth import LOGIN_FAILED
from fleetsense.service.settings import ServeSettings
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.accounts_memory import MemoryAccounts

GOOD = "correct horse battery staple"
CHEAP = HashParams(time_cost=1, memory_kib=64, parallelism=1)


def make_app() -> tuple[FastAPI, AuthState]:
    app = create_app(context=None)
    state = AuthState(
        settings=ServeSettings(),
        accounts=MemoryAccounts(),
        passwords=Passwords(CHEAP),
        brake=LoginBrake(attempts=3, backoff_s=30.0),
    )
    app.state.auth = state
    return app, state


def client(app: FastAPI, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers)


def run(scenario: Callable[[FastAPI, AuthState], Awaitable[None]]) -> None:
    app, state = make_app()
    asyncio.run(scenario(app, state))


async def add(state: AuthState, name: str, role: Role) -> str:
    """A user of `role` and a token of theirs."""
    await u.add_user(state.accounts, state.passwords, name, role, GOOD)
    secret, _ = await u.create_token(state.accounts, name, "test")
    return secret


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path with its parameters filled) for every route of the app, documented or not."""
    return [(method, re.sub(r"\{[^}]+\}", "x", path)) for method, path, _role in routes_and_roles(app)]


def test_every_route_but_the_public_ones_refuses_a_request_without_credentials() -> None:
    async def scenario(app: FastAPI, state: AuthState) -> None:
        routes = every_route(app)
        documented = {p for p in app.openapi()["paths"]}
        assert {re.sub(r"\{[^}]+\}", "x", p) for p in documented} <= {p for _m, p in routes}
        assert len(routes) >= 15
        # Public paths are templates ("/app/{asset:path}"): compared filled in, as the walk requests them.
        public = {re.sub(r"\{[^}]+\}", "x", p) for p in PUBLIC_PATHS}
        async with client(app) as anonymous, client(app, authorization="Bearer fst_" + "A" * 43) as forged:
            for method, path in routes:
                if path in public:
                    continue
                for who in (anonymous, forged):
                    answer = await who.request(method, path)
                    assert answer.status_code == 401, f"{method} {path} answered {answer.status_code} without proof"
                    assert answer.headers["www-authenticate"] == "Bearer"
            assert (await anonymous.get("/v1/health")).status_code == 200

    run(scenario)


def test_the_routes_that_need_no_role_are_exactly_the_public_ones() -> None:
    app, _ = make_app()
    public = {path for _method, path, role in routes_and_roles(app) if role is None}
    assert public == PUBLIC_PATHS
    assert {p for p in PUBLIC_PATHS if p.startswith("/v1")} == {"/v1/health", "/v1/auth/login", "/v1/openapi.json"}
    assert not any(isinstance(r, APIWebSocketRoute) for r in iter_route_contexts(app.routes))


def test_every_route_refuses_each_role_below_the_one_it_needs() -> None:
    """Read from the routes' own `require(...)`: a route merged later is covered without a line here."""

    async def scenario(app: FastAPI, state: AuthState) -> None:
        token = {role: await add(state, role.label, role) for role in Role}
        checked = 0
        for method, path, least in routes_and_roles(app):
            for role in (r for r in Role if least is not None and r < least):
                async with client(app, authorization=f"Bearer {token[role]}") as who:
                    answer = await who.request(method, re.sub(r"\{[^}]+\}", "x", path))
                assert answer.status_code == 403, f"{role.label} {method} {path}: {answer.status_code}"
                assert f"needs the {least.label} role" in answer.json()["detail"]  # type: ignore[union-attr]
                checked += 1
        assert checked >= 12  # the admin routes, refused to viewers and managers

    run(scenario)


# (method, path, body, the least role allowed): every route of routes_auth.
MY_ROUTES: list[tuple[str, str, dict[str, Any] | None, Role]] = [
    ("GET", "/v1/auth/me", None, Role.VIEWER),
    ("GET", "/v1/auth/tokens", None, Role.VIEWER),
    ("POST", "/v1/auth/tokens", {"name": "mine"}, Role.VIEWER),
    ("GET", "/v1/users", None, Role.ADMIN),
    ("POST", "/v1/users", {"username": "newbie", "role": "viewer"}, Role.ADMIN),
    ("PATCH", "/v1/users/target", {"role": "manager"}, Role.ADMIN),
    ("GET", "/v1/users/target/tokens", None, Role.ADMIN),
    ("POST", "/v1/users/target/tokens", {"name": "theirs"}, Role.ADMIN),
    ("DELETE", "/v1/users/target/tokens/tok_0", None, Role.ADMIN),
]


def test_every_role_is_refused_what_it_may_not_do_and_allowed_the_rest() -> None:
    async def scenario(app: FastAPI, state: AuthState) -> None:
        token = {role: await add(state, role.label, role) for role in Role}
        await add(state, "target", Role.VIEWER)
        covered = {(m, re.sub(r"/(target|tok_0)", "/x", p)) for m, p, _b, _r in MY_ROUTES}
        mine = {(m, p) for m, p in every_route(app) if p.startswith(("/v1/users", "/v1/auth/"))}
        # Login, logout, one's own password and token revocation are exercised by the tests below.
        assert mine - covered == {
            ("POST", "/v1/auth/login"),
            ("POST", "/v1/auth/logout"),
            ("POST", "/v1/auth/password"),
            ("DELETE", "/v1/auth/tokens/x"),
        }
        for method, path, body, least in MY_ROUTES:
            for role in Role:
                async with client(app, authorization=f"Bearer {token[role]}") as who:
                    answer = await who.request(method, path, json=body)
                if role < least:
                    assert answer.status_code == 403, f"{role.label} {method} {path}: {answer.status_code}"
                    assert f"needs the {least.label} role" in answer.json()["detail"]
                else:
                    assert answer.status_code < 500 and answer.status_code != 403, (role, method, path, answer.text)

    run(scenario)


async def login(who: httpx.AsyncClient, name: str, password: str = GOOD, *, form: bool = False) -> httpx.Response:
    fields = {"username": name, "password": password}
    return await (who.post("/v1/auth/login", data=fields) if form else who.post("/v1/auth/login", json=fields))


def test_a_session_needs_its_csrf_token_on_every_change_and_ends_at_logout() -> None:
    async def scenario(app: FastAPI, state: AuthState) -> None:
        await add(state, "ann", Role.ADMIN)
        async with client(app) as browser:
            answer = await login(browser, "ann", form=True)
            assert answer.status_code == 200
            cookie = answer.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/v1" in cookie
            assert "Secure" not in cookie  # plain HTTP in the dev profile
            csrf_token = answer.json()["csrf_token"]
            assert (await browser.get("/v1/users")).status_code == 200  # a read needs no CSRF token
            change = {"username": "ben", "role": "viewer"}
            refused = await browser.post("/v1/users", json=change)
            assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
            wrong = await browser.post("/v1/users", json=change, headers={"X-CSRF-Token": csrf_token[:-1] + "x"})
            assert wrong.status_code == 403
            made = await browser.post("/v1/users", json=change, headers={"X-CSRF-Token": csrf_token})
            assert made.status_code == 201 and len(made.json()["password"]) >= 15
            me = (await browser.get("/v1/auth/me")).json()
            assert me == {"username": "ann", "role": "admin", "via": "session", "csrf_token": csrf_token,
                          "session_expires_in_s": None}  # fmt: skip
            assert (await browser.post("/v1/auth/logout")).status_code == 403  # logout is a change too
            assert (await browser.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf_token})).status_code == 204
            assert (await browser.get("/v1/auth/me")).status_code == 401
            assert not state.accounts.sessions_by_hash  # type: ignore[attr-defined]

    run(scenario)


def test_secure_cookies_are_marked_secure() -> None:
    async def scenario(app: FastAPI, state: AuthState) -> None:
        state.settings = ServeSettings(secure_cookies=True)
        await add(state, "ann", Role.VIEWER)
        async with client(app) as browser:
            assert "Secure" in (await login(browser, "ann")).headers["set-cookie"]

    run(scenario)


def test_a_token_needs_no_csrf_token_and_stops_when_revoked_or_its_user_is_disabled() -> None:
    async def scenario(app: FastAPI, state: AuthState) -> None:
        admin = await add(state, "root", Role.ADMIN)
        ann = await add(state, "ann", Role.MANAGER)
        async with (
            client(app, authorization=f"Bearer {ann}") as program,
            client(app, authorization=f"Bearer {admin}") as boss,
        ):
            made = await program.post("/v1/auth/tokens", json={"name": "second"})
            assert made.status_code == 201
            second = made.json()["token"]
            assert made.json()["token_id"] not in second
            listed = (await program.get("/v1/auth/tokens")).json()
            assert {t["name"] for t in listed} == {"test", "second"} and all("token" not in t for t in listed)
            async with client(app, authorization=f"Bearer {second}") as other:
                assert (await other.get("/v1/auth/me")).json()["via"] == "token"
                revoked = await program.delete(f"/v1/auth/tokens/{made.json()['token_id']}")
                assert revoked.status_code == 200 and revoked.json()["revoked"]
                assert (await other.get("/v1/auth/me")).status_code == 401
            demoted = await boss.patch("/v1/users/ann", json={"role": "viewer"})
            assert demoted.json()["role"] == "viewer"
            assert (await program.get("/v1/auth/me")).json()["role"] == "viewer"  # at the next request
            assert (await boss.patch("/v1/users/ann", json={"disabled": True})).json()["disabled"]
            assert (await program.get("/v1/auth/me")).status_code == 401
            assert (await boss.patch("/v1/users/ann", json={"disabled": False})).status_code == 200
            assert (await program.get("/v1/auth/me")).status_code == 200
            assert (await boss.patch("/v1/users/root", json={"disabled": True})).status_code == 409
            assert (await boss.get("/v1/users/nobody/tokens")).status_code == 404
            assert (await boss.delete("/v1/users/ann/tokens/tok_nope")).status_code == 404

    run(scenario)


def test_a_disabled_users_session_stops_at_once() -> None:
    async def scenario(app: FastAPI, state: AuthState) -> None:
        await add(state, "ann", Role.VIEWER)
        async with client(app) as browser:
            await login(browser, "ann")
            assert (await browser.get("/v1/auth/me")).status_code == 200
            await u.update_user(state.accounts, "ann", disabled=True)
            assert (await browser.get("/v1/auth/me")).status_code == 401
            assert (await login(browser, "ann")).json()["detail"] == LOGIN_FAILED
            await u.update_user(state.accounts, "ann", disabled=False)
            assert (await browser.get("/v1/auth/me")).status_code == 401  # enabled again: its old sessions stay over
            assert (await login(browser, "ann")).status_code == 200

    run(scenario)


def test_every_failed_login_says_the_same_thing_and_the_brake_holds_back_guessing() -> None:
    async def scenario(app: FastAPI, state: AuthState) -> None:
        await add(state, "ann", Role.VIEWER)
        async with client(app) as guesser:
            answers = [await login(guesser, "ann", "wrong password, long"), await login(guesser, "nobody")]
            answers.append(await guesser.post("/v1/auth/login", json={"username": "Not Valid!", "password": "x"}))
            assert [(a.status_code, a.json()["detail"]) for a in answers] == [(401, LOGIN_FAILED)] * 3
            held = await login(guesser, "ann")  # the right password, but this address used its 3 attempts
            assert held.status_code == 429 and int(held.headers["retry-after"]) >= 1
            assert (await guesser.post("/v1/auth/login", content=b"{not json")).status_code == 400
            assert (await guesser.post("/v1/auth/login", json={"username": "ann"})).status_code == 400

    run(scenario)


def test_one_changes_ones_own_password_with_the_current_one() -> None:
    async def scenario(app: FastAPI, state: AuthState) -> None:
        ann = await add(state, "ann", Role.VIEWER)
        new = "a brand new passphrase here"
        async with client(app, authorization=f"Bearer {ann}") as who:
            wrong = await who.post("/v1/auth/password", json={"current_password": "nope", "new_password": new})
            assert wrong.status_code == 403
            short = await who.post("/v1/auth/password", json={"current_password": GOOD, "new_password": "short"})
            assert short.status_code == 422
            async with client(app) as elsewhere:  # a session begun with the old password
                assert (await login(elsewhere, "ann")).status_code == 200
                done = await who.post("/v1/auth/password", json={"current_password": GOOD, "new_password": new})
                assert done.status_code == 200 and done.json()["csrf_token"] is None
                assert (await elsewhere.get("/v1/auth/me")).status_code == 401  # over: the old password made it
                assert (await who.get("/v1/auth/me")).status_code == 200  # tokens are not sessions: kept
        async with client(app) as browser:
            assert (await login(browser, "ann")).status_code == 401
            assert (await login(browser, "ann", new)).status_code == 200
            csrf_token = (await browser.get("/v1/auth/me")).json()["csrf_token"]
            change = {"current_password": new, "new_password": GOOD}
            again = await browser.post("/v1/auth/password", json=change, headers={"X-CSRF-Token": csrf_token})
            assert again.status_code == 200 and again.json()["csrf_token"] not in (None, csrf_token)
            assert (await browser.get("/v1/auth/me")).json()["csrf_token"] == again.json()["csrf_token"]

    run(scenario)


def test_bad_input_to_the_admin_routes_gets_a_4xx_that_says_what_is_wrong() -> None:
    async def scenario(app: FastAPI, state: AuthState) -> None:
        admin = await add(state, "root", Role.ADMIN)
        async with client(app, authorization=f"Bearer {admin}") as boss:
            for body, expected in (
                ({"username": "Bad Name", "role": "viewer"}, 422),  # the schema carries the username rule
                ({"username": "ok", "role": "emperor"}, 422),
                ({"username": "ok", "role": "viewer", "password": "short"}, 422),
            ):
                answer = await boss.post("/v1/users", json=body)
                assert answer.status_code == expected, (body, answer.text)
                assert answer.json()["detail"]
            assert (await boss.post("/v1/users", json={"username": "root", "role": "viewer"})).status_code == 409
            assert (
                await boss.patch("/v1/users/ann", json={"disabled": 0})
            ).status_code == 422  # strict: no 0 for false
            await u.update_user(state.accounts, "root", disabled=False)
            made = await boss.post("/v1/users", json={"username": "off", "role": "viewer"})
            await u.update_user(state.accounts, made.json()["username"], disabled=True)
            refused = await boss.post("/v1/users/off/tokens", json={"name": "x"})
            assert refused.status_code == 409 and "enable the user first" in refused.json()["detail"]
            assert (await boss.patch("/v1/users/nobody", json={"role": "viewer"})).status_code == 404

    run(scenario)


_text = st.text(max_size=80)
_PRINTABLE = st.characters(min_codepoint=33, max_codepoint=126)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    body=st.one_of(
        st.dictionaries(st.sampled_from(["username", "password", "x"]), _json_values, max_size=3),
        _json_values,
    ),
    as_form=st.booleans(),
    raw=st.binary(max_size=60),
    use_raw=st.booleans(),
)
def test_any_login_body_gets_a_4xx_never_a_5xx(body: Any, as_form: bool, raw: bytes, use_raw: bool) -> None:
    async def scenario(app: FastAPI, state: AuthState) -> None:
        state.brake = LoginBrake(attempts=10_000)  # the brake is tested apart; here every input reaches the parser
        await u.add_user(state.accounts, state.passwords, "ann", Role.VIEWER, GOOD)
        async with client(app) as who:
            if use_raw:
                answer = await who.post("/v1/auth/login", content=raw, headers={"content-type": "application/json"})
            elif as_form and isinstance(body, dict):
                answer = await who.post("/v1/auth/login", data={k: str(v) for k, v in body.items()})
            else:
                answer = await who.post("/v1/auth/login", json=body)
        assert answer.status_code in (400, 401), answer.text
        assert isinstance(answer.json()["detail"], str)

    run(scenario)


@settings(max_examples=150, deadline=None)
@given(
    authorization=st.one_of(st.none(), _text, _text.map("Bearer ".__add__), st.just("Bearer fst_" + "A" * 43)),
    cookie=st.one_of(st.none(), st.text(alphabet=_PRINTABLE, max_size=60)),
    request=st.sampled_from(
        [("GET", "/v1/users"), ("POST", "/v1/users"), ("PATCH", "/v1/users/x"), ("DELETE", "/v1/auth/tokens/x")]
    ),
    csrf_header=st.one_of(st.none(), st.text(alphabet=_PRINTABLE, max_size=40)),
)
def test_any_forged_credential_is_refused_with_401_never_a_5xx(
    authorization: str | None, cookie: str | None, request: tuple[str, str], csrf_header: str | None
) -> None:
    async def scenario(app: FastAPI, state: AuthState) -> None:
        headers = {}
        if authorization is not None and authorization.isprintable() and authorization.isascii():
            headers["authorization"] = authorization
        if csrf_header is not None:
            headers["x-csrf-token"] = csrf_header
        cookies = {"fleetsense_session": cookie} if cookie and ";" not in cookie else {}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers, cookies=cookies
        ) as who:
            answer = await who.request(*request)
        assert answer.status_code == 401, (headers, cookies, answer.text)

    run(scenario)


def test_hashing_a_password_never_stalls_the_event_loop() -> None:
    """The real parameters (64 MiB, ~0.1 s a hash) in worker threads: a ticker on the loop keeps ticking."""

    async def scenario() -> float:
        passwords = Passwords()  # the defaults: RFC 9106 low memory
        stored = await passwords.hash(GOOD)
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            loop = asyncio.get_running_loop()
            last = loop.time()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = loop.time()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        started = asyncio.get_running_loop().time()
        verdicts = await asyncio.gather(*(passwords.verify(stored, GOOD) for _ in range(4)))
        elapsed = asyncio.get_running_loop().time() - started
        done.set()
        await ticking
        assert all(v.ok for v in verdicts)
        assert elapsed > 0.1  # real work happened
        return max(gaps)

    assert asyncio.run(scenario()) < 0.1
