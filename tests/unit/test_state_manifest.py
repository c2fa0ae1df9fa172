"""The state manifest: every Piece of the code is in the registry (found in the sources, not listed by hand), the
manifest says what each piece's unpacking really reads, the job's record round-trips through its file and refuses
what is not one, and the analytics fingerprint compares settings by what they mean."""

from __future__ import annotations

import ast
import copy
import dataclasses
import hashlib
import json
import random
import re
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from fleetsense.cloud.analytics import state_manifest, state_versions
from fleetsense.cloud.analytics.events import VEHICLE_CLASSES, thresholds_for
from fleetsense.cloud.analytics.state_manifest import (
    ANALYTICS_VERSION,
    RESULT_SETTINGS,
    Current,
    canonical,
    fingerprint,
    manifest,
    parse_record,
    record_json,
    registry,
)
from fleetsense.cloud.analytics.state_versions import Piece, StateVersionError
from fleetsense.cloud.analytics.vehicle_analyzer import AnalyzerConfig
from fleetsense.cloud.stream_settings import StreamSettings

from fleetsense.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
VERSIONS_MODULE = "fleetsense.cloud.analytics.state_versions"

# A digest of the analysis's built-in settings per ANALYTICS_VERSION (see _built_in_digest). When it changes, the
# same input and settings give other results: bump ANALYTICS_VERSION and pin the new digest here under it.
BUILT_IN_DIGESTS = {1: "ddd9a150a3eda467"}


def _source_files() -> list[Path]:
    """The first-party source files: the folders pyproject.toml installs as fleetsense's packages."""
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return sorted(path for folder in set(package_dirs.values()) for path in (ROOT / folder).rglob("*.py"))


def _pieces_declared_in(tree: ast.Module, path: Path) -> list[str]:
    """The name of each `Piece(...)` call in a module that imports Piece from state_versions."""
    imports_piece = any(
        isinstance(node, ast.ImportFrom)
        and node.module == VERSIONS_MODULE
        and any(alias.name == "Piece" for alias in node.names)
        for node in ast.walk(tree)
    )
    if not imports_piece:
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Piece":
            first = node.args[0] if node.args else None
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                f"{path}:{node.lineno}: a Piece's name must be a literal (the manifest's key, found by this test)"
            )
            names.append(first.value)
    return names


def test_every_piece_declared_in_the_sources_is_in_the_registry_and_nothing_else() -> None:
    declared = [
        name
        for path in _source_files()
        if path.name != "state_versions.py"
        for name in _pieces_declared_in(ast.parse(path.read_text()), path)
    ]
    assert len(declared) == len(set(declared)), f"two Piece declarations share a name: {sorted(declared)}"
    assert len(declared) >= 12  # the scan found the pieces (a broken scan would pass the next line vacuously)
    assert sorted(registry()) == sorted(declared)


def test_the_manifest_is_json_and_says_each_pieces_version_and_what_it_reads() -> None:
    current = manifest()
    assert json.loads(json.dumps(current)) == current
    for name, piece in registry().items():
        entry = current[name]
        assert entry["version"] == piece.version
        assert entry["reads"] == sorted(entry["reads"]) and piece.version in entry["reads"]
        assert set(entry["reads"]) <= {piece.version, *piece.migrations}
    assert current["vehicle"] == {"version": 3, "reads": [1, 2, 3]}
    assert current["vehicle analyzer"] == {"version": 3, "reads": [2, 3]}


def test_what_the_manifest_says_a_piece_cannot_read_its_unpacking_refuses() -> None:
    for name, piece in registry().items():
        reads = manifest()[name]["reads"]
        for version in range(1, piece.version + 3):
            if version not in reads:
                with pytest.raises(StateVersionError, match=re.escape(name)):
                    piece.migrate((version, None))
        # The current version, with its fields, is read as it is.
        fields = tuple(range(len(piece.layout._fields)))
        assert tuple(piece.migrate((piece.version, *fields))) == fields


def test_docs_list_every_piece_with_its_version() -> None:
    text = (ROOT / "docs" / "analytics.md").read_text()
    section = text[text.index("## State and upgrades") :]
    rows = re.findall(r"^\| ([a-z -]+) \| [^|]+ \| (\d+) \|", section, flags=re.MULTILINE)
    assert {name: int(version) for name, version in rows} == {n: p.version for n, p in registry().items()}


class _Layout(NamedTuple):
    value: int


def test_two_different_pieces_may_not_share_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_versions, "DECLARED", {})
    Piece("a piece", _Layout, version=1)
    Piece("a piece", _Layout, version=1)  # the same piece made again (a reload) replaces itself
    with pytest.raises(ValueError, match="two state pieces are named 'a piece'"):
        Piece("a piece", _Layout, version=2, migrations={1: lambda values: values})


def test_a_tests_own_piece_is_not_the_jobs_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_versions, "DECLARED", dict(state_versions.DECLARED))
    Piece("a test piece", _Layout, version=1)
    assert "a test piece" in state_versions.DECLARED and "a test piece" not in registry()


# -- the record's file -------------------------------------------------------------------------------------------


def test_a_record_round_trips_through_its_file() -> None:
    current = Current.of(StreamSettings(vehicle_class="truck", thresholds="van.harsh_brake_g=0.3"))
    for record in (
        state_manifest.fresh_record(current),
        state_manifest.lineage_record(None, current),
        state_manifest.legacy_record({"vehicle_class": "car"}, current),
        state_manifest.assumed_record(current, fingerprint=None),
    ):
        assert parse_record(record_json(record), source="r.json") == record


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{}",
        '{"format": 2, "state": {}, "fingerprint": null}',
        '{"format": 1, "state": {"trip": [0]}, "fingerprint": null}',
        '{"format": 1, "state": {"trip": ["1"]}, "fingerprint": null}',
        '{"format": 1, "state": {"trip": [true]}, "fingerprint": null}',
        '{"format": 1, "state": {"trip": 1}, "fingerprint": null}',
        '{"format": 1, "state": {}, "fingerprint": {"settings": {}}}',
        '{"format": 1, "state": {}, "fingerprint": {"analytics_version": 1, "settings": 3}}',
    ],
)
def test_what_is_no_record_is_a_config_error_naming_the_file(text: str) -> None:
    with pytest.raises(ConfigError, match=r"r\.json is not a job state record") as caught:
        parse_record(text, source="r.json")
    assert caught.value.hint and "remove it" in caught.value.hint


def test_fuzzed_records_parse_to_a_record_or_a_config_error() -> None:
    rng = random.Random(19_4)
    good = record_json(state_manifest.fresh_record(Current.of(StreamSettings())))
    atoms: list[Any] = [None, 0, 1, -1, 2**70, 1.5, "", "x", [], {}, [1, 2], {"a": 1}, True]
    cases, refused = 3000, 0
    for _ in range(cases):
        data = json.loads(good)
        for _ in range(rng.randint(1, 3)):
            target: Any = data
            path = []
            while isinstance(target, dict | list) and target and rng.random() < 0.7:
                key = rng.choice(list(target)) if isinstance(target, dict) else rng.randrange(len(target))
                path.append((target, key))
                target = target[key]
            if path:
                parent, key = path[-1]
                if isinstance(parent, dict) and rng.random() < 0.2:
                    del parent[key]
                else:
                    parent[key] = copy.deepcopy(rng.choice(atoms))
        text = json.dumps(data)
        if rng.random() < 0.1:
            text = text[: rng.randrange(len(text) + 1)]
        try:
            record = parse_record(text, source="fuzz.json")
        except ConfigError:
            refused += 1
            continue
        assert parse_record(record_json(record), source="again.json") == record
        assert all(isinstance(v, int) and v >= 1 for versions in record["state"].values() for v in versions)
    assert 0 < refused < cases  # both outcomes were exercised


# -- the fingerprint ---------------------------------------------------------------------------------------------


def test_the_fingerprint_holds_the_analytics_version_and_every_result_setting() -> None:
    value = fingerprint(StreamSettings())
    assert value == {"analytics_version": ANALYTICS_VERSION, "settings": {"vehicle_class": "van", "thresholds": None}}
    assert set(value["settings"]) == set(RESULT_SETTINGS)
    assert json.loads(json.dumps(value)) == value


def test_settings_are_read_by_name_and_a_missing_one_counts_as_not_set() -> None:
    class Older:  # a StreamSettings of before `thresholds`
        vehicle_class = "car"

    assert fingerprint(Older())["settings"] == {"vehicle_class": "car", "thresholds": None}


def test_thresholds_are_compared_by_the_values_they_change() -> None:
    same = [
        "van.harsh_brake_g=0.30,truck.harsh_corner_g=0.2",
        " truck.harsh_corner_g = 0.20 , van.harsh_brake_g=0.3",
        f"van.harsh_brake_g=0.3,truck.harsh_corner_g=0.2,car.bump_g={thresholds_for('car').bump_g}",  # the code's
    ]
    values = {json.dumps(fingerprint(StreamSettings(thresholds=t)), sort_keys=True) for t in same}
    assert len(values) == 1
    changed = fingerprint(StreamSettings(thresholds=same[0]))["settings"]["thresholds"]
    assert changed == {"truck": {"harsh_corner_g": 0.2}, "van": {"harsh_brake_g": 0.3}}
    # Only the code's values: no change at all, as ""
    code = f"van.harsh_brake_g={thresholds_for('van').harsh_brake_g}"
    assert fingerprint(StreamSettings(thresholds=code)) == fingerprint(StreamSettings())


def test_the_digest_names_a_fingerprint_whatever_its_key_order() -> None:
    value = fingerprint(StreamSettings(vehicle_class="truck"))
    reordered: Any = {"settings": dict(reversed(value["settings"].items())), "analytics_version": ANALYTICS_VERSION}
    assert state_manifest.fingerprint_digest(value) == state_manifest.fingerprint_digest(reordered)
    assert state_manifest.fingerprint_digest(value) != state_manifest.fingerprint_digest(fingerprint(StreamSettings()))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ((), None),
        ({}, None),
        (frozenset(), None),
        ("van", "van"),
        ((("b", 1), ("a", 2)), [["b", 1], ["a", 2]]),
        ({"b": (1,), "a": {}}, {"a": None, "b": [1]}),
        ({2, 1}, [1, 2]),
        (0, 0),
        (False, False),
    ],
)
def test_canonical_values(value: Any, expected: Any) -> None:
    assert canonical(value) == expected
    assert canonical(json.loads(json.dumps(canonical(value)))) == canonical(value)


def _built_in_digest() -> str:
    """What the analysis computes with when no setting says otherwise: each class's thresholds and configuration
    (an empty field, an override that is not set, does not count)."""

    def without_empty(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_empty(v) for k, v in value.items() if v is not None}
        return value

    built_in = {
        vehicle_class: {
            "thresholds": dataclasses.asdict(thresholds),
            "config": without_empty(canonical(AnalyzerConfig(vehicle_class=vehicle_class))),
        }
        for vehicle_class, thresholds in VEHICLE_CLASSES.items()
    }
    text = json.dumps(built_in, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_the_built_in_settings_change_only_with_a_new_analytics_version() -> None:
    assert BUILT_IN_DIGESTS.get(ANALYTICS_VERSION) == _built_in_digest(), (
        "the analysis's built-in thresholds or configuration changed: its results change, so bump "
        "state_manifest.ANALYTICS_VERSION and pin the new digest in BUILT_IN_DIGESTS under it"
    )
