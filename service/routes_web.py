"""The dashboard's shell and assets (docs/plan-18.md), served outside /v1 and without a login: they hold no data.
Every number the page shows comes from /v1 with the session cookie (Path=/v1, so these routes never even see it)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import RedirectResponse, Response
from fleetsense.service.web_assets import SHELL, STATIC_DIR, content_type, served_files

APP_PREFIX = "/app"
# The browser may load and connect to this origin only: a CDN URL slipped into a page is refused by the browser
# itself, not only by the unit test that looks for one. uPlot sets its styles through the CSSOM (element.style),
# which style-src does not govern, so no 'unsafe-inline' is needed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# The shell is re-checked on every load (so a new release shows at once); the modules it imports are small and
# revalidated too: a version in their names (and long caching) can come with a build step, if one is ever needed.
REVALIDATE = "no-cache"


def web_router(static_dir: Path = STATIC_DIR) -> APIRouter:
    """The routes, over the files of `static_dir` as they are when the app is built (a test passes its own folder);
    a file changed or vendored later is served after a restart."""
    files = {name: path.read_bytes() for name, path in served_files(static_dir).items()}  # read once: no disk I/O
    router = APIRouter(include_in_schema=False)  # the OpenAPI document describes the API, not the page

    @router.get("/")
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{APP_PREFIX}/", status_code=status.HTTP_307_TEMPORARY_REDIRECT)

    @router.get(f"{APP_PREFIX}/")
    async def shell() -> Response:
        return _file(files, SHELL)

    @router.get(APP_PREFIX + "/{asset:path}")
    async def asset(asset: str) -> Response:
        return _file(files, asset)

    return router


def _file(files: dict[str, bytes], name: str) -> Response:
    body = files.get(name)
    if body is None:
        hint = "run `fleetsense stack prepare` (it copies the npm packages there)" if name.startswith("vendor/") else ""
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dashboard file {name!r}" + (f"; {hint}" if hint else ""))
    headers = {**SECURITY_HEADERS, "Cache-Control": REVALIDATE}
    return Response(body, media_type=content_type(name), headers=headers)
