"""What the job does per vehicle (cloud/vehicle_stream.py), as settings declared once (fleetsense.settings_spec): the
`stream` group of the ingest job's settings (cloud/job_settings.py), settable with `fleetsense job submit --set`."""

from __future__ import annotations

from dataclasses import dataclass

from fleetsense import settings_spec
from fleetsense.settings_spec import setting


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

    def __post_init__(self) -> None:
        settings_spec.check(self, what="job setting")
