"""Broker users for thousands of load vehicles: each gets exactly what `fleetsense gateway provision` grants a
device (gateway.provision.grant_device, the one definition of a device's permissions), in parallel."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fleetsense.gateway.provision import DeviceAdmin, grant_device
from fleetsense.ids import validate_vehicle_id
from fleetsense.stack.secrets import write_private


def provision_fleet(client_factory: Callable[[], DeviceAdmin], passwords: dict[str, str], *, workers: int = 8) -> None:
    """Create (or update) a broker user per vehicle. Each worker thread has its own client (a requests.Session
    is not meant to be shared between threads)."""
    local = threading.local()

    def one(vehicle_id: str) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = client_factory()
        grant_device(client, vehicle_id, passwords[vehicle_id])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, [validate_vehicle_id(v) for v in passwords]))


def fleet_ids(count: int, prefix: str = "load") -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(count)]


def load_credentials(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text())
    return {str(k): str(v) for k, v in data["passwords"].items()}


def save_credentials(path: Path, passwords: dict[str, str]) -> None:
    write_private(path, json.dumps({"passwords": passwords}))
