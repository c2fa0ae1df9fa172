"""Accounts over HTTP: log in and out, who am I, one's own password and tokens (/v1/auth/...), and the admin's
users and their tokens (/v1/users/...). docs/service.md, "Accounts, tokens and sessions"."""

from __future__ import annotations

import math
from collections.abc import Awaitable
from datetime import UTC, datetime
from json import JSONDecodeError
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from fleetsense.cloud.tables import SESSION_TTL
from fleetsense.service import users as u
from fleetsense.service.auth import AUTH_RESPONSES, AuthState, Problem, auth_state, require, session_cookie_name
from fleetsense.service.login_brake import address_key, username_key
from fleetsense.service.passwords import MAX_LENGTH, MIN_LENGTH, generated_password
from fleetsense.service.roles import Principal, Role
from fleetsense.service.sessions import cookie_attributes, new_session, session_hash
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from fleetsense.errors import ConfigError

router = APIRouter(
    responses={
        **AUTH_RESPONSES,
        400: {"model": Problem, "description": "a request that cannot be done as asked: the detail says why"},
        404: {"model": Problem, "description": "no such user or token"},
        409: {"model": Problem, "description": "a username taken, or an admin changing their own standing"},
        429: {"model": Problem, "description": "too many failed logins: wait (Retry-After)"},
    }
)
LOGIN_FAILED = "wrong username or password"  # the one answer to every failed login: it never says which was wrong
ROLE_LABELS: list[JsonValue] = [role.label for role in Role]
_ROLE_PATTERN = "^(" + "|".join(role.label for role in Role) + ")$"


def _role(default: Any = ...) -> Any:
    return Field(default, pattern=_ROLE_PATTERN, json_schema_extra={"enum": ROLE_LABELS})


T = TypeVar("T")
Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
USERNAME = f"^{u.USERNAME_PATTERN}$"
NOT_BLANK = r"\S"  # at least one character that is not a space
Username = Annotated[str, Path(pattern=USERNAME)]
TokenId = Annotated[str, Path(min_length=1, max_length=64)]


class Body(BaseModel):
    """A request's body: strictly what the schema says (no 0 for false, no unknown fields)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Login(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


class LoggedIn(BaseModel):
    username: str
    role: str
    via: str
    csrf_token: str | None = Field(None, description="send it as X-CSRF-Token on every change (session only)")
    session_expires_in_s: int | None = None


class UserOut(BaseModel):
    username: str
    role: str
    created_at: datetime
    disabled: bool
    disabled_at: datetime | None


class NewUser(Body):
    username: str = Field(pattern=USERNAME)
    role: str = _role()
    password: str | None = Field(
        None,
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        pattern=NOT_BLANK,
        description="left out: one is generated and answered once",
    )


class CreatedUser(UserOut):
    password: str | None = Field(None, description="the generated password, shown this once")


class UserChange(Body):
    role: str | None = _role(None)
    disabled: bool | None = None


class PasswordChange(Body):
    current_password: str = Field(min_length=1, max_length=MAX_LENGTH)
    new_password: str = Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH, pattern=NOT_BLANK)


class NewToken(Body):
    name: str = Field(max_length=u.TOKEN_NAME_MAX, pattern=NOT_BLANK, description="what the token is for")


class TokenOut(BaseModel):
    token_id: str
    username: str
    name: str
    created_at: datetime
    revoked: bool
    revoked_at: datetime | None


class CreatedToken(TokenOut):
    token: str = Field(description="the secret: send it as Authorization: Bearer <token>; shown this once")


def _utc(moment: datetime) -> datetime:
    """Cassandra's timestamps come back naive (UTC): answered with their zone, as RFC 3339 date-times must be."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def _user_out(user: u.User) -> dict[str, Any]:
    return {
        "username": user.username,
        "role": user.role.label,
        "created_at": _utc(user.created_at),
        "disabled": not user.active,
        "disabled_at": _utc_or_none(user.disabled_at),
    }


def _token_out(token: u.ApiToken) -> TokenOut:
    return TokenOut(
        token_id=token.token_id,
        username=token.username,
        name=token.name,
        created_at=_utc(token.created_at),
        revoked=token.revoked_at is not None,
        revoked_at=_utc_or_none(token.revoked_at),
    )


async def _answer(work: Awaitable[T]) -> T:
    """An account operation, its refusal made a 4xx that says what is wrong and what to do."""
    try:
        return await work
    except u.AccountError as exc:
        raise HTTPException(exc.status, _say(exc)) from exc
    except ConfigError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, _say(exc)) from exc


def _say(exc: ConfigError) -> str:
    return f"{exc.message}; {exc.hint}" if exc.hint else exc.message


async def _login_fields(request: Request) -> Login:
    """The login's fields from a JSON body or a form (a browser's plain <form>)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            data: Any = {key: form.get(key) for key in ("username", "password")}
        else:
            data = await request.json()
        return Login.model_validate(data)
    except (ValidationError, JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            'a login is {"username": ..., "password": ...} as JSON, or the same two fields as a form',
        ) from exc


_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": Login.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": Login.model_json_schema()},
        },
    }
}


@router.post(
    "/auth/login",
    tags=["auth"],
    response_model=LoggedIn,
    openapi_extra=_LOGIN_BODY,
    responses={401: {"model": Problem, "description": LOGIN_FAILED}},
)
async def login(request: Request, response: Response) -> LoggedIn:
    """Log in with a username and password: sets the session cookie (HttpOnly, SameSite=Strict; Secure under TLS)
    and answers the session's CSRF token. Every failure answers the same 401."""
    fields = await _login_fields(request)
    state = auth_state(request)
    keys = [username_key(fields.username), address_key(request.client.host if request.client else None)]
    hold_s = state.brake.hold_s(keys)
    if hold_s > 0:
        wait = math.ceil(hold_s)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    user = await u.check_password(state.accounts, state.passwords, fields.username, fields.password)
    if user is None:
        state.brake.failed(keys)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, LOGIN_FAILED)
    state.brake.succeeded(fields.username)
    return await _start_session(request, response, state, user)


async def _start_session(request: Request, response: Response, state: AuthState, user: u.User) -> LoggedIn:
    """A new session for `user`: its cookie set on `response`, the one the request came with ended (a login never
    keeps an old session: no fixation)."""
    cookie_name = session_cookie_name(request)
    if old := request.cookies.get(cookie_name):
        await state.accounts.end_session(session_hash(old))
    made = new_session()
    await state.accounts.put_session(
        u.Session(
            session_hash=made.session_hash,
            username=user.username,
            csrf_token=made.csrf_token,
            created_at=user.session_start(),
        )
    )
    secure = state.settings.secure_cookies or state.settings.tls
    response.set_cookie(cookie_name, made.cookie, **cookie_attributes(secure=secure))  # type: ignore[arg-type]
    return LoggedIn(
        username=user.username,
        role=user.role.label,
        via="session",
        csrf_token=made.csrf_token,
        session_expires_in_s=SESSION_TTL.seconds,
    )


@router.post("/auth/logout", tags=["auth"], status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, principal: Viewer) -> Response:
    """End this session (its cookie stops working at once). With a token, nothing to end: revoke the token."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    cookie_name = session_cookie_name(request)
    if principal.via == "session" and (cookie := request.cookies.get(cookie_name)):
        await auth_state(request).accounts.end_session(session_hash(cookie))
        response.delete_cookie(cookie_name, path="/v1")
    return response


@router.get("/auth/me", tags=["auth"], response_model=LoggedIn)
async def me(request: Request, principal: Viewer) -> LoggedIn:
    """Who this request is; with a session, its CSRF token again (a reloaded page gets it here)."""
    session = getattr(request.state, "session", None)
    return LoggedIn(
        username=principal.username,
        role=principal.role.label,
        via=principal.via,
        csrf_token=session.csrf_token if session is not None else None,
    )


@router.post("/auth/password", tags=["auth"], response_model=LoggedIn)
async def change_own_password(
    request: Request, response: Response, change: PasswordChange, principal: Viewer
) -> LoggedIn:
    """Change one's own password: the current one is checked (and braked) as a login is. Every session begun before
    is over; a change made with a session gets a new one (its cookie and CSRF token in this answer)."""
    state = auth_state(request)
    keys = [username_key(principal.username)]
    if state.brake.hold_s(keys) > 0:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many wrong passwords; try again later")
    if await u.check_password(state.accounts, state.passwords, principal.username, change.current_password) is None:
        state.brake.failed(keys)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the current password is wrong")
    user = await _answer(u.set_password(state.accounts, state.passwords, principal.username, change.new_password))
    if principal.via == "session":
        return await _start_session(request, response, state, user)
    return LoggedIn(username=user.username, role=user.role.label, via=principal.via, csrf_token=None)


@router.get("/auth/tokens", tags=["auth"], response_model=list[TokenOut])
async def own_tokens(request: Request, principal: Viewer) -> list[TokenOut]:
    """One's own API tokens (never their secrets)."""
    tokens = await auth_state(request).accounts.tokens(principal.username)
    return [_token_out(t) for t in sorted(tokens, key=lambda t: t.created_at)]


@router.post("/auth/tokens", tags=["auth"], response_model=CreatedToken, status_code=status.HTTP_201_CREATED)
async def create_own_token(request: Request, body: NewToken, principal: Viewer) -> CreatedToken:
    """A new API token for oneself, with one's own role; its secret is in this answer only."""
    return await _create_token(auth_state(request), principal.username, body.name)


@router.delete("/auth/tokens/{token_id}", tags=["auth"], response_model=TokenOut)
async def revoke_own_token(request: Request, token_id: TokenId, principal: Viewer) -> TokenOut:
    """Revoke one of one's own tokens: it stops working at once."""
    return _token_out(await _answer(u.revoke_token(auth_state(request).accounts, principal.username, token_id)))


async def _create_token(state: AuthState, username: str, name: str) -> CreatedToken:
    secret, token = await _answer(u.create_token(state.accounts, username, name))
    return CreatedToken(**_token_out(token).model_dump(), token=secret)


# --- the admin's: users and anyone's tokens -------------------------------------------------------------------


@router.get("/users", tags=["users"], response_model=list[UserOut])
async def list_users(request: Request, _admin: Admin) -> list[UserOut]:
    return [UserOut(**_user_out(user)) for user in await auth_state(request).accounts.users()]


@router.post("/users", tags=["users"], response_model=CreatedUser, status_code=status.HTTP_201_CREATED)
async def add_user(request: Request, body: NewUser, _admin: Admin) -> CreatedUser:
    """A new operator account; without a password in the request, a generated one is answered (once)."""
    state = auth_state(request)
    password = body.password or generated_password()
    user = await _answer(u.add_user(state.accounts, state.passwords, body.username, Role.parse(body.role), password))
    return CreatedUser(**_user_out(user), password=None if body.password else password)


@router.patch("/users/{username}", tags=["users"], response_model=UserOut)
async def change_user(request: Request, username: Username, body: UserChange, admin: Admin) -> UserOut:
    """Change a user's role, or disable (or enable) them: their tokens and sessions follow at once."""
    role = Role.parse(body.role) if body.role is not None else None
    if username == admin.username and (body.disabled or (role is not None and role < Role.ADMIN)):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "an admin cannot disable or demote themselves (the fleet could be left without one); ask another admin",
        )
    user = await _answer(u.update_user(auth_state(request).accounts, username, role=role, disabled=body.disabled))
    return UserOut(**_user_out(user))


@router.get("/users/{username}/tokens", tags=["users"], response_model=list[TokenOut])
async def user_tokens(request: Request, username: Username, _admin: Admin) -> list[TokenOut]:
    state = auth_state(request)
    await _answer(u.existing_user(state.accounts, username))
    return [_token_out(t) for t in sorted(await state.accounts.tokens(username), key=lambda t: t.created_at)]


@router.post(
    "/users/{username}/tokens", tags=["users"], response_model=CreatedToken, status_code=status.HTTP_201_CREATED
)
async def create_user_token(request: Request, username: Username, body: NewToken, _admin: Admin) -> CreatedToken:
    """A token for another user (a service account's, say), with that user's role."""
    return await _create_token(auth_state(request), username, body.name)


@router.delete("/users/{username}/tokens/{token_id}", tags=["users"], response_model=TokenOut)
async def revoke_user_token(request: Request, username: Username, token_id: TokenId, _admin: Admin) -> TokenOut:
    return _token_out(await _answer(u.revoke_token(auth_state(request).accounts, username, token_id)))
