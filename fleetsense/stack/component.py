"""What every local-stack component offers to `fleetsense stack up | down | status | logs`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, kw_only=True)
class ComponentStatus:
    name: str
    state: str  # "running", "stopped", "degraded", "external"
    pids: tuple[int, ...]
    ports: str
    health: str
    log_path: Path | None


class Component(Protocol):
    name: str

    def start(self) -> None:
        """Start if not already healthy; return once healthy, raise StackError otherwise."""

    def stop(self) -> None:
        """Stop every process of this component; harmless when nothing runs."""

    def status(self) -> ComponentStatus: ...

    def main_log(self) -> Path: ...
