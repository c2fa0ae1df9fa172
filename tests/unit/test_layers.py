"""The layers, enforced: import-linter's contracts (pyproject.toml's [tool.importlinter], README.md's "Layers") are
kept by the code, and they do catch an upward import: copies of the sources with imports that break each rule
make the same check fail, naming the import."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (importer, imported, inside a function?): each breaks a rule; the check must name every one.
UPWARD_IMPORTS = [
    ("fleetsense.wire", "fleetsense.cloud.store", False),
    ("fleetsense.new_floor_module", "fleetsense.edge.agent", False),  # a floor module nobody listed is covered
    ("fleetsense.edge.i2c", "fleetsense.sim.bus", True),  # the edge <-> firmware-sim cycle hid in a function
    ("fleetsense.edge.agent", "fleetsense.gateway.provision", False),
    ("fleetsense.cloud.store", "fleetsense.edge.outbox", False),
    ("fleetsense.sim.pool", "fleetsense.edge.agent", False),  # the simulator stands on edge's sensors only
    ("fleetsense.sim.bus", "fleetsense.gateway.provision", False),
    ("fleetsense.gateway.provision", "fleetsense.cli", False),
    ("fleetsense.status", "fleetsense.load.runner", False),
    ("fleetsense.edge.link", "pyflink", False),
]


@pytest.fixture(scope="module")
def lint_imports() -> Iterator[ModuleType]:
    """scripts/lint_imports.py, the check CI and developers run."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        yield importlib.import_module("lint_imports")
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def test_the_code_keeps_every_layer_contract(lint_imports: ModuleType, tmp_path: Path) -> None:
    done: subprocess.CompletedProcess[str] = lint_imports.lint(lint_imports.build_tree(tmp_path / "tree"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout and "kept" in done.stdout


def test_an_upward_import_breaks_a_contract_and_the_check_names_it(lint_imports: ModuleType, tmp_path: Path) -> None:
    tree = lint_imports.build_tree(tmp_path / "tree", copy=True)  # copies: the checkout stays as it is
    for importer, imported, in_function in UPWARD_IMPORTS:
        path = tree.joinpath(*importer.split(".")).with_suffix(".py")
        code = f"def _upward() -> None:\n    import {imported}\n" if in_function else f"import {imported}\n"
        path.write_text((path.read_text() if path.exists() else "") + "\n" + code)
    done: subprocess.CompletedProcess[str] = lint_imports.lint(tree)
    assert done.returncode != 0
    missed = [f"{a} -> {b}" for a, b, _ in UPWARD_IMPORTS if f"{a} -> {b}" not in done.stdout]
    assert not missed, f"not reported: {missed}\n{done.stdout}{done.stderr}"


def test_every_subpackage_of_fleetsense_has_its_place_in_the_contracts() -> None:
    """A new package is a tier, the simulator or the roof, and says so in the contracts; only modules directly in
    fleetsense/ are the floor by default."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {name for name in pyproject["tool"]["setuptools"]["packages"] if name.count(".") == 1}
    named = {
        module
        for contract in pyproject["tool"]["importlinter"]["contracts"]
        for key in ("protected_modules", "allowed_importers", "modules", "source_modules", "forbidden_modules")
        for module in contract.get(key, [])
    }
    assert packages <= named, f"not placed in any contract: {sorted(packages - named)}"
