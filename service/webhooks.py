"""The webhooks' storage: the registry (`webhooks`, one partition per fleet), the delivery log
(`webhook_deliveries`, per webhook and UTC day, newest first) and what each webhook has delivered
(`webhook_delivered`, by event key: what makes a delivery idempotent). The dispatcher sees it through
`DeliveryStore`, so its tests can hold the same state in memory."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

from fleetsense.cloud import tables as t
from fleetsense.service.db import Db


@dataclass(frozen=True, kw_only=True)
class Webhook:
    webhook_id: str
    url: str
    kinds: frozenset[str]  # empty: every kind
    secret: str
    created_by: str
    created_at_ms: int
    disabled_at_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.disabled_at_ms is None

    def wants(self, kind: str) -> bool:
        return self.active and (not self.kinds or kind in self.kinds)


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One delivery attempt, as the delivery log keeps it."""

    webhook_id: str
    event_key: str
    attempt: int  # 1 for the first try
    attempted_at_ms: int
    status_code: int | None  # None: no answer (refused, timed out)
    error: str | None  # None: delivered (a 2xx)
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.error is None


class DeliveryStore(Protocol):
    """What the dispatcher reads and writes."""

    async def webhooks(self) -> list[Webhook]: ...

    async def was_delivered(self, webhook_id: str, event_key: str) -> bool: ...

    async def mark_delivered(self, webhook_id: str, event_key: str, at_ms: int) -> None: ...

    async def log(self, attempt: Attempt) -> None: ...


def new_webhook_id() -> str:
    return "wh_" + secrets.token_hex(8)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else round(value.replace(tzinfo=UTC).timestamp() * 1000)


def day_of(at_ms: int) -> date:
    return datetime.fromtimestamp(at_ms / 1000, UTC).date()


_WEBHOOK_COLUMNS = ("webhook_id", "url", "kinds", "secret", "created_by", "created_at", "disabled_at")
_ALL = t.WEBHOOKS.read(*_WEBHOOK_COLUMNS, where=("fleet_id",))
_ONE = t.WEBHOOKS.read(*_WEBHOOK_COLUMNS, where=("fleet_id", "webhook_id"))
_DELIVERED = t.WEBHOOK_DELIVERED.read("delivered_at", where=("webhook_id", "event_key"))
_LOG = t.WEBHOOK_DELIVERIES.read(
    "attempted_at", "event_key", "attempt", "status_code", "error", "duration_ms", where=("webhook_id", "day_bucket")
)
_DELETE = f"DELETE FROM {{ks}}.{t.WEBHOOKS.name} WHERE fleet_id = ? AND webhook_id = ?"


def _webhook(row: object) -> Webhook:
    created = _ms(row.created_at)  # type: ignore[attr-defined]
    return Webhook(
        webhook_id=row.webhook_id,  # type: ignore[attr-defined]
        url=row.url,  # type: ignore[attr-defined]
        kinds=frozenset(row.kinds or ()),  # type: ignore[attr-defined]
        secret=row.secret,  # type: ignore[attr-defined]
        created_by=row.created_by,  # type: ignore[attr-defined]
        created_at_ms=created if created is not None else 0,
        disabled_at_ms=_ms(row.disabled_at),  # type: ignore[attr-defined]
    )


class CassandraWebhooks:
    """One fleet's webhooks in Cassandra: the registry the routes edit and the DeliveryStore the dispatcher uses."""

    def __init__(self, db: Db, fleet_id: str) -> None:
        self.db = db
        self.fleet_id = fleet_id

    # --- the registry ----------------------------------------------------------------------------------------

    async def webhooks(self) -> list[Webhook]:
        return [_webhook(row) for row in await self.db.rows(_ALL, (self.fleet_id,))]

    async def get(self, webhook_id: str) -> Webhook | None:
        rows = await self.db.rows(_ONE, (self.fleet_id, webhook_id))
        return _webhook(rows[0]) if rows else None

    async def put(self, webhook: Webhook) -> None:
        """Create, or replace every column of, one webhook."""
        await self.db.write(
            t.WEBHOOKS.row(
                fleet_id=self.fleet_id,
                webhook_id=webhook.webhook_id,
                url=webhook.url,
                kinds=set(webhook.kinds),
                secret=webhook.secret,
                created_by=webhook.created_by,
                created_at=webhook.created_at_ms,
                disabled_at=webhook.disabled_at_ms,
            )
        )

    async def delete(self, webhook_id: str) -> None:
        # Its delivery log and delivered keys age out with their TTL (30 days).
        await self.db.execute(_DELETE, (self.fleet_id, webhook_id))

    async def deliveries(self, webhook_id: str, day: date, *, most: int = 1_000) -> list[Attempt]:
        """The day's delivery log of one webhook, newest first (the table's clustering order)."""
        rows = await self.db.rows(_LOG, (webhook_id, day), most=most)
        return [
            Attempt(
                webhook_id=webhook_id,
                event_key=row.event_key,
                attempt=row.attempt,
                attempted_at_ms=_ms(row.attempted_at) or 0,
                status_code=row.status_code,
                error=row.error,
                duration_ms=row.duration_ms,
            )
            for row in rows
        ]

    # --- the dispatcher's side -------------------------------------------------------------------------------

    async def was_delivered(self, webhook_id: str, event_key: str) -> bool:
        return bool(await self.db.rows(_DELIVERED, (webhook_id, event_key)))

    async def mark_delivered(self, webhook_id: str, event_key: str, at_ms: int) -> None:
        await self.db.write(t.WEBHOOK_DELIVERED.row(webhook_id=webhook_id, event_key=event_key, delivered_at=at_ms))

    async def log(self, attempt: Attempt) -> None:
        await self.db.write(
            t.WEBHOOK_DELIVERIES.row(
                webhook_id=attempt.webhook_id,
                day_bucket=day_of(attempt.attempted_at_ms),
                attempted_at=attempt.attempted_at_ms,
                event_key=attempt.event_key,
                attempt=attempt.attempt,
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
            )
        )
