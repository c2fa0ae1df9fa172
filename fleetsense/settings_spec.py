"""Settings declared once, as frozen descriptions (floor: used by the ingest job's settings, the stream's settings and
the edge's device configuration).

A setting is a field of a frozen dataclass declared with `setting(default, ...)` (or, when required,
`field(metadata=about(...))`): the field gives its name, type and default, the description its bounds, unit, group
and doc. Everything else is derived from the one declaration: the
check of a value (with an error that says what is wrong, what is allowed and what to do), the parsing of
`name=value` text from a command line, and the docs' tables (`markdown_table`). Cross-field rules (a parallelism no
larger than the shard count, a password with a user name) stay code in the dataclass's `__post_init__`.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from fleetsense.errors import ConfigError

REQUIRED: Any = dataclasses.MISSING
_SPEC = "fleetsense.setting"
# Settings are scalars: what TOML, JSON and a command line can each carry without a schema of their own.
SCALARS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


@dataclass(frozen=True, kw_only=True)
class Setting:
    name: str = ""  # the field's name (filled in by `describe`)
    type: type = object  # the field's type (filled in by `describe`)
    default: Any = None  # the field's (filled in by `describe`; REQUIRED when it has none)
    least: float | None = None
    most: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    group: str = ""  # a heading for the docs' table (stream, source, sink, ...)
    settable: bool = True  # from the command line; False for where the job connects and with which secret
    doc: str

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def allowed(self) -> str:
        """The values allowed, as docs and errors word them ("1..1000 Hz", "at least 1", "thread or process")."""
        unit = f" {self.unit}" if self.unit else ""
        if self.choices:
            return " or ".join(self.choices)
        if self.least is not None and self.most is not None:
            return f"{self.least}..{self.most}{unit}"
        if self.least is not None:
            return f"at least {self.least}{unit}"
        if self.most is not None:
            return f"at most {self.most}{unit}"
        return f"any {self.type.__name__}"

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value of the right type, or None."""
        if self.choices:
            return None if value in self.choices else f"{self.name}={value!r}: {self.allowed()}"
        if self.least is not None and value < self.least and self.most is None:
            return f"{self.name}={value!r} is below its least value, {self.least}"
        if (self.least is not None and value < self.least) or (self.most is not None and value > self.most):
            return f"{self.name} must be {self.allowed()}, got {value!r}"
        return None

    def check(self, value: Any, *, what: str) -> None:
        """Raise ConfigError naming the setting, the values allowed and what to do, unless `value` is allowed."""
        problem = self.problem(value)
        if problem:
            default = "" if self.required else f", or leave it out for the default ({self.default!r})"
            raise ConfigError(f"{what} {problem}", hint=f"use {self.allowed()}{default}")

    def parse(self, text: str, *, what: str) -> Any:
        """A value from command-line text, of the setting's type and checked."""
        try:
            if self.type is bool:
                if text.lower() not in ("true", "false"):
                    raise ValueError(text)
                value: Any = text.lower() == "true"
            else:
                value = self.type(text)
        except ValueError as exc:
            raise ConfigError(
                f"{what} {self.name}={text!r} is not a {self.type.__name__}", hint=f"use {self.allowed()}"
            ) from exc
        self.check(value, what=what)
        return value


def setting(
    default: Any,
    *,
    doc: str,
    least: float | None = None,
    most: float | None = None,
    choices: tuple[str, ...] = (),
    unit: str = "",
    group: str = "",
    settable: bool = True,
) -> Any:
    """A dataclass field declared as a setting with a default (`rate_hz: int = setting(100, least=1, doc=...)`)."""
    spec = about(least=least, most=most, choices=choices, unit=unit, group=group, settable=settable, doc=doc)
    return dataclasses.field(default=default, metadata=spec)


def about(
    *,
    doc: str,
    least: float | None = None,
    most: float | None = None,
    choices: tuple[str, ...] = (),
    unit: str = "",
    group: str = "",
    settable: bool = True,
) -> dict[str, Setting]:
    """The description of a setting as field metadata. A required setting is written
    `host: str = field(metadata=about(doc=...))`: a direct `field()` call without a default, so that mypy still
    sees the field as required (it cannot see through a wrapper)."""
    return {_SPEC: Setting(least=least, most=most, choices=choices, unit=unit, group=group, settable=settable, doc=doc)}


def describe(cls: type) -> tuple[Setting, ...]:
    """The settings of a dataclass, in field order, with their names and types (fields not declared with
    `setting` are not settings: nested groups, for instance)."""
    return _describe(cls)


@cache
def _describe(cls: Any) -> tuple[Setting, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(
        dataclasses.replace(f.metadata[_SPEC], name=f.name, type=hints[f.name], default=f.default)
        for f in dataclasses.fields(cls)
        if _SPEC in f.metadata
    )


def check(instance: Any, *, what: str) -> None:
    """Every setting of a dataclass instance is of its type and allowed (call it from `__post_init__`)."""
    for spec in describe(type(instance)):
        value = getattr(instance, spec.name)
        if spec.type is float and type(value) is int:
            value = float(value)
        if not isinstance(value, spec.type) or (isinstance(value, bool) and spec.type is not bool):
            raise ConfigError(f"{what} {spec.name} must be a {spec.type.__name__}, got {value!r}")
        spec.check(value, what=what)


def parse_overrides(
    specs: Iterable[Setting], texts: Mapping[str, str], *, what: str, unknown_hint: str = ""
) -> dict[str, Any]:
    """`name=value` texts (a command line's) as typed, checked values; only settable settings may be named."""
    by_name = {spec.name: spec for spec in specs if spec.settable}
    values: dict[str, Any] = {}
    for name, text in texts.items():
        spec = by_name.get(name)
        if spec is None:
            raise ConfigError(
                f"unknown {what} {name!r}", hint=unknown_hint or f"settable: {', '.join(sorted(by_name))}"
            )
        values[name] = spec.parse(text, what=what)
    return values


def markdown_table(specs: Iterable[Setting]) -> str:
    """A docs table of settings: name, default, allowed values, and what it does."""
    lines = ["| setting | default | allowed | what |", "|---|---|---|---|"]
    for spec in specs:
        default = "(required)" if spec.required else f"`{json.dumps(spec.default)}`"  # as TOML and JSON write it
        doc = spec.doc.replace("|", "\\|")  # a bar inside a table cell would end it
        lines.append(f"| `{spec.name}` | {default} | {spec.allowed()} | {doc} |")
    return "\n".join(lines) + "\n"
