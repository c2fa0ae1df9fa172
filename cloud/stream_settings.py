"""What the job does per vehicle (cloud/vehicle_stream.py), as settings declared once (fleetsense.settings_spec): the
`stream` group of the ingest job's settings (cloud/job_settings.py), settable with `fleetsense job submit --set`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from fleetsense.cloud.analytics.events import (
    THRESHOLD_NAMES,
    THRESHOLD_TYPES,
    VEHICLE_CLASSES,
    ClassThresholds,
    EventThresholds,
    differing,
    threshold_allowed,
    threshold_problem,
    with_overrides,
)

from fleetsense import settings_spec
from fleetsense.errors import ConfigError
from fleetsense.settings_spec import setting

WHAT = "job setting"


@dataclass(frozen=True, kw_only=True)
class StreamSettings:
    vehicle_class: str = setting(
        "van",
        group="stream",
        doc="event thresholds of a vehicle without a profile (car, van, truck: docs/analytics.md)",
    )
    gap_wait_ms: int = setting(
        10_000,
        least=0,
        unit="ms",
        group="stream",
        doc="how long a vehicle's batch waits for a missing predecessor before the gap is skipped",
    )
    max_waiting: int = setting(
        600,
        least=1,
        unit="batches",
        group="stream",
        doc="batches a vehicle may hold waiting behind a gap; more, and the gap is skipped at once",
    )
    idle_flush_ms: int = setting(
        15_000,
        least=1000,  # timers fire on whole seconds
        unit="ms",
        group="stream",
        # Instead of waiting for a next batch that may come tomorrow.
        doc="a vehicle silent this long (processing time) has its analysis flushed: held-back samples counted, "
        "open events closed",
    )
    # Text, as every setting is a scalar (a settings file, `--set`); parsed and checked when the settings are made.
    thresholds: str = setting(
        "",
        group="stream",
        doc="event thresholds of this job instead of the code's, per vehicle class (docs/analytics.md): "
        '"class.threshold=value" parts, comma-separated, e.g. "van.harsh_brake_g=0.30,truck.harsh_corner_g=0.25"; '
        '"" keeps the code\'s',
    )

    def __post_init__(self) -> None:
        settings_spec.check(self, what=WHAT)
        parse_thresholds(self.thresholds)  # raises ConfigError naming the part

    def class_thresholds(self) -> ClassThresholds:
        """The classes whose thresholds this job changes, with their thresholds (AnalyzerConfig.class_thresholds):
        a value of the job's settings, never module state, as two jobs may share one interpreter."""
        return _class_thresholds(self.thresholds)


_FORMAT = (
    'comma-separated class.threshold=value parts, e.g. "van.harsh_brake_g=0.30,truck.harsh_corner_g=0.25"; the classes'
    f" are {', '.join(sorted(VEHICLE_CLASSES))}, the thresholds {', '.join(THRESHOLD_NAMES)}"
)


# Cached because each new vehicle's settings are made (and so checked) again with its profile's class; the value is
# immutable (a read-only mapping of frozen thresholds), so sharing it between callers is safe.
@lru_cache(maxsize=32)
def parse_thresholds(text: str) -> Mapping[str, EventThresholds]:
    """Every vehicle class's event thresholds under the `thresholds` setting `text`: the code's (VEHICLE_CLASSES,
    left as it is) with the parts' values instead; "" changes none. ConfigError naming the part, with a hint
    listing what is valid, for a part that is not class.threshold=value, an unknown class or threshold, a value
    that is not a number (a whole one for the *_ms thresholds), one out of the threshold's bounds, or a threshold
    set twice."""
    overrides: dict[str, dict[str, float]] = {}
    for part in text.split(",") if text.strip() else ():
        vehicle_class, name, value = _parse_part(part)
        if name in overrides.setdefault(vehicle_class, {}):
            raise ConfigError(
                f"{WHAT} thresholds sets {vehicle_class}.{name} twice (the second time in {part!r})",
                hint="keep one of the two parts",
            )
        overrides[vehicle_class][name] = value
    try:
        return MappingProxyType(with_overrides(overrides))
    except ValueError as exc:  # every part was checked above: this would be a bound the parts do not know
        raise ConfigError(f"{WHAT} thresholds={text!r}: {exc}", hint=f"write {_FORMAT}") from exc


def _parse_part(part: str) -> tuple[str, str, float]:
    """(class, threshold, value) of one part of the `thresholds` setting, each checked."""
    key, equals, text = part.partition("=")
    vehicle_class, dot, name = (piece.strip() for piece in key.partition("."))
    if not equals or not dot:
        problem = (
            "is empty (two commas in a row, or one at the end)" if not part.strip() else "is no class.threshold=value"
        )
        raise ConfigError(f"{WHAT} thresholds: the part {part!r} {problem}", hint=f"write {_FORMAT}")
    if vehicle_class not in VEHICLE_CLASSES:
        raise ConfigError(
            f"{WHAT} thresholds: the part {part!r} names no vehicle class ({vehicle_class!r})",
            hint=f"the classes are {', '.join(sorted(VEHICLE_CLASSES))}",
        )
    if name not in THRESHOLD_NAMES:
        raise ConfigError(
            f"{WHAT} thresholds: the part {part!r} names no threshold ({name!r})",
            hint="the thresholds are " + "; ".join(f"{n}: {threshold_allowed(n)}" for n in THRESHOLD_NAMES),
        )
    kind = THRESHOLD_TYPES[name]
    try:
        value: float = kind(text)
    except ValueError:
        number = "a whole number" if kind is int else "a number"
        raise ConfigError(
            f"{WHAT} thresholds: the part {part!r} gives {name} {text.strip()!r}, which is not {number}",
            hint=f"{name} is {threshold_allowed(name)}",
        ) from None
    out_of_bounds = threshold_problem(name, value)
    if out_of_bounds:
        raise ConfigError(
            f"{WHAT} thresholds: the part {part!r} is out of bounds ({out_of_bounds})",
            hint=f"{name} is {threshold_allowed(name)}",
        )
    return vehicle_class, name, value


@lru_cache(maxsize=32)
def _class_thresholds(text: str) -> ClassThresholds:
    return differing(parse_thresholds(text))
