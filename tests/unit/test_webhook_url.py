"""Which URLs a webhook may use (service/webhook_url.py): http(s) with a host, never link-local (cloud metadata)
unless allowed; any other input is a WebhookUrlError with a reason, never another exception."""

from __future__ import annotations

import asyncio

import pytest
from fleetsense.service.webhook_url import WebhookUrlError, check_url, parse_url
from hypothesis import given, settings
from hypothesis import strategies as st


def check(url: str, *, allow_link_local: bool = False) -> None:
    asyncio.run(check_url(url, allow_link_local=allow_link_local))


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/fleet", "http://127.0.0.1:8080/hook", "http://10.0.0.7/h", "https://[::1]:9443/x"],
)
def test_http_and_https_urls_of_public_private_and_loopback_hosts_are_allowed(url: str) -> None:
    host = parse_url(url)
    assert host
    if not url.startswith("https://hooks"):  # no name to resolve offline
        check(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("http:///path", "names no host"),
        ("https://user:pw@example.com/", "user:password"),
        ("http://example.com:99999/", "no URL"),
        ("http://exa mple.com/", "whitespace"),
    ],
)
def test_other_schemes_and_malformed_urls_are_refused_saying_why(url: str, why: str) -> None:
    with pytest.raises(WebhookUrlError, match=why):
        parse_url(url)


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/"]
)
def test_link_local_addresses_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(WebhookUrlError, match="link-local"):
        check(url)
    check(url, allow_link_local=True)


@pytest.mark.parametrize("url", ["http://0.0.0.0/", "http://224.0.0.1/", "http://[::]/"])
def test_unspecified_and_multicast_addresses_are_refused(url: str) -> None:
    with pytest.raises(WebhookUrlError, match="unspecified or multicast"):
        check(url, allow_link_local=True)


@pytest.mark.parametrize("url", ["http://no-such-host.invalid/hook", f"http://{'a' * 64}.example/", "http://é..x/"])
def test_a_name_that_does_not_resolve_or_encode_is_refused(url: str) -> None:
    with pytest.raises(WebhookUrlError, match="does not resolve"):
        check(url)


@settings(max_examples=1_000)
@given(st.one_of(st.text(max_size=80), st.from_regex(r"(https?|ftp)://[^/]{0,20}(/.{0,20})?", fullmatch=True)))
def test_any_text_is_either_a_host_or_a_webhook_url_error(url: str) -> None:
    try:
        assert parse_url(url)
    except WebhookUrlError as exc:
        assert str(exc)
