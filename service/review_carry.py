"""Carrying managers' reviews over to a promoted result version (docs/reprocessing.md, "Promote").

A review (`event_reviews`) is keyed like its event: vehicle, day, start time and kind. A version made with other
settings can move an event's start (a lower threshold starts a harsh brake earlier), and the review would then
match nothing: a dismissed false positive would count against its driver again. So at a promote each review of the
replayed days that no longer matches an event of the new version is carried to the new event of the same vehicle and
kind that overlaps the old one most. One that overlaps none (the event is gone) is reported, never guessed.

Pure rule first (`carry`), then its I/O (`carry_reviews`), which the promote runs after the new live job is up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetsense.service.fleet_query import ms_of, utc_of_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Span:
    """An event of one vehicle: its kind and [start, end] in ms."""

    kind: str
    start_ms: int
    end_ms: int

    def overlap_ms(self, other: Span) -> int:
        """How long the two overlap (-1: not at all; 0: they touch, as two instants at the same time do)."""
        return min(self.end_ms, other.end_ms) - max(self.start_ms, other.start_ms)


@dataclass(frozen=True)
class Review:
    """A review as stored, `values` its other columns (state, note, reviewer, driver...), carried unchanged."""

    kind: str
    start_ms: int
    values: tuple[tuple[str, Any], ...] = ()


@dataclass
class Carried:
    moved: list[tuple[Review, Span]] = field(default_factory=list)  # the review and the new event it now names
    kept: int = 0  # its event is in the new version unchanged
    lost: list[Review] = field(default_factory=list)  # no event of its kind overlaps the old one any more


def carry(reviews: Sequence[Review], old: Iterable[Span], new: Iterable[Span]) -> Carried:
    """Pure: one vehicle's reviews against its old and new events (of the same days). A new event already reviewed,
    or claimed by an earlier review here, is not given a second review (the first, by start time, wins)."""
    old_by_key = {(span.kind, span.start_ms): span for span in old}
    new_spans = list(new)
    new_keys = {(span.kind, span.start_ms) for span in new_spans}
    taken = {(review.kind, review.start_ms) for review in reviews if (review.kind, review.start_ms) in new_keys}
    result = Carried()
    for review in sorted(reviews, key=lambda r: (r.start_ms, r.kind)):
        key = (review.kind, review.start_ms)
        if key in new_keys:
            result.kept += 1
            continue
        was = old_by_key.get(key, Span(review.kind, review.start_ms, review.start_ms))
        candidates = [
            span
            for span in new_spans
            if span.kind == review.kind and (span.kind, span.start_ms) not in taken and span.overlap_ms(was) >= 0
        ]
        if not candidates:
            result.lost.append(review)
            continue
        best = max(candidates, key=lambda span: (span.overlap_ms(was), -abs(span.start_ms - was.start_ms)))
        taken.add((best.kind, best.start_ms))
        result.moved.append((review, best))
    return result


# --- I/O ---------------------------------------------------------------------------------------------------------


@dataclass
class CarryReport:
    vehicles: int = 0
    moved: int = 0
    kept: int = 0
    lost: list[str] = field(default_factory=list)  # "vehicle kind start_ms" of each review that matched nothing


def carry_reviews(
    session: Any, main_keyspace: str, old_keyspace: str, new_keyspace: str, *, days: Sequence[Any]
) -> CarryReport:
    """For every vehicle and each of `days` (CQL `date` values): its reviews in the main keyspace against its events
    in the old and the new version; moved reviews are written at their new event's key (the old row stays: it is
    harmless, matching nothing)."""
    from fleetsense.cloud.tables import EVENT_REVIEWS, EVENTS_BY_VEHICLE, VEHICLES

    report = CarryReport()
    columns = [c for c in EVENT_REVIEWS.written_columns if c not in ("vehicle_id", "day_bucket", "start_time", "kind")]
    reviews_cql = (
        f"SELECT start_time, kind, {', '.join(columns)} FROM {main_keyspace}.{EVENT_REVIEWS.name} "
        "WHERE vehicle_id = %s AND day_bucket = %s"
    )
    events_cql = (
        "SELECT kind, start_time, end_time FROM {ks}." + EVENTS_BY_VEHICLE.name + " WHERE vehicle_id = %s"
        " AND day_bucket = %s"
    )
    insert = session.prepare(
        f"INSERT INTO {main_keyspace}.{EVENT_REVIEWS.name} (vehicle_id, day_bucket, start_time, kind, "
        f"{', '.join(columns)}) VALUES ({', '.join('?' * (4 + len(columns)))})"
    )
    for row in session.execute(f"SELECT vehicle_id FROM {main_keyspace}.{VEHICLES.name}"):
        vehicle = row.vehicle_id
        report.vehicles += 1
        for day in days:
            found = list(session.execute(reviews_cql, (vehicle, day)))
            if not found:
                continue
            reviews = [Review(r.kind, ms_of(r.start_time), tuple((c, getattr(r, c)) for c in columns)) for r in found]
            old = [_span(e) for e in session.execute(events_cql.format(ks=old_keyspace), (vehicle, day))]
            new = [_span(e) for e in session.execute(events_cql.format(ks=new_keyspace), (vehicle, day))]
            result = carry(reviews, old, new)
            report.kept += result.kept
            for review, span in result.moved:
                values = dict(review.values)
                key = (vehicle, day, utc_of_ms(span.start_ms), span.kind)
                session.execute(insert, (*key, *(values[c] for c in columns)))
                report.moved += 1
            report.lost += [f"{vehicle} {r.kind} {r.start_ms}" for r in result.lost]
    log.info("reviews carried over: %d moved, %d kept, %d lost", report.moved, report.kept, len(report.lost))
    return report


def _span(row: Any) -> Span:
    return Span(row.kind, ms_of(row.start_time), ms_of(row.end_time) if row.end_time else ms_of(row.start_time))
