"""Which URLs a webhook may point at (pure, but for resolving a name).

An admin can point a webhook anywhere the API server reaches, so the server would POST to it on their behalf (server
side request forgery). What is allowed, and why: http and https only; any public or private address, since receivers
on the fleet's own network are the common case and only admins register webhooks; never a link-local address
(169.254.0.0/16, fe80::/10), where cloud metadata services hand out credentials, nor an unspecified or multicast one,
unless `allow_link_local` says so. A name is checked against every address it resolves to when it is registered; a
name re-pointed later is not re-checked (docs/service.md, Webhooks)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

SCHEMES = ("http", "https")


class WebhookUrlError(ValueError):
    """A URL a webhook may not use: the message says why and what would do."""


def parse_url(url: str) -> str:
    """The URL's host, after checking its form: http(s), a host, no user:password, at most 2,000 characters."""
    if len(url) > 2_000:
        raise WebhookUrlError("the url is longer than 2,000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port out of range
    except ValueError as exc:
        raise WebhookUrlError(f"{url[:200]!r} is no URL ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise WebhookUrlError(f"{url[:200]!r}: a webhook is delivered over http or https, not {parts.scheme!r}")
    if not parts.hostname:
        raise WebhookUrlError(f"{url[:200]!r} names no host: give one, as in https://hooks.example.com/fleet")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError("a webhook URL holds no user:password: the signature authenticates the sender")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise WebhookUrlError("a webhook URL holds no whitespace or control characters")
    del port
    return parts.hostname


def refused_address(address: str, *, allow_link_local: bool) -> str | None:
    """Why a webhook may not deliver to `address` (an IP literal), or None when it may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        return f"{ip} is an unspecified or multicast address"
    if ip.is_link_local and not allow_link_local:
        return f"{ip} is link-local, where cloud metadata services live (allow it with webhooks.allow_link_local)"
    return None


def check_addresses(url: str, addresses: Iterable[str], *, allow_link_local: bool) -> None:
    for address in addresses:
        if (why := refused_address(address, allow_link_local=allow_link_local)) is not None:
            raise WebhookUrlError(f"{url[:200]!r} reaches {why}")


def ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


async def check_url(url: str, *, allow_link_local: bool) -> None:
    """Raise WebhookUrlError for a URL a webhook may not use; resolves a name (without blocking the loop)."""
    import asyncio
    import socket

    host = parse_url(url)
    literal = ip_literal(host)
    if literal is not None:
        check_addresses(url, [literal], allow_link_local=allow_link_local)
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode (a label over 63 characters)
        raise WebhookUrlError(f"{host!r} does not resolve ({exc}): give a name this server can reach") from None
    check_addresses(url, [str(info[4][0]) for info in infos], allow_link_local=allow_link_local)
