"""Run mypy (strict) over the import package `fleetsense` as installed: its subpackages live in the
data-flow folders (edge/, gateway/, cloud/, firmware-sim/), which mypy cannot map by itself, so we lay out a
tree of symlinks under build/ that mirrors the import names."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPING = {"edge": "edge", "gateway": "gateway", "cloud": "cloud", "sim": "firmware-sim"}


def build_tree() -> Path:
    tree = ROOT / "build" / "typecheck"
    shutil.rmtree(tree, ignore_errors=True)
    package = tree / "fleetsense"
    package.mkdir(parents=True)
    for entry in (ROOT / "fleetsense").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in MAPPING.items():
        (package / name).symlink_to(ROOT / folder)
    return tree


def main() -> int:
    tree = build_tree()
    return subprocess.call(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "fleetsense"], cwd=tree
    )


if __name__ == "__main__":
    sys.exit(main())
