"""Helpers shared by the integration tests: provisioning throwaway vehicles, waiting on conditions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fleetsense.device_config import EdgeConfig, load
from fleetsense.stack import manager
from fleetsense.stack.layout import StackConfig

T = TypeVar("T")


def provision_vehicle(client: Any, stack: StackConfig, vehicle_id: str, tmp_path: Path) -> EdgeConfig:
    return load(manager.provision_vehicle(stack, client, vehicle_id, out_dir=tmp_path))


def eventually(probe: Callable[[], T], done: Callable[[T], bool], *, timeout_s: float, interval_s: float = 1.0) -> T:
    """Poll `probe` until `done(result)`; return the last result either way, so the assertion shows it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(interval_s)


def unique_vehicle(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
