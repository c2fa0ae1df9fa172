"""The vehicle analyzer's pickled state (ANALYZER): what VehicleAnalyzer.__getstate__ stores, with every piece below
the analyzer in its own packed, versioned form, and the migrations from the analyzer's earlier layouts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from fleetsense.cloud.analytics.aggregates import AGGREGATES, with_counts
from fleetsense.cloud.analytics.events import DrivingEvent
from fleetsense.cloud.analytics.state_versions import UNRECORDED_KINDS_ORDER, Piece, reorder_counts
from fleetsense.cloud.analytics.trips import TRIP, Stop, Trip

from fleetsense.event_kinds import COUNTED_KINDS

if TYPE_CHECKING:  # the analyzer's module imports this one
    from fleetsense.cloud.analytics.vehicle_analyzer import AnalyzerConfig


class AnalyzerState(NamedTuple):
    """VehicleAnalyzer's pickled state (ANALYZER): every piece below the analyzer in its own packed, versioned
    form, no numpy arrays and no configuration objects below the analyzer (they are rebuilt from the one
    configuration)."""

    config: str | AnalyzerConfig  # the vehicle class when the configuration is that class's default, else itself
    counted_kinds: tuple[str, ...]  # the order of every per-kind counts tuple below (COUNTED_KINDS when written)
    fir: tuple[Any, ...] | None  # lowpass.FIR packed; None while no stream is open
    calibration: tuple[Any, ...]  # calibration.CALIBRATION packed
    driving_events: tuple[Any, ...]  # events.DRIVING_EVENTS packed
    candidates: tuple[Any, ...]  # events.CANDIDATES packed
    frame_active: bool  # driving events come from the calibrated frame (else: candidates)
    trip: tuple[Any, ...]  # trips.TRIP packed
    aggregates: tuple[Any, ...]  # aggregates.AGGREGATES packed
    temperature: tuple[Any, ...]  # environment.EXCURSIONS packed
    last_imu_us: int
    last_active_us: int
    imu_period_us: int
    last_env_us: int
    env_period_us: int
    # What a call produced, emptied when it returns: empty in every state saved between calls.
    events: list[DrivingEvent]
    trips_done: list[Trip]
    stops_done: list[Stop]


# DRIVING_EVENT_KINDS of the analyzer's version 2 layout (60ddf97), which did not record the order.
_V2_KINDS = UNRECORDED_KINDS_ORDER


def _analyzer_from_v2(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Version 2 (up to issue 14) held the same pieces positionally, none of them versioned: each becomes its
    version 1, which has the same fields in the same order."""
    (config, fir, calibration, detectors, candidates, frame_active, trip, aggregates, temperature,
     *times, events, trips_done, stops_done) = values  # fmt: skip
    open_run, runs, dropped = candidates
    return (
        config,
        _V2_KINDS,
        None if fir is None else (1, *fir),
        (1, *calibration),
        (1, tuple((kind, (1, *run)) for kind, run in detectors)),
        (1, None if open_run is None else (1, *open_run), runs, dropped),
        frame_active,
        (1, *trip),
        (1, *aggregates),
        (1, tuple((side, (1, *run)) for side, run in temperature)),
        *times,
        events,
        trips_done,
        stops_done,
    )


ANALYZER = Piece("vehicle analyzer", AnalyzerState, version=3, migrations={2: _analyzer_from_v2})


def in_todays_kinds(state: AnalyzerState) -> AnalyzerState:
    """A state whose counts were stored in another kinds order (a kind added since): today's order, new kinds 0."""
    kinds = state.counted_kinds
    trip = TRIP.unpack(state.trip)
    aggregates = AGGREGATES.unpack(state.aggregates)

    def in_todays_order(counts: tuple[int, ...]) -> tuple[int, ...]:
        return reorder_counts(counts, kinds)

    minutes = tuple((start, with_counts(totals, in_todays_order)) for start, totals in aggregates.minutes)
    days = tuple((start, (moving_us, reorder_counts(counts, kinds))) for start, (moving_us, counts) in aggregates.days)
    return state._replace(
        counted_kinds=COUNTED_KINDS,
        trip=TRIP.pack(trip._replace(event_counts=reorder_counts(trip.event_counts, kinds))),
        aggregates=AGGREGATES.pack(aggregates._replace(minutes=minutes, days=days)),
    )
