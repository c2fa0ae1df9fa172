"""Access control against the real stack: the API process `stack up` started (its accounts in the stack's
Cassandra, written as the `service` user), reached over HTTP like any client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fleetsense.service.routes_auth import LOGIN_FAILED

from fleetsense.stack import manager
from fleetsense.stack.api import Api
from fleetsense.stack.api_accounts import DemoLogin, ensure_demo_admin
from fleetsense.stack.layout import StackConfig

PASSWORDS = {"mara": "manager passphrase for mara", "vic": "viewer passphrase for vic"}


@pytest.fixture(scope="module")
def api(stack: StackConfig) -> str:
    return Api(stack).url


@pytest.fixture(scope="module")
def admin(stack: StackConfig) -> DemoLogin:
    return ensure_demo_admin(stack)  # what the demo does: the admin and a token, secrets under the data dir


@pytest.fixture(scope="module")
def boss(api: str, admin: DemoLogin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {admin.token}"}, timeout=10) as client:
        for name, role in (("mara", "manager"), ("vic", "viewer")):
            made = client.post("/v1/users", json={"username": name, "role": role, "password": PASSWORDS[name]})
            assert made.status_code == 201, made.text
        yield client


def test_the_api_runs_in_the_stack_and_only_health_answers_without_credentials(stack: StackConfig, api: str) -> None:
    row = next(r for r in manager.status(stack) if r.name == "api")
    assert row.state == "running" and row.health.startswith("ok"), row
    assert httpx.get(f"{api}/v1/health").json() == {"status": "ok"}
    for method, path in (("GET", "/v1/auth/me"), ("GET", "/v1/users"), ("POST", "/v1/users")):
        assert httpx.request(method, f"{api}{path}").status_code == 401


def test_the_demo_admin_is_made_once_and_its_password_kept_privately(stack: StackConfig, admin: DemoLogin) -> None:
    assert admin.password_file.stat().st_mode & 0o777 == 0o600
    again = ensure_demo_admin(stack)
    assert again.token == admin.token and again.password_file == admin.password_file


def test_each_role_is_refused_what_it_may_not_do(api: str, boss: httpx.Client) -> None:
    tokens = {}
    for name in PASSWORDS:
        made = boss.post(f"/v1/users/{name}/tokens", json={"name": "integration"})
        assert made.status_code == 201
        tokens[name] = made.json()["token"]
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {tokens['vic']}"}) as viewer:
        assert viewer.get("/v1/auth/me").json()["role"] == "viewer"
        assert viewer.get("/v1/users").status_code == 403
        assert viewer.post("/v1/users", json={"username": "x1", "role": "viewer"}).status_code == 403
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {tokens['mara']}"}) as manager_client:
        assert manager_client.get("/v1/auth/me").json()["role"] == "manager"
        assert manager_client.patch("/v1/users/vic", json={"role": "admin"}).status_code == 403
        assert manager_client.get("/v1/users/vic/tokens").status_code == 403
    listed = {u["username"]: u["role"] for u in boss.get("/v1/users").json()}
    assert listed["admin"] == "admin" and listed["mara"] == "manager" and listed["vic"] == "viewer"


def test_a_session_cookie_changes_state_only_with_its_csrf_token(api: str, boss: httpx.Client) -> None:
    with httpx.Client(base_url=api) as browser:
        answer = browser.post("/v1/auth/login", data={"username": "mara", "password": PASSWORDS["mara"]})
        assert answer.status_code == 200, answer.text
        assert "httponly" in answer.headers["set-cookie"].lower()
        csrf_token = answer.json()["csrf_token"]
        ended_cookie = answer.cookies.get("fleetsense_session")
        assert browser.get("/v1/auth/me").json()["via"] == "session"
        refused = browser.post("/v1/auth/tokens", json={"name": "from the browser"})
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
        made = browser.post("/v1/auth/tokens", json={"name": "from the browser"}, headers={"X-CSRF-Token": csrf_token})
        assert made.status_code == 201
        assert browser.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf_token}).status_code == 204
        browser.cookies.clear()
        again = browser.post("/v1/auth/login", json={"username": "mara", "password": PASSWORDS["mara"]})
        session_cookie = again.cookies.get("fleetsense_session")
        assert session_cookie
    # The logged-out session's cookie is refused; the new one works.
    with httpx.Client(base_url=api, cookies={"fleetsense_session": ended_cookie}) as replay:
        assert replay.get("/v1/auth/me").status_code == 401
    with httpx.Client(base_url=api, cookies={"fleetsense_session": session_cookie}) as current:
        assert current.get("/v1/auth/me").status_code == 200


def test_a_token_works_until_revoked_and_a_disabled_users_proofs_stop_at_once(api: str, boss: httpx.Client) -> None:
    made = boss.post("/v1/users/vic/tokens", json={"name": "to revoke"}).json()
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {made['token']}"}) as program:
        assert program.get("/v1/auth/me").status_code == 200
        assert boss.delete(f"/v1/users/vic/tokens/{made['token_id']}").json()["revoked"]
        assert program.get("/v1/auth/me").status_code == 401
    kept = boss.post("/v1/users/vic/tokens", json={"name": "kept"}).json()["token"]
    with (
        httpx.Client(base_url=api) as browser,
        httpx.Client(base_url=api, headers={"Authorization": f"Bearer {kept}"}) as program,
    ):
        assert browser.post("/v1/auth/login", json={"username": "vic", "password": PASSWORDS["vic"]}).is_success
        assert boss.patch("/v1/users/vic", json={"disabled": True}).json()["disabled"]
        assert browser.get("/v1/auth/me").status_code == 401
        assert program.get("/v1/auth/me").status_code == 401
        login = browser.post("/v1/auth/login", json={"username": "vic", "password": PASSWORDS["vic"]})
        assert (login.status_code, login.json()["detail"]) == (401, LOGIN_FAILED)
        assert boss.patch("/v1/users/vic", json={"disabled": False}).status_code == 200
        assert program.get("/v1/auth/me").status_code == 200  # a token works again once its user is enabled
        assert browser.get("/v1/auth/me").status_code == 401  # a session does not: disabling ended it for good


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(api: str, boss: httpx.Client) -> None:
    with httpx.Client(base_url=api) as guesser:
        wrong = guesser.post("/v1/auth/login", json={"username": "mara", "password": "not her passphrase"})
        unknown = guesser.post("/v1/auth/login", json={"username": "nobody", "password": "not a passphrase"})
    assert (wrong.status_code, wrong.json()) == (unknown.status_code, unknown.json()) == (401, {"detail": LOGIN_FAILED})


def test_what_proving_identity_costs_on_the_real_stack(api: str, admin: DemoLogin, boss: httpx.Client) -> None:
    """Measured, printed (run with -s) and bounded loosely: a token request is two key reads (the token by its
    hash, then its user); a login is one argon2id verification (64 MiB, t=3) and a session write."""
    import json
    import statistics
    import time

    def percentiles(samples: list[float]) -> dict[str, float]:
        ordered = sorted(samples)
        return {
            "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
        }

    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {admin.token}"}) as program:
        token_s = []
        for _ in range(100):
            started = time.perf_counter()
            assert program.get("/v1/auth/me").status_code == 200
            token_s.append(time.perf_counter() - started)
        health_s = []
        for _ in range(100):
            started = time.perf_counter()
            assert program.get("/v1/health").status_code == 200
            health_s.append(time.perf_counter() - started)
    login_s = []
    with httpx.Client(base_url=api) as browser:
        for _ in range(5):
            started = time.perf_counter()
            assert browser.post("/v1/auth/login", json={"username": "mara", "password": PASSWORDS["mara"]}).is_success
            login_s.append(time.perf_counter() - started)
    measured = {"token_me": percentiles(token_s), "health": percentiles(health_s), "login": percentiles(login_s)}
    print("\nauth costs:", json.dumps(measured))
    assert measured["token_me"]["p50_ms"] < 250 and measured["login"]["p50_ms"] < 3_000
