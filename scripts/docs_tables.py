"""The docs' tables generated from the declarations (event kinds, vehicle classes' thresholds, score weights, job
settings, device configuration), so a doc never disagrees with the code.

    python scripts/docs_tables.py           # rewrite the generated sections in docs/
    python scripts/docs_tables.py --check   # exit 1 naming the stale sections (tests/unit/test_docs_tables.py)

A generated section sits between `<!-- BEGIN GENERATED name ... -->` and `<!-- END GENERATED name -->`; the text
around it is written by hand.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def event_kinds() -> str:
    from fleetsense import event_kinds

    return event_kinds.markdown_table()


def vehicle_classes() -> str:
    from fleetsense.cloud.analytics.events import DEFAULT_VEHICLE_CLASS, DETECTORS, VEHICLE_CLASSES

    header = ["class", *(f"`{d.kind}`" for d in DETECTORS), "min duration (harsh)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, thresholds in VEHICLE_CLASSES.items():
        label = f"`{name}`" + (" (default)" if name == DEFAULT_VEHICLE_CLASS else "")
        levels = [f"{d.level_g(thresholds):g} g" for d in DETECTORS]
        lines.append("| " + " | ".join([label, *levels, f"{thresholds.min_duration_ms} ms"]) + " |")
    return "\n".join(lines) + "\n"


def score_weights() -> str:
    from fleetsense.event_kinds import SCORE_WEIGHTS

    lines = ["| kind | weight |", "|---|---|"]
    lines += [f"| `{kind}` | {weight:g} |" for kind, weight in SCORE_WEIGHTS.items()]
    return "\n".join(lines) + "\n"


# The job's setting groups, in the order the docs list them.
JOB_GROUPS = {
    "source": "Source: reading the broker's queues",
    "flink": "Flink: checkpoints, restarts, parallelism, Python workers",
    "state": "State: shards and caches",
    "sink": "Sink: Cassandra writes",
    "stream": "Stream: what the job does per vehicle (cloud/stream_settings.py)",
    "connection": "Connection: set by the stack from its configuration and secrets, not settable with --set",
}


def job_settings() -> str:
    from fleetsense.cloud.job_settings import all_settings

    from fleetsense.settings_spec import markdown_table

    specs = all_settings()
    parts = []
    for group, title in JOB_GROUPS.items():
        parts.append(f"**{title}**\n\n" + markdown_table(s for s in specs if s.group == group))
    return "\n".join(parts)


def device_config() -> str:
    from fleetsense.device_config import SECTIONS
    from fleetsense.settings_spec import describe, markdown_table

    return "\n".join(f"**[{name}]**\n\n" + markdown_table(describe(cls)) for name, cls in SECTIONS.items())


def serve_settings() -> str:
    from fleetsense.service.settings import ServeSettings

    from fleetsense.settings_spec import describe, markdown_table

    return markdown_table(describe(ServeSettings))


def route_roles() -> str:
    """Every route of the API and the least role it needs, read from the routes' own `require(...)`."""
    from fleetsense.service.app import create_app
    from fleetsense.service.auth import routes_and_roles

    lines = ["| route | least role |", "|---|---|"]
    for method, path, role in routes_and_roles(create_app(context=None)):
        if method != "HEAD":
            lines.append(f"| `{method} {path}` | {role.label if role else 'none (public)'} |")
    return "\n".join(lines) + "\n"


SECTIONS: dict[tuple[str, str], Callable[[], str]] = {
    ("docs/analytics.md", "event-kinds"): event_kinds,
    ("docs/analytics.md", "vehicle-classes"): vehicle_classes,
    ("docs/analytics.md", "score-weights"): score_weights,
    ("docs/operations.md", "job-settings"): job_settings,
    ("docs/edge-agent.md", "device-config"): device_config,
    ("docs/service.md", "serve-settings"): serve_settings,
    ("docs/service.md", "route-roles"): route_roles,
}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- BEGIN GENERATED {re.escape(name)}\b[^>]*-->\n)(.*?)(<!-- END GENERATED {re.escape(name)} -->)", re.S
    )


def render(text: str, name: str, body: str, where: str) -> str:
    pattern = _pattern(name)
    if not pattern.search(text):
        raise SystemExit(f"{where} has no generated section {name!r}: add its BEGIN/END GENERATED markers")
    return pattern.sub(lambda m: m.group(1) + "\n" + body + "\n" + m.group(3), text, count=1)


def stale(sections: Iterable[tuple[str, str]] = SECTIONS) -> list[str]:
    """The sections whose text in docs/ differs from what the declarations generate."""
    out = []
    for path, name in sections:
        text = (ROOT / path).read_text(encoding="utf-8")
        if render(text, name, SECTIONS[path, name](), path) != text:
            out.append(f"{path}: {name}")
    return out


def write() -> None:
    for path, name in SECTIONS:
        file = ROOT / path
        text = file.read_text(encoding="utf-8")
        file.write_text(render(text, name, SECTIONS[path, name](), path), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale sections (exit 1 if any)")
    args = parser.parse_args()
    if args.check:
        old = stale()
        for section in old:
            print(f"stale: {section} (run python scripts/docs_tables.py)")
        return 1 if old else 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
