"""ruff and mypy (strict) over the whole tree, so CI fails on a lint or type error like on a failing test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_is_clean() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_is_clean() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "typecheck.py")], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_edge_never_imports_cloud_or_flink() -> None:
    """The data flows edge -> gateway -> cloud; the Pi's code must not depend on anything downstream."""
    offenders = []
    for path in (ROOT / "edge").rglob("*.py"):
        text = path.read_text()
        for banned in ("fleetsense.cloud", "fleetsense.gateway", "pyflink", "cassandra"):
            if f"import {banned}" in text or f"from {banned}" in text:
                offenders.append(f"{path.relative_to(ROOT)}: {banned}")
    assert not offenders
