"""Webhooks, for admins: register a URL for event kinds, change or disable it, rotate its secret, read its delivery
log, send it a test event (docs/service.md, "Webhooks"). A secret is shown once, when it is made; never listed."""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fleetsense.service.auth import require
from fleetsense.service.roles import Principal, Role
from fleetsense.service.webhook_dispatcher import WebhookDispatcher, send_test
from fleetsense.service.webhook_settings import WebhookSettings
from fleetsense.service.webhook_signing import new_secret
from fleetsense.service.webhook_url import WebhookUrlError, check_url
from fleetsense.service.webhooks import Attempt, CassandraWebhooks, Webhook, new_webhook_id
from pydantic import BaseModel, Field

from fleetsense.event_kinds import EVENT_KINDS

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks", tags=["webhooks"])
# First in every route's parameters: the role is checked before the body is read or the database asked.
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
KNOWN_KINDS = tuple(kind.key for kind in EVENT_KINDS)


class WebhookIn(BaseModel):
    url: str = Field(max_length=2_000, description="http(s) URL the events are POSTed to")
    kinds: list[str] = Field(default_factory=list, max_length=64, description="event kinds; empty: every kind")


class WebhookPatch(BaseModel):
    url: str | None = Field(default=None, max_length=2_000)
    kinds: list[str] | None = Field(default=None, max_length=64)
    enabled: bool | None = None


class WebhookOut(BaseModel):
    id: str
    url: str
    kinds: list[str]
    enabled: bool
    created_by: str
    created_at_ms: int
    disabled_at_ms: int | None


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="the signing secret: shown this once; rotate it to get a new one")


class SecretOut(BaseModel):
    id: str
    secret: str


class AttemptOut(BaseModel):
    event_key: str
    attempt: int
    attempted_at_ms: int
    status_code: int | None
    error: str | None
    duration_ms: int
    delivered: bool


def _out(webhook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=webhook.webhook_id,
        url=webhook.url,
        kinds=sorted(webhook.kinds),
        enabled=webhook.active,
        created_by=webhook.created_by,
        created_at_ms=webhook.created_at_ms,
        disabled_at_ms=webhook.disabled_at_ms,
    )


def _attempt_out(attempt: Attempt) -> AttemptOut:
    fields = dataclasses.asdict(attempt)
    del fields["webhook_id"]
    return AttemptOut(**fields, delivered=attempt.delivered)


def _settings(request: Request) -> WebhookSettings:
    settings = getattr(getattr(request.app.state.context, "settings", None), "webhooks", None)
    return settings if isinstance(settings, WebhookSettings) else WebhookSettings()


def _store(request: Request) -> CassandraWebhooks:
    context = request.app.state.context
    if context is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this API runs without a database")
    return CassandraWebhooks(context.db, context.settings.fleet_id)


Store = Annotated[CassandraWebhooks, Depends(_store)]


async def _refresh_dispatchers(request: Request) -> None:
    # This process's dispatcher takes the change at once; others re-read the registry within refresh_s.
    for component in getattr(request.app.state.context, "components", ()):
        if isinstance(component, WebhookDispatcher):
            try:
                await component.refresh()
            except Exception:  # the change is stored; the dispatcher's own refresh takes it a little later
                log.exception("webhooks: the dispatcher could not re-read the registry after a change")


async def _checked_url(request: Request, url: str) -> str:
    try:
        await check_url(url, allow_link_local=_settings(request).allow_link_local)
    except WebhookUrlError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return url


def _checked_kinds(kinds: list[str]) -> frozenset[str]:
    unknown = sorted(set(kinds) - set(KNOWN_KINDS))
    if unknown:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"no event kind {', '.join(unknown)}: choose from {', '.join(KNOWN_KINDS)} (or none for every kind)",
        )
    return frozenset(kinds)


async def _found(store: CassandraWebhooks, webhook_id: str) -> Webhook:
    webhook = await store.get(webhook_id)
    if webhook is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no webhook {webhook_id!r}: GET /v1/webhooks lists them")
    return webhook


def _now_ms() -> int:
    return round(time.time() * 1000)


@router.post("", response_model=WebhookWithSecret, status_code=status.HTTP_201_CREATED)
async def create_webhook(admin: Admin, body: WebhookIn, request: Request, store: Store) -> WebhookWithSecret:
    webhook = Webhook(
        webhook_id=new_webhook_id(),
        url=await _checked_url(request, body.url),
        kinds=_checked_kinds(body.kinds),
        secret=new_secret(),
        created_by=admin.username,
        created_at_ms=_now_ms(),
    )
    await store.put(webhook)
    await _refresh_dispatchers(request)
    return WebhookWithSecret(**_out(webhook).model_dump(), secret=webhook.secret)


@router.get("", response_model=list[WebhookOut])
async def list_webhooks(_admin: Admin, store: Store) -> list[WebhookOut]:
    return [_out(w) for w in sorted(await store.webhooks(), key=lambda w: w.created_at_ms)]


@router.get("/{webhook_id}", response_model=WebhookOut)
async def get_webhook(_admin: Admin, webhook_id: str, store: Store) -> WebhookOut:
    return _out(await _found(store, webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookOut)
async def change_webhook(
    _admin: Admin, webhook_id: str, body: WebhookPatch, request: Request, store: Store
) -> WebhookOut:
    webhook = await _found(store, webhook_id)
    if body.url is not None:
        webhook = dataclasses.replace(webhook, url=await _checked_url(request, body.url))
    if body.kinds is not None:
        webhook = dataclasses.replace(webhook, kinds=_checked_kinds(body.kinds))
    if body.enabled is not None and body.enabled != webhook.active:
        webhook = dataclasses.replace(webhook, disabled_at_ms=None if body.enabled else _now_ms())
    await store.put(webhook)
    await _refresh_dispatchers(request)
    return _out(webhook)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(_admin: Admin, webhook_id: str, request: Request, store: Store) -> Response:
    await _found(store, webhook_id)
    await store.delete(webhook_id)
    await _refresh_dispatchers(request)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{webhook_id}/secret", response_model=SecretOut)
async def rotate_secret(_admin: Admin, webhook_id: str, request: Request, store: Store) -> SecretOut:
    """A new secret, at once: deliveries from now on are signed with it only (the old one stops working)."""
    webhook = dataclasses.replace(await _found(store, webhook_id), secret=new_secret())
    await store.put(webhook)
    await _refresh_dispatchers(request)
    return SecretOut(id=webhook.webhook_id, secret=webhook.secret)


@router.get("/{webhook_id}/deliveries", response_model=list[AttemptOut])
async def deliveries(
    _admin: Admin,
    webhook_id: str,
    store: Store,
    day: Annotated[date | None, Query(description="UTC day, YYYY-MM-DD (default: today)")] = None,
) -> list[AttemptOut]:
    """The webhook's delivery attempts of one UTC day, newest first."""
    await _found(store, webhook_id)
    when = day or datetime.now(UTC).date()
    return [_attempt_out(a) for a in await store.deliveries(webhook_id, when)]


@router.post("/{webhook_id}/test", response_model=AttemptOut)
async def test_webhook(_admin: Admin, webhook_id: str, request: Request, store: Store) -> AttemptOut:
    """Send one test event (kind "test") now, without retries; the answer is how the attempt went (also logged)."""
    webhook = await _found(store, webhook_id)
    return _attempt_out(await send_test(store, webhook, _settings(request)))
