"""Who is asking: the dependency every route but health declares, `Depends(require(Role.X))`.

Requests prove who they are with an API token (`Authorization: Bearer <token>`) or a browser session cookie (with
its CSRF token in a header on every change). Contract stub: `current_principal` is where the proof is checked;
tests of other routes override it (`app.dependency_overrides[current_principal]`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request, status
from fleetsense.service.roles import Principal, Role


async def current_principal(request: Request) -> Principal:
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in, or send an API token as Authorization: Bearer")


def require(needed: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that answers 401 without a proof of identity and 403 to a role below `needed`."""

    async def allowed(principal: Principal = Depends(current_principal)) -> Principal:  # noqa: B008
        if not principal.may(needed):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs the {needed.label} role; {principal.username} is a {principal.role.label}",
            )
        return principal

    return allowed
