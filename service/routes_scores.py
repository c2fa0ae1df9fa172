"""Scorecards and leaderboards: a driver's or a vehicle's counts, driving time and score per UTC day, ISO week or
month (and the periods before it, for a score over time), and every driver or vehicle of the fleet ranked, with the
trend against the previous period. The rules are service/scorecard.py's; this module reads what they need."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fleetsense.service import analytics_reads as reads
from fleetsense.service import scorecard as sc
from fleetsense.service.assignment_store import driver_assignments, vehicle_assignments
from fleetsense.service.attribution import Assignment
from fleetsense.service.auth import require
from fleetsense.service.db import Db
from fleetsense.service.roles import Role
from pydantic import BaseModel, Field

router = APIRouter(tags=["scores"])

MAX_SERIES = 31
_SERIES = Query(1, ge=1, le=MAX_SERIES, description="this many periods, ending with the one holding `at`")
_PERIOD = Query(sc.Period.DAY, description="day, week (ISO, from Monday) or month, in UTC")
_AT = Query(None, description="a day of the period (YYYY-MM-DD, UTC; default today)")


class Scorecard(BaseModel):
    first_day: date
    last_day: date
    event_counts: dict[str, int] = Field(description="per counted kind, dismissed events left out")
    driving_s: float
    harsh_events: int = Field(description="events of the kinds the score weighs")
    events_per_hour: float | None = Field(description="harsh events per hour of driving (null: no driving)")
    score: float = Field(description="driver_score of the period's counts and driving time, 0-100")


class ScorecardSeries(BaseModel):
    subject: str = Field(description="driver or vehicle")
    id: str
    period: sc.Period
    periods: list[Scorecard] = Field(description="oldest first; the last holds `at`")


class LeaderboardRow(BaseModel):
    rank: int
    id: str
    name: str | None = None
    scorecard: Scorecard
    previous_score: float | None = Field(description="the previous period's score (null: no driving then)")
    trend: float | None = Field(description="score points gained since the previous period (null: either undriven)")


class Leaderboard(BaseModel):
    subject: str
    period: sc.Period
    first_day: date
    last_day: date
    rows: list[LeaderboardRow] = Field(description="best score first; those without driving last")


def _at(at: date | None) -> date:
    """The day asked for (today by default), within the years a period and the ones before it can reach."""
    day = at or datetime.now(UTC).date()
    if not 1971 <= day.year <= 9000:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"at={day} is out of range: give a day between 1971 and 9000")
    return day


def _card(first: date, last: date, tally: sc.Tally) -> Scorecard:
    per_hour = tally.events_per_hour
    return Scorecard(
        first_day=first,
        last_day=last,
        event_counts=tally.counts,
        driving_s=round(tally.driving_s, 3),
        harsh_events=tally.harsh_events,
        events_per_hour=None if per_hour is None else round(per_hour, 3),
        score=tally.score,
    )


def _minute_rows(vehicle_id: str, rows: list[Any]) -> list[sc.MinuteRow]:
    return [
        sc.MinuteRow(
            vehicle_id=vehicle_id,
            minute_us=reads.to_us(r.minute),
            driving_s=r.driving_s or 0.0,
            event_counts=dict(r.event_counts or {}),
        )
        for r in rows
    ]


async def _vehicle_minutes(
    db: Db, vehicle_id: str, from_us: int, to_us: int
) -> tuple[list[sc.MinuteRow], list[sc.EventRef]]:
    days = _days(from_us, to_us)
    rows, dismissed = await asyncio.gather(reads.minutes(db, vehicle_id, days), reads.dismissed(db, vehicle_id, days))
    return _minute_rows(vehicle_id, rows), [sc.EventRef(vehicle_id, start, kind) for start, kind in dismissed]


def _days(from_us: int, to_us: int) -> list[date]:
    from fleetsense.cloud.store import day_buckets

    return day_buckets(from_us, max(from_us, to_us - 1))


class DriverData:
    """What a driver's scorecards over a span need: their vehicles' minute rows and dismissals over the times they
    held them, and those vehicles' assignments (the minute rule weighs every driver's holding)."""

    def __init__(self) -> None:
        self.minutes: list[sc.MinuteRow] = []
        self.dismissed: list[sc.EventRef] = []
        self.keep: dict[str, list[Assignment]] = {}

    def tally(self, driver_id: str, first: date, last: date) -> sc.Tally:
        from_us, to_us = sc.span_us(first, last)
        return sc.minutes_tally(
            self.minutes, self.dismissed, keep=self.keep, driver_id=driver_id, from_us=from_us, to_us=to_us
        )


async def _driver_data(db: Db, driver_id: str, from_us: int, to_us: int) -> DriverData:
    data = DriverData()
    held: dict[str, tuple[int, int]] = {}
    for a in await driver_assignments(db, driver_id):
        lo, hi = max(a.valid_from_us - sc.MINUTE_US, from_us), min(a.end_us + sc.MINUTE_US, to_us)
        if lo < hi:
            was = held.get(a.vehicle_id)
            held[a.vehicle_id] = (lo, hi) if was is None else (min(was[0], lo), max(was[1], hi))
    for vehicle_id, (lo, hi) in held.items():
        (minutes, dismissed), assignments = await asyncio.gather(
            _vehicle_minutes(db, vehicle_id, lo, hi), vehicle_assignments(db, vehicle_id)
        )
        data.minutes += minutes
        data.dismissed += dismissed
        data.keep[vehicle_id] = assignments
    return data


async def _vehicle_tallies(db: Db, vehicle_id: str, spans: list[tuple[date, date]]) -> list[sc.Tally]:
    first, last = spans[0][0], spans[-1][1]
    rows, dismissed = await asyncio.gather(
        reads.daily_scores(db, vehicle_id, first, last),
        reads.dismissed(db, vehicle_id, _days(*sc.span_us(first, last))),
    )
    days = [(reads.day_of(r.day_bucket), dict(r.event_counts or {}), r.driving_s or 0.0) for r in rows]
    refs = [sc.EventRef(vehicle_id, start, kind) for start, kind in dismissed]
    return [sc.days_tally([d for d in days if lo <= d[0] <= hi], refs) for lo, hi in spans]


@router.get("/drivers/{driver_id}/scorecard", response_model=ScorecardSeries)
async def driver_scorecard(
    request: Request,
    driver_id: str,
    period: sc.Period = _PERIOD,
    at: date | None = _AT,
    series: int = _SERIES,
    _: object = Depends(require(Role.VIEWER)),
) -> ScorecardSeries:
    """The driver's scorecard for the period holding `at` (and the `series - 1` periods before it): the minute rows
    of the vehicles they held, each minute theirs when they held the vehicle for most of it."""
    context = request.app.state.context
    if await reads.driver(context.db, context.settings.fleet_id, driver_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no driver {driver_id!r}: list the fleet's drivers")
    spans = sc.periods_back(period, _at(at), series)
    data = await _driver_data(context.db, driver_id, *_span(spans))
    cards = [_card(lo, hi, data.tally(driver_id, lo, hi)) for lo, hi in spans]
    return ScorecardSeries(subject="driver", id=driver_id, period=period, periods=cards)


def _span(spans: list[tuple[date, date]]) -> tuple[int, int]:
    return sc.span_us(spans[0][0], spans[-1][1])


@router.get("/vehicles/{vehicle_id}/scorecard", response_model=ScorecardSeries)
async def vehicle_scorecard(
    request: Request,
    vehicle_id: str,
    period: sc.Period = _PERIOD,
    at: date | None = _AT,
    series: int = _SERIES,
    _: object = Depends(require(Role.VIEWER)),
) -> ScorecardSeries:
    """The vehicle's scorecard: the job's daily_scores rows of the period's whole days, its dismissed events taken
    off (with none dismissed, a day's score is the one the job stored)."""
    spans = sc.periods_back(period, _at(at), series)
    tallies = await _vehicle_tallies(request.app.state.context.db, vehicle_id, spans)
    cards = [_card(lo, hi, tally) for (lo, hi), tally in zip(spans, tallies, strict=True)]
    return ScorecardSeries(subject="vehicle", id=vehicle_id, period=period, periods=cards)


def _ranked(subject: str, period: sc.Period, span: tuple[date, date], rows: list[LeaderboardRow]) -> Leaderboard:
    rows.sort(key=lambda r: (r.scorecard.driving_s <= 0, -r.scorecard.score, r.id))
    for rank, row in enumerate(rows, start=1):
        row.rank = rank
    return Leaderboard(subject=subject, period=period, first_day=span[0], last_day=span[1], rows=rows)


def _row(ident: str, name: str | None, span: tuple[date, date], now: sc.Tally, before: sc.Tally) -> LeaderboardRow:
    return LeaderboardRow(
        rank=0,
        id=ident,
        name=name,
        scorecard=_card(span[0], span[1], now),
        previous_score=before.score if before.driving_s > 0 else None,
        trend=sc.trend(now, before),
    )


@router.get("/leaderboards/drivers", response_model=Leaderboard)
async def driver_leaderboard(
    request: Request,
    period: sc.Period = _PERIOD,
    at: date | None = _AT,
    _: object = Depends(require(Role.VIEWER)),
) -> Leaderboard:
    """Every driver of the fleet (retired ones too: their results are kept), ranked by the period's score."""
    context = request.app.state.context
    spans = sc.periods_back(period, _at(at), 2)
    drivers = await reads.drivers(context.db, context.settings.fleet_id)

    async def one(row: Any) -> LeaderboardRow:
        data = await _driver_data(context.db, row.driver_id, *_span(spans))
        before, now = (data.tally(row.driver_id, lo, hi) for lo, hi in spans)
        return _row(row.driver_id, row.name, spans[1], now, before)

    return _ranked("driver", period, spans[1], list(await asyncio.gather(*(one(r) for r in drivers))))


@router.get("/leaderboards/vehicles", response_model=Leaderboard)
async def vehicle_leaderboard(
    request: Request,
    period: sc.Period = _PERIOD,
    at: date | None = _AT,
    _: object = Depends(require(Role.VIEWER)),
) -> Leaderboard:
    """Every vehicle of the fleet (`fleet_vehicles`), ranked by the period's score from the job's daily scores."""
    context = request.app.state.context
    spans = sc.periods_back(period, _at(at), 2)
    vehicle_ids = await reads.fleet_vehicle_ids(context.db, context.settings.fleet_id)

    async def one(vehicle_id: str) -> LeaderboardRow:
        before, now = await _vehicle_tallies(context.db, vehicle_id, spans)
        return _row(vehicle_id, None, spans[1], now, before)

    return _ranked("vehicle", period, spans[1], list(await asyncio.gather(*(one(v) for v in vehicle_ids))))
