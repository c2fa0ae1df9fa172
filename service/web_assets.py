"""The dashboard's files (docs/plan-18.md): our own ES modules and CSS in service/web/static, and the npm packages
the page runs (uPlot) copied from service/web/node_modules into service/web/static/vendor by `vendor()`, which
`fleetsense stack prepare` calls. The browser never fetches anything from another origin: no CDN, no bundler."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fleetsense.errors import ConfigError

WEB_DIR = Path(__file__).parent / "web"
STATIC_DIR = WEB_DIR / "static"
SHELL = "index.html"

# What a served file is, by its suffix: a file with any other suffix is never served (a stray editor backup, a
# source map), whatever lies in the folder.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",  # the vendored packages' licences
}


@dataclass(frozen=True)
class VendoredFile:
    """One file of an npm package that the page loads, and the name it is served under (vendor/<served>)."""

    package: str
    path_in_package: str
    served: str


# Only what the page loads: axe-core is a devDependency the browser tests inject themselves, never served.
VENDORED = (
    VendoredFile("uplot", "dist/uPlot.esm.js", "uPlot.esm.js"),
    VendoredFile("uplot", "dist/uPlot.min.css", "uPlot.min.css"),
    VendoredFile("uplot", "LICENSE", "uPlot.LICENSE.txt"),
)


def served_files(static_dir: Path = STATIC_DIR) -> dict[str, Path]:
    """Every file the dashboard may serve, by its path under /app/ ("index.html", "vendor/uPlot.esm.js"): read once
    when the app is built, so a request can only ever name a file of this map (no path is joined from a URL)."""
    if not static_dir.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(static_dir.rglob("*")):
        name = path.relative_to(static_dir).as_posix()
        if path.is_file() and path.suffix in CONTENT_TYPES:
            found[name] = path
    return found


def content_type(name: str) -> str:
    return CONTENT_TYPES[Path(name).suffix]


def missing_vendored(static_dir: Path = STATIC_DIR) -> list[str]:
    """The vendored files not in place yet (`fleetsense stack prepare` puts them there)."""
    return [f.served for f in VENDORED if not (static_dir / "vendor" / f.served).is_file()]


def vendor(web_dir: Path = WEB_DIR, *, npm: str = "npm") -> Path:
    """Install the locked npm packages (`npm ci`: exactly package-lock.json, no install scripts) and copy the files
    the page loads into static/vendor. Nothing to do when they were copied from this very lock; offline once npm's
    cache holds the packages."""
    target = web_dir / "static" / "vendor"
    lock_sha256 = hashlib.sha256((web_dir / "package-lock.json").read_bytes()).hexdigest()
    stamp = target / ".package-lock.sha256"  # what the vendored files were copied from
    if stamp.is_file() and stamp.read_text() == lock_sha256 and not missing_vendored(web_dir / "static"):
        return target
    if shutil.which(npm) is None:
        raise ConfigError(
            "npm is not installed: the dashboard's packages (uPlot) come from npm",
            hint="install it (Debian: apt-get install npm), or run bash scripts/dev.sh setup",
        )
    done = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=web_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ConfigError(
            f"npm ci failed in {web_dir}: {done.stderr.strip()[-500:]}",
            hint="check that the npm registry is reachable and that package-lock.json matches package.json",
        )
    target.mkdir(parents=True, exist_ok=True)
    for item in VENDORED:
        shutil.copyfile(web_dir / "node_modules" / item.package / item.path_in_package, target / item.served)
    stamp.write_text(lock_sha256)
    return target
