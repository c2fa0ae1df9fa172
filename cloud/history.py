"""The replay order of a vehicle's retained log (the `batches` table), for reprocessing (docs/reprocessing.md).

Pure: rows in, rows out. A vehicle's log is partitioned by the UTC hour of each batch's first sample; within the
vehicle, the cloud's (epoch, seq) names each batch and orders them as the vehicle sent them. A replay feeds the job
each vehicle's batches in (epoch, seq) order, so the job sees the drive as if nothing had ever been late, lost or
redelivered on the way, and its results are those of an in-order recomputation.

Hours are read one at a time (a vehicle's month does not fit in memory). A batch whose clock stepped back can sit in
an earlier hour than batches sent before it; a bounded look-ahead (the rows of the hour just read) puts those back in
order. A row out of order by more than that is still fed, as late, exactly as the live job would have seen it, and
counted (`late_rows`), never dropped and never reordered further.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, order=True)
class Position:
    """Where a vehicle's replay stands: the (epoch, seq) of the last batch fed. Orders like the log."""

    epoch: int
    seq: int


START = Position(-1, -1)  # before every batch (epochs and seqs are >= 0)


@dataclass(frozen=True)
class LogRow:
    """One `batches` row: the wire message as received, and when it was stored (its write time)."""

    vehicle_id: str
    hour_ms: int
    epoch: int
    seq: int
    message: bytes = field(repr=False)
    stored_ms: int
    sample_count: int = 0

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.seq)


@dataclass
class ReplayCounts:
    rows: int = 0  # fed
    samples: int = 0
    late_rows: int = 0  # fed after a row with a greater (epoch, seq): beyond the look-ahead
    skipped_rows: int = 0  # at or before the vehicle's position: fed before (a resumed replay)


def hours_to_read(hours_ms: Iterable[int], *, since_ms: int, after_hour_ms: int | None) -> list[int]:
    """The hours of a vehicle to read, ascending: from `since_ms`'s hour, or (resuming) from the hour before the one
    the vehicle's last fed batch was in, so the look-ahead sees that hour's neighbours again."""
    first = hour_of(since_ms)
    if after_hour_ms is not None:
        first = max(first, after_hour_ms - HOUR_MS)
    return sorted(hour for hour in set(hours_ms) if hour >= first)


def hour_of(time_ms: int) -> int:
    return time_ms - time_ms % HOUR_MS


def day_of(time_ms: int) -> int:
    return time_ms - time_ms % DAY_MS


def replay_order(
    hours: Iterable[list[LogRow]], *, after: Position = START, counts: ReplayCounts | None = None
) -> Iterator[LogRow]:
    """A vehicle's rows, given hour by hour in ascending hour order, in (epoch, seq) order: rows held from earlier
    hours are released once they sort before everything in the hour just read. Rows at or before `after` were fed
    by an earlier pass and are skipped."""
    counts = counts if counts is not None else ReplayCounts()
    held: list[tuple[Position, int, LogRow]] = []  # a heap; the int keeps equal positions in reading order
    order = 0
    last = after
    for rows in hours:
        fresh = [row for row in rows if row.position > after]
        counts.skipped_rows += len(rows) - len(fresh)
        if fresh:
            low = min(row.position for row in fresh)
            while held and held[0][0] < low:
                row = heapq.heappop(held)[2]
                last = _count(row, last, counts)
                yield row
        for row in fresh:
            heapq.heappush(held, (row.position, order, row))
            order += 1
    while held:
        row = heapq.heappop(held)[2]
        last = _count(row, last, counts)
        yield row


def _count(row: LogRow, last: Position, counts: ReplayCounts) -> Position:
    counts.rows += 1
    counts.samples += row.sample_count
    if row.position < last:
        counts.late_rows += 1
        return last
    return row.position
