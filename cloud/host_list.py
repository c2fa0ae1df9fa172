"""A comma-separated list of hosts ("10.77.0.11,10.77.0.12,rmq3"): where the job connects on a cluster (its
amqp_host and cassandra_host settings); one host is the single-node form. The connector's Java side
(io.fleetsense.flink.HostList) applies the same rules, so a list accepted here is accepted there."""

from __future__ import annotations

import ipaddress
import re

from fleetsense.errors import ConfigError

# RFC 1123 labels: letters, digits and inner hyphens, at most 63 bytes each.
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def is_host(text: str) -> bool:
    """A host name or an IPv4 address (no port: the port is its own setting)."""
    if re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", text):
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            return False
        return True
    if not text or len(text) > 253 or all(c == "." or c.isdigit() for c in text):
        return False  # "10.0.0" or "999.1.1.1" is a mistyped address, not a name
    return all(_LABEL.fullmatch(label) for label in text.split("."))


def parse_host_list(text: str, *, what: str) -> tuple[str, ...]:
    """The hosts of `text` in their order (the order the job tries them in); a ConfigError names the bad one."""
    if not text.strip():
        raise ConfigError(f"{what} is empty", hint="give a host, or several separated by commas")
    hosts: list[str] = []
    for part in text.split(","):
        host = part.strip()
        if not is_host(host):
            raise ConfigError(
                f"{what} {text!r}: {host!r} is not a host name or an IPv4 address",
                hint="give hosts separated by commas, without ports (e.g. 10.77.0.11,10.77.0.12,10.77.0.13)",
            )
        if host in hosts:
            raise ConfigError(f"{what} {text!r} names {host} twice", hint="give each host once")
        hosts.append(host)
    return tuple(hosts)
