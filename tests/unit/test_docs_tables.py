"""The docs' tables of event kinds, vehicle classes, score weights, job settings and device configuration are
generated from the declarations (scripts/docs_tables.py): a doc that disagrees with the code fails here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _docs_tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "scripts" / "docs_tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_tables"] = module
    spec.loader.exec_module(module)
    return module


def test_every_generated_table_in_the_docs_matches_its_declaration() -> None:
    assert _docs_tables().stale() == [], "run: python scripts/docs_tables.py"


def test_a_changed_declaration_makes_its_table_stale() -> None:
    tables = _docs_tables()
    text = (ROOT / "docs" / "analytics.md").read_text(encoding="utf-8")
    rendered = tables.render(text, "score-weights", "| kind | weight |\n|---|---|\n| `harsh_swerve` | 2 |\n", "x")
    assert rendered != text and "`harsh_swerve` | 2" in rendered
    assert tables.render(rendered, "score-weights", tables.score_weights(), "x") == text
