"""Webhook signatures (service/webhook_signing.py): what a receiver checks holds for every honest delivery and fails
for any change of body, timestamp or signature, or a stale timestamp."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from fleetsense.service.webhook_signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    new_secret,
    signature,
    signed_headers,
    verify,
)
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = 1_800_000_000
BODY = b'{"key":"van-1/1800000000000/harsh_brake"}'


def test_the_signature_is_the_hmac_sha256_of_timestamp_dot_body_in_hex() -> None:
    expected = hmac.new(b"whsec_x", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert signature("whsec_x", NOW, BODY) == expected
    headers = signed_headers("whsec_x", "van-1/1800000000000/harsh_brake", BODY, NOW)
    assert headers[SIGNATURE_HEADER] == f"v1={expected}"
    assert headers[TIMESTAMP_HEADER] == "1800000000"
    assert headers["X-Fleetsense-Event-Key"] == "van-1/1800000000000/harsh_brake"


def test_an_honest_delivery_verifies_with_header_names_in_any_case() -> None:
    headers = signed_headers("s", "k", BODY, NOW)
    assert verify("s", headers, BODY, now_s=NOW + 10) == NOW
    assert verify("s", {k.lower(): v for k, v in headers.items()}, BODY, now_s=NOW) == NOW


def test_a_timestamp_older_or_newer_than_the_tolerance_is_refused() -> None:
    headers = signed_headers("s", "k", BODY, NOW)
    assert verify("s", headers, BODY, now_s=NOW + 300) == NOW
    with pytest.raises(SignatureError, match="301 s off"):
        verify("s", headers, BODY, now_s=NOW + 301)
    with pytest.raises(SignatureError, match="off now"):
        verify("s", headers, BODY, now_s=NOW - 301)


def test_any_offered_v1_signature_may_match_and_other_schemes_are_ignored() -> None:
    good = signature("s", NOW, BODY)
    headers = {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: f"v0={good}, v1={'0' * 64}, v1={good}"}
    assert verify("s", headers, BODY, now_s=NOW) == NOW
    with pytest.raises(SignatureError, match="no v1= signature"):
        verify("s", {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: f"v0={good}"}, BODY, now_s=NOW)


@pytest.mark.parametrize("stamp", [None, "", "-5", "1.5", "١٢٣", " 12"])
def test_a_missing_or_malformed_timestamp_is_refused(stamp: str | None) -> None:
    headers = {SIGNATURE_HEADER: "v1=00"} | ({TIMESTAMP_HEADER: stamp} if stamp is not None else {})
    with pytest.raises(SignatureError, match="unix seconds"):
        verify("s", headers, BODY, now_s=NOW)


def test_secrets_are_long_random_and_distinct() -> None:
    made = {new_secret() for _ in range(1_000)}
    assert len(made) == 1_000
    assert all(s.startswith("whsec_") and len(s) >= 6 + 43 for s in made)


@settings(max_examples=500)
@given(
    secret=st.text(min_size=1, max_size=40),
    body=st.binary(max_size=300),
    stamp=st.integers(min_value=0, max_value=4_000_000_000),
    skew=st.integers(min_value=-300, max_value=300),
)
def test_every_honest_delivery_verifies(secret: str, body: bytes, stamp: int, skew: int) -> None:
    assert verify(secret, signed_headers(secret, "k", body, stamp), body, now_s=stamp + skew) == stamp


@settings(max_examples=1_000)
@given(
    secret=st.text(min_size=1, max_size=40),
    body=st.binary(max_size=300),
    stamp=st.integers(min_value=1_000, max_value=4_000_000_000),
    what=st.sampled_from(["body", "timestamp", "signature", "secret"]),
    data=st.data(),
)
def test_any_tampering_fails(secret: str, body: bytes, stamp: int, what: str, data: st.DataObject) -> None:
    headers = signed_headers(secret, "k", body, stamp)
    other_secret = secret
    if what == "body":
        body = data.draw(st.binary(max_size=300).filter(lambda b: b != body), label="body")
    elif what == "timestamp":
        # Within the tolerance, so only the signature can catch it.
        moved = data.draw(st.integers(min_value=-300, max_value=300).filter(bool), label="moved")
        headers[TIMESTAMP_HEADER] = str(stamp + moved)
    elif what == "signature":
        hex_sig = headers[SIGNATURE_HEADER][3:]
        at = data.draw(st.integers(min_value=0, max_value=63), label="at")
        digit = data.draw(st.sampled_from("0123456789abcdef").filter(lambda d: d != hex_sig[at]), label="digit")
        headers[SIGNATURE_HEADER] = "v1=" + hex_sig[:at] + digit + hex_sig[at + 1 :]
    else:
        other_secret = data.draw(st.text(min_size=1, max_size=40).filter(lambda s: s != secret), label="secret")
    with pytest.raises(SignatureError):
        verify(other_secret, headers, body, now_s=stamp)


@settings(max_examples=300)
@given(headers=st.dictionaries(st.text(max_size=30), st.text(max_size=100), max_size=5), body=st.binary(max_size=50))
def test_arbitrary_headers_never_verify_and_never_raise_anything_else(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(SignatureError):
        verify("s", headers, body, now_s=NOW)


def test_the_receivers_example_in_the_docs_agrees_with_verify() -> None:
    import re
    import time
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "service.md").read_text()
    section = docs[docs.index("## Webhooks") :]
    example = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert example is not None
    namespace: dict[str, object] = {}
    exec(example.group(1), namespace)  # the docs' own code, as a receiver would paste it
    docs_verify = namespace["verify"]
    now = int(time.time())
    headers = signed_headers("whsec_doc", "k", BODY, now)
    assert docs_verify("whsec_doc", headers, BODY) is True  # type: ignore[operator]
    assert docs_verify("whsec_doc", headers, BODY + b" ") is False  # type: ignore[operator]
    assert docs_verify("whsec_other", headers, BODY) is False  # type: ignore[operator]
    stale = signed_headers("whsec_doc", "k", BODY, now - 301)
    assert docs_verify("whsec_doc", stale, BODY) is False  # type: ignore[operator]
