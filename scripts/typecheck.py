"""Run mypy (strict) over the import package `fleetsense` as installed: its subpackages live in the
data-flow folders (edge/, gateway/, cloud/, firmware-sim/), which mypy cannot map by itself, so we lay out a
tree of symlinks under build/ that mirrors the import names."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_folders() -> dict[str, str]:
    """fleetsense's subpackages that live in their own folder, e.g. {"edge": "edge", "sim": "firmware-sim"},
    read from pyproject.toml's package-dir."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {name.removeprefix("fleetsense."): folder for name, folder in package_dir.items() if name != "fleetsense"}


def build_tree(tree: Path = ROOT / "build" / "typecheck", *, copy: bool = False) -> Path:
    """`tree`/fleetsense laid out as installed: symlinks to the sources, or copies of them with `copy` (for a
    test that edits a file without touching the checkout)."""
    shutil.rmtree(tree, ignore_errors=True)
    package = tree / "fleetsense"
    package.mkdir(parents=True)
    sources = [(entry.name, entry) for entry in (ROOT / "fleetsense").iterdir() if entry.name != "__pycache__"]
    sources += [(name, ROOT / folder) for name, folder in package_folders().items()]
    for name, source in sources:
        if not copy:
            (package / name).symlink_to(source)
        elif source.is_dir():
            shutil.copytree(source, package / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, package / name)
    return tree


def main() -> int:
    tree = build_tree()
    return subprocess.call(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "fleetsense"], cwd=tree
    )


if __name__ == "__main__":
    sys.exit(main())
