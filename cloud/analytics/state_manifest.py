"""The job's keyed state and results across code versions, for `fleetsense job upgrade` to decide before it stops
anything: the manifest of the state pieces this code reads (derived from the Piece declarations), the record of
what a job's lineage may hold (written beside its settings at each submit), the analytics fingerprint, and the
verdict. Pure: the caller reads and writes the record (fleetsense/stack/jobs.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal, TypedDict

from fleetsense.cloud.analytics import state_versions
from fleetsense.cloud.analytics.events import thresholds_for
from fleetsense.cloud.analytics.state_versions import Piece

from fleetsense.errors import ConfigError

# Bump ANALYTICS_VERSION whenever a code change makes the analysis compute other results from the same input and
# settings: detection logic, a vehicle class's built-in thresholds, score weights, trip or calibration rules. An
# upgrade across a bump is then refused (one result version would mix two logics) unless it is reprocessed or
# accepted with --same-version. tests/unit/test_state_manifest.py pins a digest of the built-in settings
# (AnalyzerConfig's defaults and the vehicle classes) to this number, as the reminder. docs/analytics.md says so too.
ANALYTICS_VERSION = 1
# The settings (StreamSettings fields) that change what the analysis computes. Read with getattr: a name the running
# code's StreamSettings lacks counts as not set. A setting's default must mean "as before" (None or empty: no
# override), so that a record made before the setting existed compares equal to a job that leaves it at default.
RESULT_SETTINGS = ("vehicle_class", "thresholds")
# Importing this module declares every piece of the job's keyed state: the vehicle's state and all it holds.
STATE_ROOT = "fleetsense.cloud.vehicle_stream"
RECORD_FORMAT = 1
# A job submitted before records were kept ran the logic that became version 1 (the logic did not change with it).
LEGACY_ANALYTICS_VERSION = 1
REPROCESS = "reprocess with `fleetsense job reprocess --since ...` then `fleetsense job promote VERSION`"
NOT_CARRIED = "an upgrade takes the settings given with --set, not the submitted ones: --set NAME=VALUE keeps one"


class PieceEntry(TypedDict):
    version: int  # the version this code writes
    reads: list[int]  # the versions it reads: this one and each one a chain of migrations leads from


Manifest = dict[str, PieceEntry]  # piece name -> its versions in this code


class Fingerprint(TypedDict):
    analytics_version: int
    settings: dict[str, Any]  # RESULT_SETTINGS' values as JSON; None: not set


class JobRecord(TypedDict):
    """What a job's lineage (its first fresh submit and every upgrade since) may hold, as recorded beside its
    settings. A vehicle's pickle is rewritten only when the vehicle is saved, so an upgraded job may still hold
    every version of every code it ran: `state` is their union."""

    format: int
    state: dict[str, list[int]]  # piece name -> the versions its pickles may be in
    fingerprint: Fingerprint | None  # None: not known
    assumed: str  # "" when recorded; otherwise why and what was assumed


def registry() -> dict[str, Piece[Any]]:
    """Every piece of the job's keyed state in this code, by name, as the Piece declarations made them (a test's
    own Piece, whose layout is not fleetsense's, is not the job's state)."""
    importlib.import_module(STATE_ROOT)
    return {
        name: piece
        for name, piece in sorted(state_versions.DECLARED.items())
        if piece.layout.__module__.startswith("fleetsense.")
    }


def manifest() -> Manifest:
    """The current code's manifest: JSON as it is."""
    return {
        name: {"version": piece.version, "reads": list(piece.readable_versions())} for name, piece in registry().items()
    }


def fingerprint(stream_settings: object, *, analytics_version: int = ANALYTICS_VERSION) -> Fingerprint:
    """What decides the results of a job with these stream settings (StreamSettings, or any object with the same
    attribute names), each setting by what it means (_MEANINGS) where its text can say one thing several ways."""
    settings = {name: canonical(_MEANINGS.get(name, _as_given)(stream_settings, name)) for name in RESULT_SETTINGS}
    return {"analytics_version": analytics_version, "settings": settings}


def _as_given(stream_settings: object, name: str) -> Any:
    return getattr(stream_settings, name, None)


def _threshold_changes(stream_settings: object, name: str) -> Any:
    """The `thresholds` setting as the thresholds it changes from the code's, {class: {threshold: value}}: its parts'
    order, spelling (0.30, 0.3) and parts that repeat the code's value do not change results. Settings without
    StreamSettings.class_thresholds (not expected) are compared as given."""
    class_thresholds = getattr(stream_settings, "class_thresholds", None)
    if not callable(class_thresholds):
        return _as_given(stream_settings, name)
    changes: dict[str, dict[str, Any]] = {}
    for vehicle_class, thresholds in class_thresholds():
        code = dataclasses.asdict(thresholds_for(vehicle_class))
        given = dataclasses.asdict(thresholds)
        changes[vehicle_class] = {field: value for field, value in given.items() if value != code[field]}
    return changes


_MEANINGS: dict[str, Callable[[object, str], Any]] = {"thresholds": _threshold_changes}


def fingerprint_digest(value: Fingerprint) -> str:
    """A short stable name of a fingerprint (for status lines and the result version's row)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Current:
    """What the code about to run would record: its manifest and the fingerprint of its settings."""

    manifest: Manifest
    fingerprint: Fingerprint

    @classmethod
    def of(cls, stream_settings: object) -> Current:
        return cls(manifest=manifest(), fingerprint=fingerprint(stream_settings))


def fresh_record(current: Current) -> JobRecord:
    """The record of a job started without a savepoint: only this code's versions."""
    state = {name: [entry["version"]] for name, entry in current.manifest.items()}
    return {"format": RECORD_FORMAT, "state": state, "fingerprint": current.fingerprint, "assumed": ""}


def lineage_record(previous: JobRecord | None, current: Current) -> JobRecord:
    """The record of a job started from a savepoint of a job recorded as `previous` (None: not recorded): the union
    of every version either may hold, and the new fingerprint (the results from now on follow it)."""
    before = previous if previous is not None else assumed_record(current, fingerprint=None)
    state = {name: set(versions) for name, versions in before["state"].items()}
    for name, entry in current.manifest.items():
        state.setdefault(name, set()).add(entry["version"])
    merged = {name: sorted(versions) for name, versions in sorted(state.items())}
    return {"format": RECORD_FORMAT, "state": merged, "fingerprint": current.fingerprint, "assumed": ""}


def assumed_record(current: Current, *, fingerprint: Fingerprint | None) -> JobRecord:
    """A job that recorded nothing (submitted by a release before records): its state is assumed to be in versions
    this code reads. Nothing better is known: assuming every version since 1 would refuse every such upgrade for
    versions that were already unreadable by the release that dropped their migrations (a job that still ran with
    them would have failed then), and assuming only the newest would hide the migrations. A vehicle that still
    holds an older version fails when it is loaded, as before records (the TaskManager log names it)."""
    state = {name: list(entry["reads"]) for name, entry in current.manifest.items()}
    why = (
        "the running job recorded no state manifest (submitted by a release before fleetsense recorded them): "
        "assuming its state is in versions this code reads"
    )
    return {"format": RECORD_FORMAT, "state": state, "fingerprint": fingerprint, "assumed": why}


def legacy_record(submitted_settings: Mapping[str, Any], current: Current) -> JobRecord:
    """The record of a job without one, from the settings file it was submitted with (flat names): the assumed
    state, and its results fingerprint with the analytics version of that time."""
    settings = SimpleNamespace(**{name: submitted_settings.get(name) for name in RESULT_SETTINGS})
    return assumed_record(current, fingerprint=fingerprint(settings, analytics_version=LEGACY_ANALYTICS_VERSION))


def record_json(record: JobRecord) -> str:
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def parse_record(text: str, *, source: str) -> JobRecord:
    """A record read back from its file; ConfigError naming `source` when it is not one."""
    try:
        data = json.loads(text)
        if _version(data.get("format")) != RECORD_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this code reads {RECORD_FORMAT}")
        state = {str(name): sorted({_version(v) for v in versions}) for name, versions in data["state"].items()}
        found = data["fingerprint"]
        fp: Fingerprint | None = None
        if found is not None:
            settings = found["settings"]
            if not isinstance(settings, dict):
                raise ValueError(f"settings {settings!r} are no mapping")
            fp = {"analytics_version": _version(found["analytics_version"]), "settings": settings}
        return {"format": RECORD_FORMAT, "state": state, "fingerprint": fp, "assumed": str(data.get("assumed", ""))}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(
            f"{source} is not a job state record: {exc}",
            hint="remove it to treat the running job as one submitted by an older release (its state is then "
            "assumed to be in versions this code reads, its results fingerprint taken from its settings file)",
        ) from exc


# -- the verdict -------------------------------------------------------------------------------------------------

Outcome = Literal["as is", "migrated", "new", "dropped", "refused"]


@dataclass(frozen=True)
class PieceVerdict:
    piece: str
    outcome: Outcome
    text: str


@dataclass(frozen=True)
class ResultsVerdict:
    changes: tuple[str, ...]  # what differs ("vehicle_class van -> truck"); empty when the same
    settings_changed: bool  # some of the changes are settings (not only the analytics version)
    known: bool  # False: the running job's fingerprint is not known
    refused: bool
    text: str


@dataclass(frozen=True)
class Verdict:
    pieces: tuple[PieceVerdict, ...]
    results: ResultsVerdict
    assumed: str  # "" when the running job's record was read; otherwise what was assumed

    @property
    def refused_pieces(self) -> tuple[PieceVerdict, ...]:
        return tuple(p for p in self.pieces if p.outcome == "refused")

    @property
    def refused(self) -> bool:
        return bool(self.refused_pieces) or self.results.refused

    def lines(self) -> list[str]:
        head = ["state of the running job -> this code:"]
        if self.assumed:
            head.append(f"  ({self.assumed})")
        width = max((len(p.piece) for p in self.pieces), default=0) + 1
        body = [f"  {p.piece + ':':<{width}} {p.text}" for p in self.pieces]
        return [*head, *body, f"results: {self.results.text}"]

    def error(self) -> ConfigError | None:
        """The refusal to raise before anything is stopped, or None when the upgrade may go ahead."""
        refused = self.refused_pieces
        if refused:
            names = ", ".join(p.piece for p in refused)
            also = "; it would also change results" if self.results.refused else ""
            return ConfigError(
                f"upgrade refused: this code cannot read the {names} state the running job may hold{also}; the "
                "running job is untouched",
                hint=REPROCESS,
            )
        if self.results.refused:
            what = ", ".join(self.results.changes) or "the running job's results fingerprint is not known"
            extra = f"; {NOT_CARRIED}" if self.results.settings_changed else ""
            return ConfigError(
                f"upgrade refused: it changes results ({what}); the running job is untouched",
                hint=f"{REPROCESS}, or upgrade with --same-version to apply it from now on only{extra}",
            )
        return None


def upgrade_verdict(recorded: JobRecord | None, current: Current, *, same_version: bool) -> Verdict:
    """Per piece, whether the state the running job may hold is read as is, migrated or refused; and whether the
    new settings and code change its results (refused unless `same_version`). `recorded` None: the running job
    recorded nothing and left no settings file either (see assumed_record)."""
    record = recorded if recorded is not None else assumed_record(current, fingerprint=None)
    names = sorted({*record["state"], *current.manifest})
    pieces = tuple(_piece_verdict(name, record["state"].get(name), current.manifest.get(name)) for name in names)
    return Verdict(
        pieces=pieces,
        results=_results_verdict(record["fingerprint"], current.fingerprint, same_version=same_version),
        assumed=record["assumed"],
    )


def _piece_verdict(name: str, held: Iterable[int] | None, entry: PieceEntry | None) -> PieceVerdict:
    if entry is None:
        # Its versions sit inside a piece that held it, whose own version and migration read them (its verdict).
        return PieceVerdict(name, "dropped", "no longer a piece of its own: read by the migration of its holder")
    version = entry["version"]
    if not held:
        return PieceVerdict(name, "new", f"new in this code (v{version}): none in the running job's state")
    versions = sorted(set(held))
    unreadable = [v for v in versions if v not in entry["reads"]]
    if unreadable:
        listed = ", ".join(f"v{v}" for v in unreadable)
        return PieceVerdict(name, "refused", f"REFUSED: {name} state {listed} cannot be read by this code; {REPROCESS}")
    older = [v for v in versions if v != version]
    if not older:
        return PieceVerdict(name, "as is", f"as is (v{version})")
    return PieceVerdict(name, "migrated", f"migrated {', '.join(f'v{v}' for v in older)} -> v{version}")


def _results_verdict(recorded: Fingerprint | None, current: Fingerprint, *, same_version: bool) -> ResultsVerdict:
    then = (
        "applied from now on only (--same-version): the results stored before keep the old ones"
        if same_version
        else "refused, use `fleetsense job reprocess` (or --same-version to apply it from now on only)"
    )
    if recorded is None:
        what = "may change results (the running job recorded no analytics fingerprint)"
        return ResultsVerdict((), False, known=False, refused=not same_version, text=f"{what}: {then}")
    logic, settings = _changes(recorded, current)
    changes = (*logic, *settings)
    if not changes:
        return ResultsVerdict((), False, known=True, refused=False, text=f"same results ({_describe(current)})")
    what = f"changes results ({', '.join(changes)})"
    return ResultsVerdict(changes, bool(settings), known=True, refused=not same_version, text=f"{what}: {then}")


def _changes(recorded: Fingerprint, current: Fingerprint) -> tuple[list[str], list[str]]:
    """What differs: in the analytics version, and in the settings (each value that differs, by its path)."""
    logic = []
    if recorded["analytics_version"] != current["analytics_version"]:
        logic.append(f"analytics version {recorded['analytics_version']} -> {current['analytics_version']}")
    settings: list[str] = []
    for name in sorted({*recorded["settings"], *current["settings"]}):
        old, new = canonical(recorded["settings"].get(name)), canonical(current["settings"].get(name))
        settings += _value_changes(name, old, new)
    return logic, settings


def _value_changes(path: str, old: Any, new: Any) -> list[str]:
    if old == new:
        return []
    if isinstance(old, dict | None) and isinstance(new, dict | None) and (old or new):
        before, after = old or {}, new or {}
        return [
            c
            for key in sorted({*before, *after})
            for c in _value_changes(f"{path}.{key}", before.get(key), after.get(key))
        ]
    return [f"{path} {_shown(old)} -> {_shown(new)}"]


def _describe(value: Fingerprint) -> str:
    settings = ", ".join(f"{name} {_shown(v)}" for name, v in sorted(value["settings"].items()))
    return f"analytics version {value['analytics_version']}; {settings}"


def _shown(value: Any) -> str:
    if value is None:
        return "default"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def canonical(value: Any) -> Any:
    """A setting's value as canonical JSON (what a record holds): dataclasses as their fields, mappings with sorted
    text keys, tuples as lists, sets sorted; an empty value ("", {}, ()) is None, as is no value: a setting left
    empty overrides nothing."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        mapping = {str(k): canonical(v) for k, v in value.items()}
        return dict(sorted(mapping.items())) or None
    if isinstance(value, set | frozenset):
        value = sorted(value, key=repr)
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value] or None
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value or None
    return repr(value)


def _version(value: Any) -> int:
    if type(value) is not int or value < 1:
        raise ValueError(f"{value!r} is no state version")
    return value
