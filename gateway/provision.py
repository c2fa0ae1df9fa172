"""Per-device broker users: each vehicle logs in as itself, over MQTT only, with its own id as client id, and may
publish only to fleet/<its id>/<kind> for the kinds that exist."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fleetsense.gateway.identity import VEHICLE_TAG
from fleetsense.gateway.management import ManagementClient, ManagementError
from fleetsense.gateway.topology import FLEET_VHOST, MQTT_EXCHANGE

from fleetsense.device_config import BrokerConfig, ClockConfig, EdgeConfig, StorageConfig, render
from fleetsense.endpoints import Endpoint
from fleetsense.ids import TOPIC_KINDS, validate_vehicle_id


def device_topic_pattern(kinds: tuple[str, ...] = TOPIC_KINDS) -> str:
    """The topic permission of a device: its own id, then one of the kinds that exist. The broker substitutes
    the authenticated user name for {username}; never {client_id}, which it does not regex-escape."""
    return rf"^fleet\.{{username}}\.({'|'.join(re.escape(kind) for kind in kinds)})$"


DEVICE_TOPIC_PATTERN = device_topic_pattern()


@dataclass(frozen=True, kw_only=True)
class DeviceLimits:
    """Per-device bounds set at provisioning (user limits, enforced by the broker for every protocol).

    An agent holds one MQTT connection. Its client id is its user name (gateway/identity.py), so a second
    session of the same device replaces the first; the second slot lets a reconnect authenticate while the
    broker has not yet noticed the old, half-dead connection (up to 1.5 keepalives). RabbitMQ 3.10's MQTT plugin
    opens three channels per connection (one at CONNECT, one to clean the session that it leaves open, one for
    QoS 1 publishing; measured, and checked by an integration test): a lower channel limit closes the device's
    connection at its first QoS 1 PUBLISH."""

    max_connections: int = 2
    channels_per_connection: int = 3

    @property
    def max_channels(self) -> int:
        return self.max_connections * self.channels_per_connection


class DeviceAdmin(Protocol):
    """What granting a device needs of the management client (a bulk provisioner passes its own)."""

    def put_user(self, username: str, password: str | None, tags: str = "") -> None: ...
    def put_permissions(self, vhost: str, username: str, *, configure: str, write: str, read: str) -> None: ...
    def put_topic_permissions(self, vhost: str, username: str, *, exchange: str, write: str, read: str) -> None: ...
    def put_user_limits(self, username: str, *, max_connections: int, max_channels: int) -> None: ...


def grant_device(
    client: DeviceAdmin, vehicle_id: str, password: str | None, limits: DeviceLimits = DeviceLimits()
) -> None:
    """A device's broker user, permissions and limits: the one definition of what a device may do (`provision`
    and the simulator's bulk provisioning both call it). `password=None`: certificate login only."""
    validate_vehicle_id(vehicle_id)
    client.put_user(vehicle_id, password, tags=VEHICLE_TAG)
    # MQTT publishing needs write on the exchange only; no queue of its own, no reads.
    client.put_permissions(FLEET_VHOST, vehicle_id, configure="^$", write=f"^{re.escape(MQTT_EXCHANGE)}$", read="^$")
    client.put_topic_permissions(FLEET_VHOST, vehicle_id, exchange=MQTT_EXCHANGE, write=DEVICE_TOPIC_PATTERN, read="^$")
    client.put_user_limits(vehicle_id, max_connections=limits.max_connections, max_channels=limits.max_channels)


@dataclass(frozen=True, kw_only=True)
class BrokerEndpoint:
    host: str
    mqtt_port: int
    tls: bool = False
    ca_file: str = ""  # the CA the device must trust (TLS only)


def broker_endpoints(endpoints: Sequence[BrokerEndpoint]) -> tuple[tuple[Endpoint, ...], BrokerEndpoint]:
    """The endpoints a device config lists (the nodes of one cluster, tried in failover), and the one whose TLS
    settings they all share: one device config has one TLS setting and one CA for all of its brokers."""
    if not endpoints:
        raise ManagementError("no broker endpoint to provision the device for", hint="give at least one")
    first = endpoints[0]
    for other in endpoints[1:]:
        if (other.tls, other.ca_file) != (first.tls, first.ca_file):
            raise ManagementError(
                f"broker endpoints {first.host}:{first.mqtt_port} and {other.host}:{other.mqtt_port} differ in TLS"
                " or CA",
                hint="a device uses one TLS setting and one CA for all of its brokers",
            )
    listed = tuple(Endpoint(e.host, e.mqtt_port) for e in endpoints)
    if len({e.key for e in listed}) < len(listed):
        raise ManagementError(f"a broker endpoint is listed twice: {', '.join(map(str, listed))}")
    return listed, first


@dataclass(frozen=True, kw_only=True)
class ClientCertificate:
    """A device certificate (common name = vehicle id) and its key, already issued by the operator's CA."""

    cert_file: Path
    key_file: Path


DEVICE_CLOCK = ClockConfig()  # a device's own clock: batches held until the kernel says it is synchronised


def provision(
    client: ManagementClient,
    vehicle_id: str,
    *,
    endpoints: Sequence[BrokerEndpoint],
    config_path: Path,
    state_dir: Path,
    password: str,
    client_cert: ClientCertificate | None = None,
    limits: DeviceLimits = DeviceLimits(),
    clock: ClockConfig = DEVICE_CLOCK,
) -> EdgeConfig:
    """The device's broker user, its permissions and limits, and its edge config file listing `endpoints` (one
    broker, or the nodes of a cluster the agent fails over between). With `client_cert` the device logs in with
    the certificate only: its user gets no password at all."""
    validate_vehicle_id(vehicle_id)
    listed, endpoint = broker_endpoints(endpoints)
    if client_cert and not endpoint.tls:
        raise ManagementError("certificate login needs the TLS listener", hint="provision with TLS")
    grant_device(client, vehicle_id, None if client_cert else password, limits)
    # One broker is written as host and port, so its config stays readable by agents that predate endpoints.
    single = len(listed) == 1
    config = EdgeConfig(
        vehicle_id=vehicle_id,
        broker=BrokerConfig(
            host=endpoint.host if single else "",
            port=endpoint.mqtt_port,
            endpoints=() if single else listed,
            username=vehicle_id,
            password="" if client_cert else password,
            tls=endpoint.tls,
            ca_file=endpoint.ca_file,
            client_cert_file=str(client_cert.cert_file) if client_cert else "",
            client_key_file=str(client_cert.key_file) if client_cert else "",
        ),
        storage=StorageConfig(state_dir=str(state_dir)),
        clock=clock,
    )
    config_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(render(config))
    os.chmod(config_path, 0o600)  # an existing file keeps its old mode through O_CREAT
    return config


def revoke(client: ManagementClient, vehicle_id: str) -> int:
    """Delete the device's user (and with it its permissions) and close its open connections, which would
    otherwise stay authenticated. Returns the number of connections closed."""
    validate_vehicle_id(vehicle_id)
    client.delete_user(vehicle_id)
    return client.close_connections_of(vehicle_id, reason=f"vehicle {vehicle_id} revoked")


def rotate(
    client: ManagementClient,
    vehicle_id: str,
    *,
    endpoints: Sequence[BrokerEndpoint],
    config_path: Path,
    state_dir: Path,
    password: str,
    client_cert: ClientCertificate | None = None,
    clock: ClockConfig = DEVICE_CLOCK,
) -> EdgeConfig:
    """A new secret for an existing device: an old password stops working at once and open connections are
    closed. (An old client certificate stays valid until it expires: the local CA publishes no revocation list.
    Use `revoke` and provision again under a new vehicle id to lock a certificate out at once.)"""
    validate_vehicle_id(vehicle_id)
    if not client.user_exists(vehicle_id):
        raise ManagementError(
            f"vehicle {vehicle_id} is not provisioned", hint=f"use `fleetsense gateway provision {vehicle_id}`"
        )
    config = provision(
        client,
        vehicle_id,
        endpoints=endpoints,
        config_path=config_path,
        state_dir=state_dir,
        password=password,
        client_cert=client_cert,
        clock=clock,
    )
    client.close_connections_of(vehicle_id, reason="credentials rotated")
    return config


def vehicles(client: ManagementClient) -> list[str]:
    return sorted(user["name"] for user in client.users() if VEHICLE_TAG in _tags(user))


def _tags(user: dict[str, Any]) -> list[str]:
    tags = user.get("tags") or []
    return tags.split(",") if isinstance(tags, str) else [str(t) for t in tags]  # 3.10 gives a string
