"""The per-tier extras: a Raspberry Pi installing `.[edge]` never pulls apache-flink or cassandra-driver."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLOUD_ONLY = {"apache-flink", "apache-flink-libraries", "cassandra-driver", "pemja"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def transitive(names: set[str]) -> set[str]:
    """The closure of dependencies, read from the installed distributions' metadata (markers ignored)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return seen


def test_edge_extra_pulls_nothing_from_the_cloud() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    edge = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["edge"]}
    closure = transitive(edge)
    assert "paho-mqtt" in closure
    assert not closure & CLOUD_ONLY, closure & CLOUD_ONLY


def test_edge_commands_run_without_flink_or_cassandra_importable(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "for banned in ('pyflink', 'cassandra', 'numpy', 'pika'):\n"
        "    sys.modules[banned] = None  # any import of these now fails\n"
        "from fleetsense import cli\n"
        f"sys.exit(cli.main(['edge', 'run', '--config', {str(tmp_path / 'absent.toml')!r}, '--simulate']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    # It gets as far as reading the config (absent), which proves the import chain is edge-only.
    assert done.returncode == 2, done.stderr
    assert "config file" in done.stderr and "not installed" not in done.stderr


def test_every_folder_with_an_init_is_a_listed_package() -> None:
    """Editable installs find any folder; a wheel only has the packages pyproject lists."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    roots = {folder: name for name, folder in tool["package-dir"].items()}
    found = set()
    for folder, name in roots.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([name, *relative]))
    assert found == listed, {"missing from pyproject": found - listed, "listed without a folder": listed - found}
