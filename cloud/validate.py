"""Validation of one incoming message: either a decoded batch or the reason it was rejected."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fleetsense.cloud.decode import DecodedBatch, decode_batch

from fleetsense.errors import FleetsenseError
from fleetsense.ids import vehicle_from_routing_key


@dataclass(frozen=True)
class Verdict:
    batch: DecodedBatch | None
    reason: str | None


def check_message(routing_key: str, body: bytes) -> Verdict:
    try:
        vehicle = vehicle_from_routing_key(routing_key)
    except (ValueError, FleetsenseError) as exc:
        return Verdict(None, f"bad routing key: {exc}")
    try:
        batch = decode_batch(body)
    except FleetsenseError as exc:
        return Verdict(None, f"undecodable: {exc.message}")
    # The routing key is what the broker authenticated; a payload claiming another vehicle is forged.
    if batch.header.vehicle_id != vehicle:
        return Verdict(None, f"payload names vehicle {batch.header.vehicle_id!r} but arrived on {vehicle!r}'s topic")
    if not np.isfinite(batch.values_si).all():
        return Verdict(None, "non-finite scale")
    return Verdict(batch, None)
