"""Broker endpoints: the list of MQTT brokers a device may connect to (the nodes of one cluster), as written in the
device config's [broker] `endpoints`, parsed with clear errors. Floor: the device config, the gateway that writes
it and the load generator all read endpoints the same way."""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass
from typing import Any

from fleetsense.errors import ConfigError

MAX_ENDPOINTS = 64  # a cluster of more brokers is a configuration mistake, not a fleet
# A DNS name or an IPv4 address; an IPv6 address is written in brackets ("[fd00::11]:1883").
HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
IPV6 = re.compile(r"^[0-9A-Fa-f:.]+$")
SHOWN = reprlib.Repr()  # an entry as an error quotes it: short, whatever was written
SHOWN.maxstring = SHOWN.maxother = 60
FORMS = 'a list of "host:port" strings (or "host", which takes [broker] port) or {host = "...", port = N} tables'


@dataclass(frozen=True, order=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def key(self) -> tuple[str, int]:
        """Two spellings of one broker (case of a DNS name) are the same endpoint."""
        return self.host.lower(), self.port


def parse_endpoints(value: Any, *, default_port: int, where: str) -> tuple[Endpoint, ...]:
    """Endpoints from a TOML value (a list of strings or tables): a ConfigError that names the bad entry and the
    forms allowed, for anything else. Order is kept: with endpoint_order = "listed" it is the order tried."""
    if not isinstance(value, list):
        raise ConfigError(f"{where} endpoints must be {FORMS}, got {SHOWN.repr(value)}")
    if not value:
        raise ConfigError(f"{where} endpoints is empty", hint='list at least one broker, e.g. ["10.77.0.11:1883"]')
    if len(value) > MAX_ENDPOINTS:
        raise ConfigError(f"{where} endpoints lists {len(value)} brokers; at most {MAX_ENDPOINTS}")
    endpoints: list[Endpoint] = []
    seen: dict[tuple[str, int], int] = {}
    for position, entry in enumerate(value, start=1):
        what = f"{where} endpoints entry {position} ({SHOWN.repr(entry)})"
        endpoint = _entry(entry, default_port=default_port, what=what)
        if endpoint.key in seen:
            raise ConfigError(
                f"{where} endpoints lists {endpoint} twice (entries {seen[endpoint.key]} and {position})",
                hint="list each broker once: a repeated one would get a double share of the fleet's reconnects",
            )
        seen[endpoint.key] = position
        endpoints.append(endpoint)
    return tuple(endpoints)


def parse_endpoint_text(text: str, *, default_port: int, where: str) -> tuple[Endpoint, ...]:
    """Endpoints from a command line's comma-separated list ("10.77.0.11:1883,10.77.0.12:1883")."""
    return parse_endpoints([part.strip() for part in text.split(",")], default_port=default_port, where=where)


def _entry(entry: Any, *, default_port: int, what: str) -> Endpoint:
    if isinstance(entry, str):
        host, port = _split(entry, default_port=default_port, what=what)
    elif isinstance(entry, dict):
        unknown = sorted(set(entry) - {"host", "port"})
        if unknown:
            raise ConfigError(f"{what}: unknown key(s) {', '.join(map(str, unknown))}; known: host, port")
        if "host" not in entry:
            raise ConfigError(f"{what}: missing key 'host'")
        host, port = entry["host"], entry.get("port", default_port)
        if not isinstance(host, str):
            raise ConfigError(f"{what}: 'host' must be a string, got {SHOWN.repr(host)}")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    else:
        raise ConfigError(f"{what} is neither a string nor a table", hint=f"endpoints must be {FORMS}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{what}: the port must be a whole number 1..65535, got {SHOWN.repr(port)}")
    if not (HOSTNAME.match(host) or (":" in host and IPV6.match(host))):
        raise ConfigError(
            f"{what}: {SHOWN.repr(host)} is not a host name or an IP address",
            hint="write host:port without a scheme or path (IPv6 in brackets: [fd00::11]:1883)",
        )
    return Endpoint(host, port)


def _split(text: str, *, default_port: int, what: str) -> tuple[str, int | str]:
    """The host and port of "host:port", "host", "[v6]:port" or "[v6]"; the port unchecked (an int, or the text)."""
    if "://" in text:
        raise ConfigError(f"{what}: no scheme", hint='write "host:port"; TLS is [broker] tls = true')
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigError(f"{what}: an IPv6 address is written [address]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise ConfigError(f"{what}: an IPv6 address is written in brackets, [address]:port")
    else:
        host, colon, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if colon else None
    if port_text is None:
        return host, default_port
    return host, int(port_text) if port_text.isascii() and port_text.isdigit() and len(port_text) <= 5 else port_text
