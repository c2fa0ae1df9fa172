"""The AMQP source's record envelope and settings, without pyflink or a broker."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
from typing import Any

import pytest
from fleetsense.cloud.amqp_source import AmqpSourceSettings, split_envelope

from fleetsense.errors import ConfigError


def envelope(routing_key: str, body: bytes) -> bytes:
    """The layout the Java AmqpEnvelope.encode writes, spelled out independently."""
    key = routing_key.encode("utf-8")
    return struct.pack(">H", len(key)) + key + body


def settings(**overrides: Any) -> AmqpSourceSettings:
    values: dict[str, Any] = {
        "host": "localhost",
        "port": 5672,
        "virtual_host": "fleet",
        "username": "flink",
        "password": "s3cret",
        "queue": "telemetry",
        "heartbeat_s": 5,
    }
    values.update(overrides)
    return AmqpSourceSettings(**values)


def test_split_returns_routing_key_and_body() -> None:
    assert split_envelope(envelope("fleet.dev42.telemetry", b"\x00\x01payload")) == (
        "fleet.dev42.telemetry",
        b"\x00\x01payload",
    )


def test_exact_bytes_of_a_known_record() -> None:
    assert split_envelope(b"\x00\x03a.b\xff") == ("a.b", b"\xff")


def test_empty_routing_key_and_empty_body() -> None:
    assert split_envelope(b"\x00\x00") == ("", b"")


def test_non_ascii_routing_key_and_long_key() -> None:
    key = "flotte.fahrzeug-ä.telemetrie" + "x" * 300  # > 255 bytes: the length prefix is really 16-bit
    assert split_envelope(envelope(key, b"b")) == (key, b"b")


def test_accepts_bytearray_and_memoryview_and_returns_bytes() -> None:
    raw = envelope("k", b"body")
    records: list[Any] = [bytearray(raw), memoryview(raw)]
    for record in records:
        key, body = split_envelope(record)
        assert (key, body) == ("k", b"body")
        assert type(body) is bytes


@pytest.mark.parametrize("record", [b"", b"\x00"])
def test_too_short_for_the_length_prefix(record: bytes) -> None:
    with pytest.raises(ValueError, match="too short"):
        split_envelope(record)


def test_truncated_routing_key() -> None:
    with pytest.raises(ValueError, match="5 bytes announced, only 3 present"):
        split_envelope(b"\x00\x05abc")


def test_routing_key_not_utf8() -> None:
    with pytest.raises(ValueError, match="not valid UTF-8"):
        split_envelope(b"\x00\x02\xc3\x28body")


def test_importing_does_not_import_pyflink() -> None:
    # Run in a fresh interpreter: this test session may have imported pyflink already.
    code = "import sys, fleetsense.cloud.amqp_source as m; m.split_envelope(b'\\0\\0'); print('pyflink' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_settings_defaults_and_repr_hides_password() -> None:
    s = settings()
    assert (s.prefetch, s.connection_name) == (1000, "fleetsense-flink")
    assert (s.ack_after_checkpoint, s.tls) == (True, False)
    assert "s3cret" not in repr(s)
    assert "password='***'" in repr(s)
    assert "queue='telemetry'" in repr(s)


def test_settings_are_keyword_only_and_frozen() -> None:
    make: Any = AmqpSourceSettings
    with pytest.raises(TypeError):
        make("localhost", 5672, "/", "u", "p", "q")
    frozen: Any = settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        frozen.queue = "other"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"prefetch": 0}, "prefetch 0"),
        ({"prefetch": 70000}, "prefetch 70000"),
        ({"port": 0}, "port 0"),
        ({"queue": ""}, "queue is empty"),
    ],
)
def test_settings_reject_bad_values(override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**override)
