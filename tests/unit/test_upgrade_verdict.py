"""What `fleetsense job upgrade` decides before it stops anything: per piece of keyed state, as is, migrated or
refused (pointing to `job reprocess`); for the results, the same, or changed and refused unless --same-version;
and that upgrade_ingest refuses while the running job is untouched."""

from __future__ import annotations

import json
import os
import random
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud.analytics.state_manifest import (
    ANALYTICS_VERSION,
    REPROCESS,
    Current,
    Fingerprint,
    JobRecord,
    Manifest,
    assumed_record,
    fresh_record,
    legacy_record,
    lineage_record,
    manifest,
    record_json,
    upgrade_verdict,
)
from fleetsense.cloud.jobctl import JobInfo
from fleetsense.cloud.stream_settings import StreamSettings

from fleetsense.errors import ConfigError
from fleetsense.stack import jobs
from fleetsense.stack.layout import StackConfig

REFUSED_RESULTS = "refused, use `fleetsense job reprocess` (or --same-version to apply it from now on only)"
DEFAULTS: Fingerprint = {
    "analytics_version": ANALYTICS_VERSION,
    "settings": {"vehicle_class": "van", "thresholds": None},
}


def _current(pieces: dict[str, tuple[int, list[int]]], fp: Fingerprint = DEFAULTS) -> Current:
    code: Manifest = {name: {"version": version, "reads": reads} for name, (version, reads) in pieces.items()}
    return Current(manifest=code, fingerprint=fp)


def _record(state: dict[str, list[int]], fp: Fingerprint | None = DEFAULTS) -> JobRecord:
    return {"format": 1, "state": state, "fingerprint": fp, "assumed": ""}


def _texts(recorded: JobRecord | None, current: Current, *, same_version: bool = False) -> dict[str, str]:
    verdict = upgrade_verdict(recorded, current, same_version=same_version)
    return {p.piece: p.text for p in verdict.pieces} | {"results": verdict.results.text}


# -- per piece ---------------------------------------------------------------------------------------------------


def test_a_piece_in_the_codes_version_is_read_as_is() -> None:
    verdict = upgrade_verdict(_record({"trip": [1]}), _current({"trip": (1, [1])}), same_version=False)
    assert [(p.piece, p.outcome, p.text) for p in verdict.pieces] == [("trip", "as is", "as is (v1)")]
    assert not verdict.refused and verdict.error() is None
    assert verdict.results.text.startswith("same results (analytics version 1; ")


def test_older_versions_the_code_reads_are_migrated() -> None:
    current = _current({"sequencer": (3, [1, 2, 3]), "minute row": (2, [1, 2])})
    texts = _texts(_record({"sequencer": [1, 2, 3], "minute row": [1]}), current)
    assert texts["sequencer"] == "migrated v1, v2 -> v3"
    assert texts["minute row"] == "migrated v1 -> v2"
    assert upgrade_verdict(_record({"minute row": [1]}), current, same_version=False).error() is None


def test_a_version_the_code_cannot_read_is_refused_pointing_to_reprocess() -> None:
    current = _current({"trip": (3, [2, 3]), "vehicle": (3, [1, 2, 3])})
    verdict = upgrade_verdict(_record({"trip": [1, 3], "vehicle": [3]}), current, same_version=True)
    (refused,) = verdict.refused_pieces
    assert refused.text == (
        "REFUSED: trip state v1 cannot be read by this code; reprocess with `fleetsense job reprocess --since ...` "
        "then `fleetsense job promote VERSION`"
    )
    error = verdict.error()
    assert error is not None and "cannot read the trip state" in error.message and "untouched" in error.message
    assert error.hint == REPROCESS  # --same-version does not help: the state cannot be read at all


def test_a_version_newer_than_the_codes_is_refused() -> None:
    texts = _texts(_record({"trip": [2]}), _current({"trip": (1, [1])}))
    assert texts["trip"].startswith("REFUSED: trip state v2 cannot be read by this code; ")


def test_a_piece_new_in_the_code_and_one_gone_from_it() -> None:
    verdict = upgrade_verdict(_record({"old": [1]}), _current({"new": (1, [1])}), same_version=False)
    outcomes = {p.piece: p.outcome for p in verdict.pieces}
    assert outcomes == {"new": "new", "old": "dropped"}
    assert not verdict.refused


def test_the_lines_name_every_piece_and_the_results() -> None:
    lines = upgrade_verdict(_record({"trip": [1]}), _current({"trip": (1, [1])}), same_version=False).lines()
    assert lines[0] == "state of the running job -> this code:"
    assert lines[1] == "  trip: as is (v1)"
    assert lines[-1].startswith("results: same results")


# -- results -----------------------------------------------------------------------------------------------------


def test_a_changed_setting_changes_results_and_is_refused_unless_same_version() -> None:
    truck: Fingerprint = {"analytics_version": ANALYTICS_VERSION, "settings": {"vehicle_class": "truck"}}
    verdict = upgrade_verdict(_record({}), _current({}, truck), same_version=False)
    assert verdict.results.text == f"changes results (vehicle_class van -> truck): {REFUSED_RESULTS}"
    error = verdict.error()
    assert error is not None and error.hint is not None
    assert "--same-version" in error.hint and "--set NAME=VALUE keeps one" in error.hint
    accepted = upgrade_verdict(_record({}), _current({}, truck), same_version=True)
    assert not accepted.refused and accepted.error() is None
    assert accepted.results.text.startswith("changes results (vehicle_class van -> truck): applied from now on only")


def test_a_new_analytics_version_changes_results() -> None:
    newer: Fingerprint = {"analytics_version": ANALYTICS_VERSION + 1, "settings": DEFAULTS["settings"]}
    verdict = upgrade_verdict(_record({}), _current({}, newer), same_version=False)
    assert verdict.results.changes == (f"analytics version {ANALYTICS_VERSION} -> {ANALYTICS_VERSION + 1}",)
    error = verdict.error()
    assert error is not None and error.hint is not None and "--set" not in error.hint


def test_threshold_changes_are_named_one_value_at_a_time() -> None:
    old = Current.of(StreamSettings(thresholds="van.harsh_brake_g=0.3"))
    new = Current.of(StreamSettings(thresholds="van.harsh_brake_g=0.25,truck.bump_g=0.4"))
    verdict = upgrade_verdict(fresh_record(old), new, same_version=False)
    assert verdict.results.changes == (
        "thresholds.truck.bump_g default -> 0.4",
        "thresholds.van.harsh_brake_g 0.3 -> 0.25",
    )
    same = Current.of(StreamSettings(thresholds="van.harsh_brake_g=0.30"))
    assert upgrade_verdict(fresh_record(old), same, same_version=False).error() is None


def test_a_job_that_recorded_nothing_is_assumed_in_readable_versions_and_its_results_unknown() -> None:
    current = _current({"vehicle": (3, [1, 2, 3]), "trip": (1, [1])})
    verdict = upgrade_verdict(None, current, same_version=False)
    assert {p.piece: p.text for p in verdict.pieces} == {"vehicle": "migrated v1, v2 -> v3", "trip": "as is (v1)"}
    assert "recorded no state manifest" in verdict.assumed and verdict.lines()[1].startswith("  (the running job")
    assert not verdict.results.known and verdict.results.refused
    assert verdict.results.text.startswith("may change results (the running job recorded no analytics fingerprint)")
    assert not upgrade_verdict(None, current, same_version=True).refused


def test_a_job_of_an_older_release_is_judged_by_its_settings_file() -> None:
    current = Current.of(StreamSettings())
    legacy = legacy_record({"vehicle_class": "van", "gap_wait_ms": 10_000}, current)
    verdict = upgrade_verdict(legacy, current, same_version=False)
    assert not verdict.refused and verdict.results.text.startswith("same results")
    assert {p.outcome for p in verdict.pieces} <= {"as is", "migrated"}
    other = legacy_record({"vehicle_class": "car"}, current)
    assert upgrade_verdict(other, current, same_version=False).results.changes == ("vehicle_class car -> van",)


def test_todays_code_upgrading_itself_is_all_as_is() -> None:
    current = Current.of(StreamSettings())
    verdict = upgrade_verdict(fresh_record(current), current, same_version=False)
    assert {p.outcome for p in verdict.pieces} == {"as is"} and not verdict.refused


# -- randomized --------------------------------------------------------------------------------------------------

NAMES = [f"piece{i}" for i in range(6)]


def _random_code(rng: random.Random) -> dict[str, tuple[int, list[int]]]:
    pieces = {}
    for name in rng.sample(NAMES, rng.randint(0, len(NAMES))):
        version = rng.randint(1, 5)
        older = [v for v in range(1, version) if rng.random() < 0.6]
        pieces[name] = (version, sorted({*older, version}))
    return pieces


def _random_fingerprint(rng: random.Random) -> Fingerprint:
    settings: dict[str, Any] = {"vehicle_class": rng.choice(["van", "car"])}
    if rng.random() < 0.5:
        settings["thresholds"] = rng.choice([None, {"van": {"harsh_brake_g": 0.3}}, {"van": {"harsh_brake_g": 0.25}}])
    return {"analytics_version": rng.choice([1, 2]), "settings": settings}


def test_the_verdict_refuses_exactly_when_a_recorded_version_cannot_be_read() -> None:
    rng = random.Random(19_004)
    outcomes: set[str] = set()
    for _ in range(5000):
        code = _random_code(rng)
        state = {n: sorted(rng.sample(range(1, 7), rng.randint(0, 3))) for n in rng.sample(NAMES, rng.randint(0, 6))}
        before, after = _random_fingerprint(rng), _random_fingerprint(rng)
        same_version = rng.random() < 0.3
        recorded = _record(state, before if rng.random() < 0.9 else None)
        current = _current(code, after)
        verdict = upgrade_verdict(recorded, current, same_version=same_version)

        unreadable = {n for n, versions in state.items() if n in code and set(versions) - set(code[n][1])}
        assert {p.piece for p in verdict.refused_pieces} == unreadable
        for p in verdict.pieces:
            outcomes.add(p.outcome)
            held, entry = state.get(p.piece), code.get(p.piece)
            expected = (
                "dropped"
                if entry is None
                else "new"
                if not held
                else "refused"
                if p.piece in unreadable
                else "as is"
                if set(held) == {entry[0]}
                else "migrated"
            )
            assert p.outcome == expected
        differs = recorded["fingerprint"] is None or _differs(before, after)
        assert verdict.results.refused == (differs and not same_version)
        assert (verdict.error() is None) == (not unreadable and not verdict.results.refused)

        # What an allowed upgrade then records: the same code reads it (as is or migrated), with the same results;
        # a refused version stays in the record, refused again.
        after_upgrade = upgrade_verdict(lineage_record(recorded, current), current, same_version=False)
        assert after_upgrade.results.text.startswith("same results")
        assert {p.piece for p in after_upgrade.refused_pieces} == unreadable
        assert {p.outcome for p in after_upgrade.pieces if p.piece in code and p.piece not in unreadable} <= {
            "as is",
            "migrated",
        }
        for name, versions in state.items():  # the union keeps every version the lineage may hold
            assert set(versions) <= set(lineage_record(recorded, current)["state"][name])
    assert outcomes == {"as is", "migrated", "new", "dropped", "refused"}


def _differs(before: Fingerprint, after: Fingerprint) -> bool:
    def settings(fp: Fingerprint) -> dict[str, Any]:
        return {name: fp["settings"].get(name) for name in ("vehicle_class", "thresholds")}

    return before["analytics_version"] != after["analytics_version"] or settings(before) != settings(after)


# -- upgrade_ingest and submit_settings, with a fake Flink REST client -------------------------------------------


@dataclass
class FakeFlink:
    """The Flink REST client's part that upgrade_ingest and submit_settings use: one running job, recorded calls."""

    running_job: JobInfo | None = field(
        default_factory=lambda: JobInfo(job_id="old-id", name=jobs.INGEST_JOB_NAME, state="RUNNING", start_time_ms=0)
    )
    calls: list[str] = field(default_factory=list)

    def running(self, name: str) -> JobInfo | None:
        return self.running_job if self.running_job and self.running_job.name == name else None

    def stop_with_savepoint(self, job_id: str, target_dir: Path, *, timeout_s: float = 120.0) -> str:
        self.calls.append(f"stop {job_id}")
        return str(target_dir / "savepoint-1")

    def submit_python(
        self,
        job_file: Path,
        args: list[str],
        *,
        jar: Path,
        savepoint: str | None = None,
        allow_non_restored: bool = False,
    ) -> str:
        self.calls.append(f"submit from {savepoint}")
        return "new-id"

    def wait_running(self, job_id: str) -> None:
        self.calls.append(f"wait {job_id}")


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[StackConfig, FakeFlink]:
    config = StackConfig(data_dir=tmp_path / "stack")
    flink = FakeFlink()
    monkeypatch.setattr(jobs, "cluster", lambda _config: flink)
    monkeypatch.setattr(jobs, "connector_jar", lambda _config: tmp_path / "connector.jar")  # not built here
    # The live job's settings without the active result version (read from Cassandra): version 1's.
    monkeypatch.setattr(jobs, "live_settings", jobs.ingest_settings)
    return config, flink


def _settings_path(config: StackConfig) -> Path:
    return config.component_dir("flink") / "jobs" / "telemetry-ingest.json"


def _write_record(config: StackConfig, record: JobRecord) -> None:
    path = jobs.state_record_path(_settings_path(config))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record_json(record))


def test_an_upgrade_the_code_cannot_read_is_refused_before_the_job_is_stopped(
    stack: tuple[StackConfig, FakeFlink], capsys: pytest.CaptureFixture[str]
) -> None:
    config, flink = stack
    code = manifest()
    unreadable = max(code["trip"]["reads"]) + 1  # written by a newer release
    _write_record(config, _record({"trip": [unreadable], "vehicle": [code["vehicle"]["version"]]}))
    with pytest.raises(ConfigError, match="cannot read the trip state") as caught:
        jobs.upgrade_ingest(config, same_version=True)
    assert caught.value.hint == REPROCESS
    assert flink.calls == []  # nothing stopped, nothing submitted
    out = capsys.readouterr().out
    assert f"REFUSED: trip state v{unreadable} cannot be read by this code" in out


def test_an_upgrade_that_changes_results_is_refused_before_the_job_is_stopped(
    stack: tuple[StackConfig, FakeFlink], capsys: pytest.CaptureFixture[str]
) -> None:
    config, flink = stack
    truck = Current.of(StreamSettings(vehicle_class="truck"))
    _write_record(config, fresh_record(truck))
    with pytest.raises(ConfigError, match=r"changes results \(vehicle_class truck -> van\)"):
        jobs.upgrade_ingest(config, {"gap_wait_ms": "12000"})
    assert flink.calls == []
    assert "results: changes results (vehicle_class truck -> van): refused" in capsys.readouterr().out
    assert jobs.upgrade_ingest(config, {"vehicle_class": "truck"}, dry_run=True) is None  # the same: allowed
    assert jobs.upgrade_ingest(config, same_version=True, dry_run=True) is None
    assert flink.calls == []  # a dry run stops nothing


def test_a_dry_run_of_an_upgrade_of_a_job_without_a_record_prints_the_assumption(
    stack: tuple[StackConfig, FakeFlink], capsys: pytest.CaptureFixture[str]
) -> None:
    config, flink = stack
    settings = _settings_path(config)
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"vehicle_class": "van", "shards": 16}))  # an older release's settings file
    assert jobs.upgrade_ingest(config, dry_run=True) is None
    out = capsys.readouterr().out
    assert "recorded no state manifest" in out and "results: same results" in out
    assert flink.calls == []


def test_submit_records_the_state_beside_the_settings_and_an_upgrade_the_union(
    stack: tuple[StackConfig, FakeFlink], tmp_path: Path
) -> None:
    config, flink = stack
    flink.running_job = None
    settings = jobs.ingest_settings(config)
    path = _settings_path(config)
    jobs.submit_settings(flink, settings, path)
    record_file = jobs.state_record_path(path)
    assert record_file.name == "telemetry-ingest.state.json"
    assert stat.S_IMODE(os.stat(record_file).st_mode) == 0o600
    fresh = json.loads(record_file.read_text())
    assert fresh["state"] == {name: [entry["version"]] for name, entry in manifest().items()}
    assert fresh["fingerprint"] == Current.of(settings.stream).fingerprint

    # A lineage recorded by older code: the savepoint's job may still hold its versions.
    _write_record(config, _record({"vehicle": [1], "gone": [4]}))
    jobs.submit_settings(flink, settings, path, savepoint="sp")
    union = json.loads(record_file.read_text())["state"]
    assert union["vehicle"] == sorted({1, manifest()["vehicle"]["version"]}) and union["gone"] == [4]

    # Promote: the lineage of the replay whose savepoint becomes the live job, not the live job's.
    replay = tmp_path / "reprocess-r2.json"
    jobs.state_record_path(replay).write_text(record_json(fresh_record(Current.of(settings.stream))))
    jobs.submit_settings(flink, settings, path, savepoint="sp2", lineage_from=replay)
    assert json.loads(record_file.read_text())["state"] == fresh["state"]
    assert not list(record_file.parent.glob("*.tmp"))  # written atomically
    assert flink.calls.count("wait new-id") == 3


def test_a_record_from_a_savepoint_without_one_assumes_the_readable_versions(
    stack: tuple[StackConfig, FakeFlink],
) -> None:
    config, flink = stack
    flink.running_job = None
    settings = jobs.ingest_settings(config)
    path = _settings_path(config)
    record = jobs.record_state(path, settings, savepoint="sp")
    current = Current.of(settings.stream)
    assert record["state"] == assumed_record(current, fingerprint=None)["state"]
