"""Check the layer contracts (pyproject.toml's [tool.importlinter], explained in README.md's "Layers") with
import-linter over the import package as installed.

grimp, import-linter's graph builder, finds a package's modules by walking its folder, and fleetsense's
subpackages live in the data-flow folders (edge/ is fleetsense.edge): so the check runs on the tree that mirrors
the import names, the same one scripts/typecheck.py lays out, in a child process whose `fleetsense` is that tree.

    python scripts/lint_imports.py [lint-imports options, e.g. --verbose or --contract ID]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typecheck import ROOT, build_tree

_LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint(tree: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """lint-imports over the mirrored package in `tree`; returncode 0 when every contract is kept."""
    env = {**os.environ, "PYTHONPATH": str(tree), "NO_COLOR": "1"}
    config = str(ROOT / "pyproject.toml")
    return subprocess.run(
        [sys.executable, "-c", _LINT, config, "--no-cache", "--no-logo", *options],
        cwd=tree, env=env, capture_output=True, text=True,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    done = lint(build_tree(ROOT / "build" / "importlinter"), *argv)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
