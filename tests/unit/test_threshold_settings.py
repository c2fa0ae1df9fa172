"""The job's event thresholds per vehicle class (the `thresholds` stream setting, cloud/stream_settings.py): parsed
and checked when the settings are made, carried into every vehicle's AnalyzerConfig, and detected by: the same
recorded drive, run through the job's per-vehicle code (vehicle_stream.on_message, shard_stream.on_bundle), finds
more, earlier and longer harsh brakes with a lower van threshold and none with one above the drive's peaks, and two
jobs with other settings in one interpreter do not affect each other."""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import pickle
import random
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud import tables as t
from fleetsense.cloud.analytics.events import (
    DETECTORS,
    MAX_DURATION_MS,
    THRESHOLD_NAMES,
    VEHICLE_CLASSES,
    EventThresholds,
    threshold_allowed,
    threshold_problem,
    thresholds_for,
)
from fleetsense.cloud.analytics.vehicle_analyzer import AnalyzerConfig, VehicleAnalyzer
from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.profiles import Profile
from fleetsense.cloud.shard_stream import DictShardStore, on_bundle
from fleetsense.cloud.store import Write
from fleetsense.cloud.stream_settings import StreamSettings, parse_thresholds
from fleetsense.cloud.vehicle_stream import VehicleState, on_message, on_timer

from fleetsense.cli import _settings_overrides
from fleetsense.errors import ConfigError
from tests.unit.test_analytics_drives import scripted_recording
from tests.unit.test_service_trace import wire_batches

CODE = {name: dataclasses.replace(thresholds) for name, thresholds in VEHICLE_CLASSES.items()}  # a copy
FIXTURES = Path(__file__).parent / "fixtures"


def _unit(name: str) -> str:
    """A threshold's kind, by its name's ending: a level in g, a fraction (hysteresis) or a duration in ms."""
    return "g" if name.endswith("_g") else "ms" if name.endswith("_ms") else "fraction"


def _valid_value(name: str) -> float:
    return {"g": 0.5, "fraction": 0.9, "ms": 250}[_unit(name)]


# -- parsing ------------------------------------------------------------------------------------------------------


def test_no_thresholds_keep_the_codes_and_a_vehicles_configuration_stays_its_class_default() -> None:
    for text in ("", "   "):
        assert dict(parse_thresholds(text)) == VEHICLE_CLASSES
        assert StreamSettings(thresholds=text).class_thresholds() == ()
    analyzer = VehicleState.new(StreamSettings(vehicle_class="truck")).analyzer
    assert analyzer.config == AnalyzerConfig(vehicle_class="truck")
    assert pickle.loads(pickle.dumps(analyzer)).config is pickle.loads(pickle.dumps(analyzer)).config  # the shared one


def test_each_part_replaces_one_threshold_of_one_class_and_the_code_is_left_as_it_is() -> None:
    classes = parse_thresholds(" van.harsh_brake_g = 0.30 , truck.harsh_corner_g=0.25,truck.min_duration_ms=250")
    assert classes["van"] == dataclasses.replace(CODE["van"], harsh_brake_g=0.30)
    assert classes["truck"] == dataclasses.replace(CODE["truck"], harsh_corner_g=0.25, min_duration_ms=250)
    assert classes["car"] is VEHICLE_CLASSES["car"]
    assert type(classes["truck"].min_duration_ms) is int
    assert VEHICLE_CLASSES == CODE and thresholds_for("van") == EventThresholds()
    settings = StreamSettings(thresholds="van.harsh_brake_g=0.30,car.harsh_brake_g=0.40")  # car's is the code's
    assert settings.class_thresholds() == (("van", classes["van"]),)
    with pytest.raises(TypeError):
        parse_thresholds("van.harsh_brake_g=0.3")["van"] = EventThresholds()  # type: ignore[index]


@pytest.mark.parametrize("name", THRESHOLD_NAMES)
def test_every_threshold_of_every_class_can_be_set(name: str) -> None:
    for vehicle_class in VEHICLE_CLASSES:
        classes = parse_thresholds(f"{vehicle_class}.{name}={_valid_value(name)}")
        assert getattr(classes[vehicle_class], name) == _valid_value(name)


# (text, what the message says, what the hint says)
INVALID = [
    ("van", "the part 'van' is no class.threshold=value", "class.threshold=value"),
    ("van.harsh_brake_g", "is no class.threshold=value", "the thresholds harsh_brake_g, harsh_acceleration_g"),
    ("harsh_brake_g=0.3", "'harsh_brake_g=0.3' is no class.threshold=value", "the classes are car, truck, van"),
    ("van.harsh_brake_g=0.3,", "the part '' is empty", "class.threshold=value"),
    ("van.harsh_brake_g=0.3,,car.bump_g=1", "the part '' is empty", "class.threshold=value"),
    ("bus.harsh_brake_g=0.3", "'bus.harsh_brake_g=0.3' names no vehicle class ('bus')", "car, truck, van"),
    ("Van.harsh_brake_g=0.3", "names no vehicle class ('Van')", "car, truck, van"),
    ("van.brake_g=0.3", "'van.brake_g=0.3' names no threshold ('brake_g')", "harsh_brake_g: a positive number of g"),
    ("van.harsh_brake_g.x=0.3", "names no threshold ('harsh_brake_g.x')", "min_duration_ms: a whole number of ms"),
    ("van.harsh_brake_g=fast", "gives harsh_brake_g 'fast', which is not a number", "a positive number of g"),
    ("van.harsh_brake_g=", "gives harsh_brake_g '', which is not a number", "a positive number of g"),
    ("van.harsh_brake_g=0.3g", "which is not a number", "a positive number of g"),
    ("van.min_duration_ms=250.5", "gives min_duration_ms '250.5', which is not a whole number", "a whole number"),
    ("van.harsh_brake_g=0", "'van.harsh_brake_g=0' is out of bounds", "harsh_brake_g is a positive number of g"),
    ("van.harsh_brake_g=-0.3", "is out of bounds", "a positive number of g"),
    ("van.bump_g=nan", "is out of bounds", "a positive number of g"),
    ("van.harsh_corner_g=inf", "is out of bounds", "a positive number of g"),
    ("van.harsh_corner_g=1e999", "is out of bounds", "a positive number of g"),
    ("van.hysteresis=0", "is out of bounds", "hysteresis is a fraction in (0, 1]"),
    ("truck.bump_hysteresis=1.01", "is out of bounds", "a fraction in (0, 1]"),
    ("van.min_duration_ms=-1", "is out of bounds", f"0..{MAX_DURATION_MS}"),
    (f"car.merge_gap_ms={MAX_DURATION_MS + 1}", "is out of bounds", f"0..{MAX_DURATION_MS}"),
    ("van.harsh_brake_g=0.3,van.harsh_brake_g=0.2", "sets van.harsh_brake_g twice", "keep one"),
]


@pytest.mark.parametrize(("text", "says", "hint"), INVALID)
def test_an_invalid_part_is_refused_naming_it_with_what_is_valid(text: str, says: str, hint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        StreamSettings(thresholds=text)
    assert str(raised.value).startswith("job setting thresholds") and says in str(raised.value)
    assert hint in (raised.value.hint or "")
    assert VEHICLE_CLASSES == CODE


def test_the_bounds_are_the_ones_event_thresholds_enforces() -> None:
    """Declared once: what the setting refuses, EventThresholds refuses, and what it takes, EventThresholds takes."""
    bad = {"g": (0.0, -1.0, float("nan"), float("inf")), "fraction": (0.0, -0.5, 1.5, float("nan")), "ms": (-1, 60_001)}
    for name in THRESHOLD_NAMES:
        assert threshold_allowed(name)
        assert threshold_problem(name, _valid_value(name)) is None
        EventThresholds(**{name: _valid_value(name)})  # type: ignore[arg-type]
        for value in bad[_unit(name)]:
            assert threshold_problem(name, value)
            with pytest.raises(ValueError, match=name):
                EventThresholds(**{name: value})  # type: ignore[arg-type]
            with pytest.raises(ConfigError, match="out of bounds"):
                parse_thresholds(f"van.{name}={value}")


def test_every_detectors_level_is_a_threshold_in_g() -> None:
    """threshold_problem knows a level by its name's unit: each detector's level_g reads a *_g threshold."""
    marked = {name: {"g": 7.0, "fraction": 0.77, "ms": 7}[_unit(name)] for name in THRESHOLD_NAMES}  # none a default
    for detector in DETECTORS:
        read = [
            name
            for name, mark in marked.items()
            if detector.level_g(dataclasses.replace(EventThresholds(), **{name: mark})) == mark  # type: ignore[arg-type]
        ]
        assert len(read) == 1 and _unit(read[0]) == "g", (detector.kind, read)


def _job(**overrides: str) -> IngestJobSettings:
    base = IngestJobSettings(
        amqp_host="h", amqp_port=1, amqp_vhost="/", amqp_username="u", amqp_password="p", amqp_queue="q",
        cassandra_host="c", cassandra_port=2, keyspace="k", connector_jar="j",
    )  # fmt: skip
    return base.with_overrides(overrides)


def test_the_job_settings_take_thresholds_from_the_command_line_and_keep_them_in_their_file(tmp_path: Path) -> None:
    settings = _job(thresholds="van.harsh_brake_g=0.30,truck.harsh_corner_g=0.25")
    assert settings.stream.thresholds == "van.harsh_brake_g=0.30,truck.harsh_corner_g=0.25"
    assert [name for name, _ in settings.stream.class_thresholds()] == ["truck", "van"]
    path = tmp_path / "job.json"
    path.write_text(settings.to_json())
    assert json.loads(path.read_text())["thresholds"] == settings.stream.thresholds
    assert IngestJobSettings.from_file(path) == settings
    assert _job().stream.thresholds == ""
    # `--set NAME=VALUE` splits at the first "=" only, so the setting's own "=" reach it.
    assert _job(**_settings_overrides([f"thresholds={settings.stream.thresholds}"])) == settings
    with pytest.raises(ConfigError, match="names no vehicle class"):
        _job(thresholds="lorry.harsh_brake_g=0.3")


# -- fuzz ---------------------------------------------------------------------------------------------------------

_TOKENS = [
    *VEHICLE_CLASSES, *THRESHOLD_NAMES, ".", ".", "=", "=", ",", ",", " ", "", "0.3", "0.25", "250", "1", "0",
    "-0.1", "nan", "inf", "1e999", "1e-9", "0x10", "1_0", "٣", "+0.5", ".5", "5.", "True", "None", "\x00", "\n",
    "é", "van.", ".harsh_brake_g", "==", "g", "ms", "1.5", "60000", "60001", "9" * 5000,
]  # fmt: skip


def _random_text(rng: random.Random) -> str:
    if rng.random() < 0.3:
        alphabet = string.printable + "éß٣\u2003\x00"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
    return "".join(rng.choice(_TOKENS) for _ in range(rng.randint(0, 14)))


def _check_parsed_or_refused(text: str) -> None:
    try:
        classes = parse_thresholds(text)
    except ConfigError as exc:
        assert exc.hint, text
        return
    assert set(classes) == set(VEHICLE_CLASSES), text
    assert all(type(thresholds) is EventThresholds for thresholds in classes.values()), text
    assert StreamSettings(thresholds=text).class_thresholds() == tuple(
        (name, classes[name]) for name in sorted(classes) if classes[name] != VEHICLE_CLASSES[name]
    )


def test_random_text_is_parsed_or_refused_with_a_config_error_never_anything_else() -> None:
    rng = random.Random(19)
    for _ in range(4000):
        _check_parsed_or_refused(_random_text(rng))
    assert VEHICLE_CLASSES == CODE


def _random_valid(rng: random.Random) -> tuple[str, dict[str, dict[str, float]]]:
    """A valid setting written in one of the ways a person might, and the overrides it means."""
    chosen = rng.sample([(c, n) for c in VEHICLE_CLASSES for n in THRESHOLD_NAMES], rng.randint(1, 6))
    parts, overrides = [], {}
    for vehicle_class, name in chosen:
        if name.endswith("_ms"):
            value: float = rng.randint(0, MAX_DURATION_MS)
            text = str(value)
        else:
            value = rng.uniform(1e-6, 1.0) if name.endswith("hysteresis") else rng.uniform(1e-3, 8.0)
            text = rng.choice((repr(value), f"{value:.3f}", f"{value:e}"))
            value = float(text)
            if value <= 0.0:  # rounded to nothing
                continue
        overrides.setdefault(vehicle_class, {})[name] = value
        pad = rng.choice(("", " ", "  "))
        parts.append(f"{pad}{vehicle_class}{pad}.{name}{pad}={pad}{text}{pad}")
    return ",".join(parts), overrides


def test_random_valid_settings_give_exactly_each_classs_code_thresholds_with_their_parts() -> None:
    rng = random.Random(1919)
    for _ in range(2000):
        text, overrides = _random_valid(rng)
        classes = parse_thresholds(text)
        for vehicle_class, code in CODE.items():
            assert classes[vehicle_class] == dataclasses.replace(code, **overrides.get(vehicle_class, {})), text
        # Each valid text with one character changed: still a mapping of every class, or a ConfigError.
        if text:
            at = rng.randrange(len(text))
            _check_parsed_or_refused(text[:at] + rng.choice(string.printable) + text[at + 1 :])
    assert VEHICLE_CLASSES == CODE


# -- behaviour: the recorded drive through the job's per-vehicle code ---------------------------------------------

VEHICLE = "van-trace"  # the vehicle wire_batches names
KEY = f"fleet.{VEHICLE}.telemetry"
Events = dict[tuple[str, int], tuple[int, float]]  # (kind, start ms) -> (duration ms, peak): the upserted rows


@functools.cache
def _drive() -> tuple[tuple[int, bytes], ...]:
    """The scripted drive (3 harsh brakes of 0.6-0.8 g, an ordinary 0.24 g deceleration) as the agent sends it,
    each 1 s batch arriving 50 ms after its last sample."""
    recording = scripted_recording(2)
    last = recording.t_us.size - 1
    return tuple(
        (int(recording.t_us[min(i * 100 + 99, last)]) // 1000 + 50, body)
        for i, body in enumerate(wire_batches(recording))
    )


def _events(writes: Sequence[Write], into: Events) -> Events:
    table = t.EVENTS_BY_VEHICLE
    for statement, values in writes:
        if statement == table.write:
            key = (table.value(values, "kind"), table.value(values, "start_time"))
            into[key] = (table.value(values, "duration_ms"), table.value(values, "peak"))
    return into


def _run(settings: StreamSettings) -> Events:
    """The drive through on_message, then the idle flush."""
    state: VehicleState | None = None
    waiting: dict[int, bytes] = {}
    events: Events = {}
    for now_ms, body in _drive():
        state, result = on_message(state, waiting, KEY, body, now_ms=now_ms, settings=settings)
        _events(result.writes, events)
    assert state is not None
    return _events(on_timer(state, waiting, VEHICLE, now_ms=_drive()[-1][0] + 60_000).writes, events)


def _brakes(events: Events) -> list[tuple[int, int]]:
    """(start ms, end ms) of each harsh brake, oldest first."""
    return sorted((start, start + duration) for (kind, start), (duration, _) in events.items() if kind == "harsh_brake")


def _not_brakes(events: Events) -> Events:
    return {key: value for key, value in events.items() if key[0] != "harsh_brake"}


def test_a_lower_van_brake_threshold_finds_more_earlier_and_longer_brakes_and_one_above_the_peaks_none() -> None:
    default = _run(StreamSettings())
    assert len(_brakes(default)) == 3
    lower = _run(StreamSettings(thresholds="van.harsh_brake_g=0.30"))
    assert len(_brakes(lower)) == 3
    for (start, end), (lower_start, lower_end) in zip(_brakes(default), _brakes(lower), strict=True):
        assert lower_start < start and lower_end >= end  # entered sooner, left at a lower level
    lowest = _run(StreamSettings(thresholds="van.harsh_brake_g=0.20"))
    assert len(_brakes(lowest)) == 4  # the ordinary 0.24 g deceleration too
    highest = _run(StreamSettings(thresholds="van.harsh_brake_g=2.0"))
    assert _brakes(highest) == []
    # Only the van's braking changed: every other kind's rows are the same, and another class's change is nothing.
    assert _not_brakes(lower) == _not_brakes(lowest) == _not_brakes(highest) == _not_brakes(default)
    assert _run(StreamSettings(thresholds="truck.harsh_brake_g=0.1,car.harsh_brake_g=2.0")) == default
    assert VEHICLE_CLASSES == CODE


class PicklingStore(DictShardStore):
    """A shard store that keeps each vehicle's state as the job does: pickled after every bundle that changed it."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes: dict[str, bytes] = {}

    def load(self, vehicle_id: str) -> VehicleState | None:
        stored = self.bytes.get(vehicle_id)
        return None if stored is None else pickle.loads(stored)  # type: ignore[no-any-return]

    def save(self, vehicle_id: str, state: VehicleState) -> None:
        self.bytes[vehicle_id] = pickle.dumps(state)


def _no_profiles(vehicles: Sequence[str]) -> dict[str, Profile]:
    return {}


def test_two_jobs_with_other_thresholds_in_one_process_do_not_affect_each_other() -> None:
    """A live job and a reprocessing job with a lower van threshold, their bundles interleaved in one interpreter
    and their states pickled after each: each finds what it finds alone, and the code's classes stay as they are."""
    jobs = {
        "live": (StreamSettings(), PicklingStore(), {}),
        "reprocess": (StreamSettings(thresholds="van.harsh_brake_g=0.20"), PicklingStore(), {}),
    }
    found: dict[str, Events] = {name: {} for name in jobs}
    for now_ms, body in _drive():
        for name, (settings, store, deadlines) in jobs.items():
            result = on_bundle(
                store, deadlines, [(KEY, body)], now_ms=now_ms, settings=settings, profiles_of=_no_profiles
            )
            _events(result.writes, found[name])
    for name, (settings, store, _) in jobs.items():
        state = store.load(VEHICLE)
        assert state is not None
        assert state.analyzer.config.class_thresholds == settings.class_thresholds()
        _events(on_timer(state, {}, VEHICLE, now_ms=_drive()[-1][0] + 60_000).writes, found[name])
        assert found[name] == _run(settings), name
    assert len(_brakes(found["reprocess"])) == len(_brakes(found["live"])) + 1
    assert VEHICLE_CLASSES == CODE and thresholds_for("van") == EventThresholds()


def test_a_vehicle_whose_class_changes_gets_the_jobs_thresholds_of_its_new_class() -> None:
    settings = StreamSettings(thresholds="truck.harsh_brake_g=2.0,car.harsh_brake_g=0.20")
    store, deadlines = PicklingStore(), {}
    drive = _drive()
    events: Events = {}
    for index, (now_ms, body) in enumerate(drive):
        # The profile is set to truck after the first minute (the job re-reads profiles every minute), then car.
        profiles = {VEHICLE: Profile("truck", updated_ms=drive[0][0] + 60_000)} if index >= 60 else {}
        if index >= 140:
            profiles = {VEHICLE: Profile("car", updated_ms=drive[0][0] + 140_000)}
        result = on_bundle(
            store, deadlines, [(KEY, body)], now_ms=now_ms, settings=settings, profiles_of=_no_profiles,
            known_profiles=profiles,
        )  # fmt: skip
        _events(result.writes, events)
        config = store.load(VEHICLE).analyzer.config  # type: ignore[union-attr]
        expected = "van" if index < 60 else "truck" if index < 140 else "car"
        assert config.vehicle_class == expected
        assert config.event_thresholds == parse_thresholds(settings.thresholds)[expected]
    brakes_s = [(start - drive[0][0]) / 1000 for start, _ in _brakes(events)]
    default_s = [(start - drive[0][0]) / 1000 for start, _ in _brakes(_run(StreamSettings()))]
    # As a van, the first brake (at ~43 s); none as a truck of 2.0 g (the one at ~101 s); the last one (~155 s)
    # as a car of 0.20 g, entered sooner than a van's 0.35 g would, and the 0.24 g deceleration (~144 s) too.
    assert brakes_s[0] == default_s[0] and len(brakes_s) == 3
    assert 140 < brakes_s[1] < 150 and brakes_s[2] < default_s[2]


def test_a_vehicle_first_seen_with_a_profile_starts_with_the_jobs_thresholds_of_its_class() -> None:
    settings = StreamSettings(thresholds="truck.harsh_brake_g=2.0")
    store: PicklingStore = PicklingStore()
    now_ms, body = _drive()[0]
    on_bundle(
        store, {}, [(KEY, body)], now_ms=now_ms, settings=settings,
        profiles_of=lambda vehicles: {v: Profile("truck", updated_ms=0) for v in vehicles},
    )  # fmt: skip
    config = store.load(VEHICLE).analyzer.config  # type: ignore[union-attr]
    assert config.vehicle_class == "truck" and config.event_thresholds.harsh_brake_g == 2.0


def test_a_state_restored_under_other_settings_is_judged_by_the_jobs_thresholds_from_then_on() -> None:
    """An upgrade that changes `thresholds`: the settings decide, not what the state was written with."""
    drive = _drive()
    state: VehicleState | None = None
    waiting: dict[int, bytes] = {}
    events: Events = {}
    raised = StreamSettings(thresholds="van.harsh_brake_g=2.0")
    for index, (now_ms, body) in enumerate(drive):
        if index == 80:  # after the first brake: a savepoint, and the job submitted again with other settings
            state = pickle.loads(pickle.dumps(state))
        settings = StreamSettings() if index < 80 else raised
        state, result = on_message(state, waiting, KEY, body, now_ms=now_ms, settings=settings)
        _events(result.writes, events)
    assert state is not None and state.analyzer.config.class_thresholds == raised.class_thresholds()
    assert _brakes(events) == _brakes(_run(StreamSettings()))[:1]
    # And back: a state with the job's thresholds under settings without any is its class's default again.
    state, _ = on_message(state, waiting, KEY, drive[-1][1], now_ms=drive[-1][0] + 1, settings=StreamSettings())
    assert state is not None and state.analyzer.config == AnalyzerConfig()
    assert pickle.loads(pickle.dumps(state)).analyzer.config is pickle.loads(pickle.dumps(state)).analyzer.config


# -- state ---------------------------------------------------------------------------------------------------------


def _config(settings: StreamSettings) -> AnalyzerConfig:
    """A van's configuration in a job with these settings."""
    return AnalyzerConfig(class_thresholds=settings.class_thresholds())


def test_a_configuration_with_the_jobs_thresholds_survives_pickling_after_every_batch() -> None:
    settings = StreamSettings(thresholds="van.harsh_brake_g=0.20,truck.harsh_corner_g=0.25")
    state: VehicleState | None = None
    waiting: dict[int, bytes] = {}
    events: Events = {}
    for now_ms, body in _drive():
        state, result = on_message(state, waiting, KEY, body, now_ms=now_ms, settings=settings)
        _events(result.writes, events)
        state = pickle.loads(pickle.dumps(state))
        assert state is not None and state.analyzer.config == _config(settings)
    assert state is not None
    _events(on_timer(state, waiting, VEHICLE, now_ms=_drive()[-1][0] + 60_000).writes, events)
    assert events == _run(settings)


def test_a_configuration_pickled_before_class_thresholds_existed_reads_as_the_codes() -> None:
    """A whole configuration pickled by the code before this field (its __dict__ without it) loads with ()."""
    config = AnalyzerConfig(vehicle_class="car", thresholds=EventThresholds(harsh_brake_g=0.3))
    old = AnalyzerConfig(vehicle_class="car", thresholds=EventThresholds(harsh_brake_g=0.3))
    object.__delattr__(old, "class_thresholds")  # the instance's __dict__ as the earlier code pickled it
    assert "class_thresholds" not in pickle.loads(pickle.dumps(old)).__dict__
    analyzer = pickle.loads(pickle.dumps(VehicleAnalyzer(old)))
    assert analyzer.config == config and analyzer.config.class_thresholds == ()
    assert analyzer.config.event_thresholds.harsh_brake_g == 0.3
    analyzer.set_class_thresholds(StreamSettings(thresholds="car.harsh_brake_g=0.2").class_thresholds())
    assert analyzer.config.event_thresholds.harsh_brake_g == 0.3  # explicit thresholds stay as they are
    analyzer.set_vehicle_class("truck")
    assert pickle.loads(pickle.dumps(analyzer)).config.class_thresholds[0][0] == "car"


@pytest.mark.parametrize("folder", ["state_60ddf97", "state_e14"])
def test_a_savepoint_of_an_earlier_version_continues_with_the_jobs_thresholds(folder: str) -> None:
    """Vehicle and analyzer state as earlier code wrote it (versions 2 and 3, migrated when loaded) goes on under
    a job with thresholds of its own, and keeps them across a pickle."""
    fixture: dict[str, Any] = json.loads((FIXTURES / folder / "continuation.json").read_text())
    state = pickle.loads((FIXTURES / folder / "vehicle_state.pickle").read_bytes())
    waiting = {int(seq): base64.b64decode(body) for seq, body in fixture["waiting"].items()}
    settings = StreamSettings(thresholds="van.harsh_brake_g=0.20,van.harsh_corner_g=0.25")
    for now_ms, body in fixture["continuation"]:
        state, _ = on_message(state, waiting, fixture["routing_key"], base64.b64decode(body), now_ms=now_ms,
                              settings=settings)  # fmt: skip
        state = pickle.loads(pickle.dumps(state))
        assert state.analyzer.config == _config(settings)
    assert state.analyzer.config.event_thresholds == parse_thresholds(settings.thresholds)["van"]
