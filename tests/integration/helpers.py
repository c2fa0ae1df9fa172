"""Helpers shared by the integration tests: provisioning throwaway vehicles, waiting on conditions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fleetsense.gateway import provision as prov

from fleetsense.device_config import EdgeConfig
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.secrets import new_password

T = TypeVar("T")


def provision_vehicle(client: Any, stack: StackConfig, vehicle_id: str, tmp_path: Path) -> EdgeConfig:
    return prov.provision(
        client,
        vehicle_id,
        endpoint=prov.BrokerEndpoint(host=LOOPBACK, mqtt_port=stack.ports.mqtt),
        config_path=tmp_path / f"{vehicle_id}.toml",
        state_dir=tmp_path / vehicle_id,
        password=new_password(),
    )


def eventually(
    probe: Callable[[], T], done: Callable[[T], bool], *, timeout_s: float, interval_s: float = 1.0
) -> T:
    """Poll `probe` until `done(result)`; return the last result either way, so the assertion shows it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(interval_s)


def unique_vehicle(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
