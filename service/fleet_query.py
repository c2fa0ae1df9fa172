"""The read API's query parameters as values, and the partitions a time range covers (pure: no I/O).

Times are ms since 1970 UTC; a range is [from_ms, to_ms). Each check raises `QueryError` with a message saying what
is wrong and what to send instead (routes answer 400 with it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from fleetsense import event_kinds

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DEFAULT_SPAN_MS = DAY_MS  # no `from`: the last 24 h
MAX_SPAN_DAYS = 31
MAX_SPAN_MS = MAX_SPAN_DAYS * DAY_MS
MIN_LIMIT, MAX_LIMIT, DEFAULT_LIMIT = 1, 1_000, 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The years a timestamp column holds and a person means: anything outside is a typo (ms given as s, or µs).
_EARLIEST_MS, _LATEST_MS = 0, 253_402_300_799_999  # 1970-01-01 .. 9999-12-31


class QueryError(ValueError):
    """A query parameter that is wrong; the message says how to fix it."""


@dataclass(frozen=True)
class TimeRange:
    from_ms: int
    to_ms: int  # exclusive


def parse_time(text: str, name: str) -> int:
    """ISO 8601 (a time without a zone is UTC) or whole ms since 1970, as ms since 1970."""
    text = text.strip()
    digits = text.removeprefix("-")
    if digits.isascii() and digits.isdigit():
        if len(digits) > 16:
            raise QueryError(f"{name}={text[:60]!r} is too large: send ms since 1970 or ISO 8601")
        value = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise QueryError(
                f"{name}={text[:60]!r} is no time: send ISO 8601 (2026-12-06T13:00:00Z) or ms since 1970"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = (moment - _EPOCH) // timedelta(milliseconds=1)
    if not _EARLIEST_MS <= value <= _LATEST_MS:
        raise QueryError(f"{name}={text[:60]!r} is outside 1970..9999: send ms since 1970 (not s or µs) or ISO 8601")
    return value


def time_range(from_text: str | None, to_text: str | None, *, now_ms: int) -> TimeRange:
    """[from, to): `to` defaults to now, `from` to 24 h before `to`; at most 31 days."""
    to_ms = parse_time(to_text, "to") if to_text is not None else now_ms
    from_ms = parse_time(from_text, "from") if from_text is not None else to_ms - DEFAULT_SPAN_MS
    if to_ms <= from_ms:
        raise QueryError(f"from ({iso(from_ms)}) must be before to ({iso(to_ms)})")
    if to_ms - from_ms > MAX_SPAN_MS:
        raise QueryError(
            f"from {iso(from_ms)} to {iso(to_ms)} is over {MAX_SPAN_DAYS} days: ask for a shorter range (one request"
            " per month)"
        )
    return TimeRange(max(from_ms, _EARLIEST_MS), to_ms)


def check_kind(kind: str | None) -> str | None:
    if kind is not None and kind not in event_kinds.BY_KEY:
        raise QueryError(f"kind={kind[:60]!r} is no event kind: choose one of {', '.join(event_kinds.BY_KEY)}")
    return kind


def check_limit(limit: int) -> int:
    if not MIN_LIMIT <= limit <= MAX_LIMIT:
        raise QueryError(f"limit={limit} is out of range: ask for {MIN_LIMIT} to {MAX_LIMIT} items a page")
    return limit


def iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


def ms_of(moment: datetime) -> int:
    """A naive UTC datetime from the driver (a timestamp column) as ms since 1970."""
    return (moment.replace(tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


def utc(moment: datetime) -> datetime:
    """A naive UTC datetime from the driver, with its zone said."""
    return moment.replace(tzinfo=UTC)


def utc_of_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def day_of(ms: int) -> date:
    return (_EPOCH + timedelta(milliseconds=ms)).date()


def hours_newest_first(span: TimeRange) -> list[tuple[date, int]]:
    """The (UTC day, hour of day) partitions of fleet_events that [from, to) touches, newest first."""
    first = span.from_ms - span.from_ms % HOUR_MS
    last = (span.to_ms - 1) - (span.to_ms - 1) % HOUR_MS
    return [(day_of(h), (h // HOUR_MS) % 24) for h in range(last, first - 1, -HOUR_MS)]


def days_newest_first(from_ms: int, to_ms: int) -> list[date]:
    """The UTC days that [from_ms, to_ms) touches, newest first (the day partitions of vehicle_events)."""
    first = from_ms - from_ms % DAY_MS
    last = (to_ms - 1) - (to_ms - 1) % DAY_MS
    return [day_of(d) for d in range(last, first - 1, -DAY_MS)]
