"""Who is asking: the dependency every route but health (and the login itself) declares, `Depends(require(Role.X))`.

A request proves who it is with an API token (`Authorization: Bearer fst_...`) or a browser session cookie; a
session's state-changing request must also carry the session's CSRF token in `X-CSRF-Token` (service/csrf.py says
why a token needs none). Both are checked against the user's row on every request, so revoking a token, disabling
a user or changing a role bites on the next request. Tests of other routes may override `current_principal`
(`app.dependency_overrides[current_principal]`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException, Request, status
from fleetsense.service import csrf, tokens
from fleetsense.service.login_brake import LoginBrake
from fleetsense.service.passwords import HashParams, Passwords
from fleetsense.service.roles import Principal, Role
from fleetsense.service.sessions import session_hash
from fleetsense.service.settings import ServeSettings
from fleetsense.service.users import Accounts, principal_for_token, session_principal
from pydantic import BaseModel

# The only routes answered without a proof of identity (tests/unit/test_service_auth_routes.py walks every other
# route and expects 401): a load balancer's probe, the login, and the API's own description (its shape is public
# in the repository; it holds no data). Also the dashboard's shell and assets (service/routes_web.py): a browser
# must load the login page before it can log in, and they are the repository's own static files, the same for
# everyone; every number the page shows comes from /v1, behind the login.
DASHBOARD_PATHS = frozenset({"/", "/app/", "/app/{asset:path}"})
PUBLIC_PATHS = (
    frozenset({"/v1/health", "/v1/auth/login", "/v1/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
    | DASHBOARD_PATHS
)
NO_PROOF = "log in (POST /v1/auth/login), or send an API token as Authorization: Bearer fst_..."


class Problem(BaseModel):
    """Every refusal's body: what is wrong and what to do, in one sentence."""

    detail: str


# The answers every authenticated route may give: a router declares them (`APIRouter(responses=AUTH_RESPONSES)`)
# so its OpenAPI document, and a schemathesis run against it, knows them.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no proof of identity, or one that no longer holds"},
    403: {"model": Problem, "description": "a role below the one needed, or a session's change without its CSRF token"},
}


@dataclass
class AuthState:
    """What checking identities needs, one per application: the account store, the password hasher (its worker
    slots) and the login brake (its memory)."""

    settings: ServeSettings
    accounts: Accounts
    passwords: Passwords
    brake: LoginBrake


def build_auth_state(settings: ServeSettings, accounts: Accounts) -> AuthState:
    params = HashParams(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    brake = LoginBrake(
        attempts=settings.login_attempts,
        window_s=settings.login_window_s,
        backoff_s=settings.login_backoff_s,
        backoff_max_s=settings.login_backoff_max_s,
    )
    return AuthState(settings, accounts, Passwords(params, concurrency=settings.hash_concurrency), brake)


def auth_state(request: Request) -> AuthState:
    """The application's AuthState (`app.state.auth`), made from its ServiceContext on first use."""
    app_state: Any = request.app.state
    found = getattr(app_state, "auth", None)
    if found is not None:
        return found  # type: ignore[no-any-return]
    context = getattr(app_state, "context", None)
    if context is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this API runs without a database")
    from fleetsense.service.user_store import CassandraAccounts

    settings: ServeSettings = context.settings
    made = build_auth_state(settings, CassandraAccounts(context.db, settings.fleet_id))
    app_state.auth = made
    return made


def unauthorized(detail: str = NO_PROOF) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def session_cookie_name(request: Request) -> str:
    context = getattr(request.app.state, "context", None)
    settings = context.settings if context is not None else ServeSettings()
    return str(settings.session_cookie)


async def current_principal(request: Request) -> Principal:
    authorization = request.headers.get("authorization")
    if authorization is not None:
        secret = tokens.bearer(authorization)
        if secret is None:
            raise unauthorized("the Authorization header must be `Bearer fst_...` (an API token)")
        principal = await principal_for_token(auth_state(request).accounts, secret)
        if principal is None:
            raise unauthorized("this API token is unknown or revoked, or its user is disabled")
        return principal
    cookie = request.cookies.get(session_cookie_name(request))
    if not cookie:
        raise unauthorized()
    found = await session_principal(auth_state(request).accounts, session_hash(cookie))
    if found is None:
        raise unauthorized("your session has ended (logged out, expired after 12 h, or the user was disabled)")
    principal, session = found
    if csrf.needs_token(request.method) and not csrf.token_matches(
        request.headers.get(csrf.HEADER), session.csrf_token
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"a change made with a session cookie needs the session's CSRF token in the {csrf.HEADER} header "
            "(the login answer and GET /v1/auth/me give it)",
        )
    request.state.session = session
    return principal


@dataclass(frozen=True)
class Requirement:
    """The dependency `require(role)` makes: 401 without a proof of identity, 403 to a role below `needed`. A class
    (not a closure) so the role a route needs can be read back from the app (`least_role`): the role matrix test
    and the docs' table of routes are derived from the routes themselves."""

    needed: Role

    async def __call__(self, principal: Principal = Depends(current_principal)) -> Principal:  # noqa: B008
        if not principal.may(self.needed):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs the {self.needed.label} role; {principal.username} is a {principal.role.label}",
            )
        return principal


def require(needed: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that answers 401 without a proof of identity and 403 to a role below `needed`."""
    return Requirement(needed)


def least_role(dependant: Any) -> Role | None:
    """The least role a route's dependencies require (FastAPI's `Dependant` tree), None for a public route."""
    found = [dependant.call.needed] if isinstance(dependant.call, Requirement) else []
    found += [role for sub in dependant.dependencies if (role := least_role(sub)) is not None]
    return max(found, default=None)


def routes_and_roles(app: Any) -> list[tuple[str, str, Role | None]]:
    """(method, path, least role or None for public) of every HTTP route of the app, documented or not."""
    from fastapi.routing import iter_route_contexts

    rows = []
    # FastAPI 0.16x keeps included routers whole in app.routes: walk their contexts for the routes inside.
    for route in iter_route_contexts(app.routes):
        if route.path is None or route.methods is None:
            continue  # a mount or a websocket (none yet: a websocket route needs its own check of identity)
        dependant = getattr(route, "dependant", None)
        role = least_role(dependant) if dependant is not None else None
        rows += [(method, route.path, role) for method in sorted(route.methods)]
    return rows
