"""The dashboard's shell and assets as the API serves them (service/routes_web.py): the right content types and
security headers, only the files of the static folder, every module the shell imports present, and no reference to
another origin (no CDN): the browser runs what the repository holds, and nothing else."""

from __future__ import annotations

import asyncio
import posixpath
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fleetsense.service.app import create_app
from fleetsense.service.routes_web import CONTENT_SECURITY_POLICY, web_router
from fleetsense.service.web_assets import STATIC_DIR, VENDORED, content_type, missing_vendored, served_files, vendor

from fleetsense.errors import ConfigError

URL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)
# A relative module specifier, static or dynamic (`from "./x.js"`, `import("./x.js")`, `import "./x.js"`), or a
# file a module finds next to itself (`new URL("../vendor/x.css", import.meta.url)`).
IMPORT = re.compile(r"""(?:from|import|new URL)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""")
SHELL_REF = re.compile(r"""(?:src|href)="([^"#:]+)\"""")


def get(app: FastAPI, *paths: str) -> list[httpx.Response]:
    async def fetch() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
            return [await browser.get(path) for path in paths]

    return asyncio.run(fetch())


def own_files() -> dict[str, Path]:
    return {name: path for name, path in served_files().items() if not name.startswith("vendor/")}


def test_the_root_leads_to_the_shell_which_is_html_under_a_strict_content_security_policy() -> None:
    root, shell = get(create_app(context=None), "/", "/app/")
    assert root.status_code == 307 and root.headers["location"] == "/app/"
    assert shell.status_code == 200
    assert shell.headers["content-type"] == "text/html; charset=utf-8"
    assert shell.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    assert shell.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="js/app.js">' in shell.text
    assert '<html lang="en">' in shell.text  # a screen reader's language


def test_every_served_file_has_its_suffixs_content_type() -> None:
    files = served_files()
    assert {"index.html", "style.css", "js/app.js", "js/api.js"} <= files.keys()
    answers = get(create_app(context=None), *(f"/app/{name}" for name in files))
    for name, answer in zip(files, answers, strict=True):
        assert answer.status_code == 200, name
        assert answer.headers["content-type"] == content_type(name), name
        assert answer.content == files[name].read_bytes()
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert content_type("js/app.js") == "text/javascript; charset=utf-8"  # what an ES module must be served as
    assert content_type("style.css") == "text/css; charset=utf-8"


def test_every_module_and_file_the_shell_needs_is_served() -> None:
    files = served_files()
    shell = (STATIC_DIR / "index.html").read_text()
    wanted = set(SHELL_REF.findall(shell))
    for name, path in own_files().items():
        if name.endswith(".js"):
            base = posixpath.dirname(name)
            wanted |= {posixpath.normpath(posixpath.join(base, spec)) for spec in IMPORT.findall(path.read_text())}
    wanted = {w for w in wanted if not w.startswith("/")}  # "/docs" (the API's, in <noscript>) aside
    assert wanted - files.keys() == {"vendor/" + f.served for f in VENDORED if f.served in missing_vendored()}
    assert {"js/app.js", "js/fleet.js", "vendor/uPlot.esm.js", "vendor/uPlot.min.css"} <= wanted


def test_none_of_our_files_names_another_origin() -> None:
    for name, path in own_files().items():
        found = URL.findall(path.read_text())
        assert not found, f"{name} refers to {found}: serve the file from the package instead (docs/plan-18.md)"


def test_the_vendored_packages_name_other_origins_only_in_comments() -> None:
    """uPlot's source credits its sources in comments; a URL outside a comment could be fetched."""
    if missing_vendored():
        pytest.skip("the npm packages are not vendored yet: run `fleetsense stack prepare`")
    for item in VENDORED:
        if not item.served.endswith((".js", ".css")):
            continue
        for number, line in enumerate((STATIC_DIR / "vendor" / item.served).read_text().splitlines(), 1):
            for match in URL.finditer(line):
                before = line[: match.start()]
                in_comment = "//" in before or before.lstrip().startswith(("*", "/*"))
                assert in_comment, f"vendor/{item.served}:{number} refers to {match.group()} outside a comment"


def test_only_files_of_the_folder_with_a_known_suffix_are_served(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    (tmp_path / "js" / "app.js").write_text("export {};")
    (tmp_path / "js" / "app.js.map").write_text("{}")
    (tmp_path / "notes.py").write_text("secret = 1")
    app = FastAPI()
    app.include_router(web_router(tmp_path))
    answers = get(
        app,
        "/app/js/app.js",
        "/app/js/app.js.map",
        "/app/notes.py",
        "/app/../pyproject.toml",
        "/app/%2e%2e/web_assets.py",
        "/app/js/%2e%2e/%2e%2e/routes_web.py",
        "/app/vendor/uPlot.esm.js",
    )
    assert [a.status_code for a in answers] == [200, 404, 404, 404, 404, 404, 404]
    assert "fleetsense stack prepare" in answers[-1].json()["detail"]  # a missing vendored file says what to do


FAKE_NPM = """#!/bin/sh
# npm ci, as far as vendor() can tell: the locked packages under node_modules, and a line per call.
echo "$@" >> calls.log
mkdir -p node_modules/uplot/dist
echo "export default function uPlot() {}" > node_modules/uplot/dist/uPlot.esm.js
echo ".uplot {}" > node_modules/uplot/dist/uPlot.min.css
echo "MIT" > node_modules/uplot/LICENSE
"""


def test_vendoring_runs_npm_ci_once_per_lock_and_copies_only_what_the_page_loads(tmp_path: Path) -> None:
    web = tmp_path / "web"
    (web / "static").mkdir(parents=True)
    (web / "package-lock.json").write_text('{"lockfileVersion": 3}')
    npm = tmp_path / "npm"
    npm.write_text(FAKE_NPM)
    npm.chmod(0o755)
    target = vendor(web, npm=str(npm))
    assert sorted(p.name for p in target.iterdir()) == [".package-lock.sha256", *sorted(f.served for f in VENDORED)]
    assert (web / "calls.log").read_text() == "ci --ignore-scripts --no-audit --no-fund\n"
    assert missing_vendored(web / "static") == []
    vendor(web, npm=str(npm))  # the same lock: nothing to do
    assert (web / "calls.log").read_text().count("ci") == 1
    (web / "package-lock.json").write_text('{"lockfileVersion": 3, "changed": true}')
    vendor(web, npm=str(npm))
    assert (web / "calls.log").read_text().count("ci") == 2


def test_vendoring_without_npm_says_how_to_get_it(tmp_path: Path) -> None:
    (tmp_path / "package-lock.json").write_text("{}")
    with pytest.raises(ConfigError, match="npm is not installed") as raised:
        vendor(tmp_path, npm=str(tmp_path / "no-such-npm"))
    assert raised.value.hint is not None and "apt-get install npm" in raised.value.hint


def test_the_pages_know_the_roles_the_api_knows_least_first() -> None:
    from fleetsense.service.roles import Role

    listed = re.findall(r'^  \["(\w+)", "', (STATIC_DIR / "js" / "roles.js").read_text(), flags=re.M)
    assert listed == [role.label for role in sorted(Role)]
