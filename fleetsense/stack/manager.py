"""`fleetsense stack up | down | status | logs`: the three infrastructure components together, plus what `up` applies
once they answer (broker topology, service users, Cassandra schema), then the API that needs all of it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetsense.errors import FleetsenseError, StackError
from fleetsense.stack.cassandra import Cassandra
from fleetsense.stack.component import Component, ComponentStatus
from fleetsense.stack.flink import Flink
from fleetsense.stack.health import Check
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.rabbitmq import RabbitMQ
from fleetsense.stack.secrets import Credentials, load_or_create


def components(config: StackConfig) -> list[Component]:
    return [*infrastructure(config), *services(config)]


def infrastructure(config: StackConfig) -> list[Component]:
    """Independent of each other: started in parallel."""
    return [RabbitMQ(config), Cassandra(config), Flink(config)]


def services(config: StackConfig) -> list[Component]:
    """What needs the schema and the Cassandra users applied first: started after them, in order."""
    from fleetsense.stack.api import Api

    return [Api(config)]


def flink_job_credentials(config: StackConfig) -> Credentials:
    from fleetsense.gateway.topology import FLINK_USER

    return load_or_create(config.secrets_dir / "rabbitmq-flink.json", FLINK_USER)


def service_broker_credentials(config: StackConfig) -> Credentials:
    """The API's broker user (the live feed's reader), its password generated once under the secrets."""
    from fleetsense.gateway.topology import SERVICE_USER

    return load_or_create(config.secrets_dir / "rabbitmq-service.json", SERVICE_USER)


def service_amqp_url(config: StackConfig) -> str:
    """The URL `fleetsense serve` reads the live feed with (ServeSettings.amqp_url): the fleet's vhost, on loopback."""
    from urllib.parse import quote

    from fleetsense.gateway.topology import FLEET_VHOST

    login = service_broker_credentials(config)
    return (
        f"amqp://{quote(login.username, safe='')}:{quote(login.password, safe='')}@{LOOPBACK}:{config.ports.amqp}"
        f"/{quote(FLEET_VHOST, safe='')}"
    )


def management_client(config: StackConfig):  # type: ignore[no-untyped-def]
    from fleetsense.gateway.management import ManagementClient

    rabbit = RabbitMQ(config)
    operator = rabbit.operator
    return ManagementClient(rabbit.management_url, operator.username, operator.password)


def provision_vehicle(
    config: StackConfig,
    client: Any,
    vehicle_id: str,
    *,
    out_dir: Path | None = None,
    rotate: bool = False,
    tls: bool | None = None,
    client_cert: bool = False,
) -> Path:
    """A broker user for `vehicle_id` and its edge config file `<out_dir>/<vehicle_id>.toml` (mode 0600),
    pointing at this stack's MQTT listener; the agent's state goes beside it in `<out_dir>/<vehicle_id>/`.
    With `client_cert` the device logs in with a certificate from the stack's CA (`<vehicle_id>.pem` and
    `<vehicle_id>-key.pem` beside the config) instead of a password. Returns the config file's path."""
    from fleetsense.device_config import ClockConfig
    from fleetsense.gateway import provision as prov
    from fleetsense.ids import validate_vehicle_id
    from fleetsense.stack.secrets import new_password
    from fleetsense.stack.tls import issue_client_cert

    validate_vehicle_id(vehicle_id)  # before it becomes part of any file name
    # Absolute paths in the config: the agent may run from any working directory.
    path = ((out_dir or config.data_dir / "vehicles") / f"{vehicle_id}.toml").absolute()
    certificate = None
    if client_cert:
        certificate = prov.ClientCertificate(
            cert_file=path.with_name(f"{vehicle_id}.pem"), key_file=path.with_name(f"{vehicle_id}-key.pem")
        )
        issue_client_cert(config.tls_dir, vehicle_id, certificate.cert_file, certificate.key_file)
    use_tls = client_cert or (config.profile == "secure" if tls is None else tls)
    (prov.rotate if rotate else prov.provision)(
        client,
        vehicle_id,
        endpoints=[local_endpoint(config, tls=use_tls)],
        config_path=path,
        state_dir=path.with_suffix(""),
        password=new_password(),
        client_cert=certificate,
        # The config points at this stack on this host, so the agent runs here: its clock is the cloud's clock
        # whatever the kernel says about NTP (a VM without an NTP daemon reports "unsynchronised" for ever, and
        # the agent would hold every batch for [clock] hold_unsynced_s). A real device's config leaves it false.
        clock=ClockConfig(assume_synced=True),
    )
    return path


def local_endpoint(config: StackConfig, *, tls: bool) -> Any:
    """Where this stack's devices connect: MQTT over TLS (checked against the local CA) or plain MQTT."""
    from fleetsense.gateway.provision import BrokerEndpoint

    if tls:
        # "localhost" is in the server certificate; the CA file is the stack's own.
        ca = str((config.tls_dir / "ca.pem").absolute())
        return BrokerEndpoint(host="localhost", mqtt_port=config.ports.mqtts, tls=True, ca_file=ca)
    return BrokerEndpoint(host=LOOPBACK, mqtt_port=config.ports.mqtt)


def up(config: StackConfig, *, say: Callable[[str], None] = print) -> None:
    """Start every component (in parallel: they are independent until all answer), then apply what needs them."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    _record_profile(config)
    if config.profile == "secure":
        restrict_data_dirs(config)
    errors: dict[str, FleetsenseError] = {}

    def start(component: Component) -> None:
        try:
            component.start()
            say(f"  {component.name}: up")
        except FleetsenseError as exc:
            errors[component.name] = exc

    threads = [threading.Thread(target=start, args=(c,), name=f"start-{c.name}") for c in infrastructure(config)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        name, first = next(iter(errors.items()))
        others = "; ".join(f"{n}: {e.message}" for n, e in list(errors.items())[1:])
        raise StackError(
            f"{name} did not come up: {first.message}" + (f" (also {others})" if others else ""),
            hint=first.hint or "read the log, fix the cause, then run `fleetsense stack up` again",
            log_path=first.log_path,
        )
    apply_topology_and_schema(config)
    say("  broker topology and Cassandra schema: applied")
    for component in services(config):
        component.start()
        say(f"  {component.name}: up")
    if config.profile == "secure":
        restrict_data_dirs(config)  # again: the components made their directories while starting


def restrict_data_dirs(config: StackConfig) -> list[Path]:
    """Mode 0700 on the data directory, every directory directly in it (component data, logs, vehicles) and the
    secret and TLS directories: in the secure profile no other local user reads state, logs or keys.
    Returns the directories changed."""
    config.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    candidates = [config.data_dir, *sorted(p for p in config.data_dir.iterdir() if p.is_dir()), config.tls_dir]
    changed = []
    for directory in candidates:
        if directory.is_dir() and directory.stat().st_mode & 0o777 != 0o700:
            directory.chmod(0o700)
            changed.append(directory)
    return changed


def _record_profile(config: StackConfig) -> None:
    recorded = config.profile_file.read_text().strip() if config.profile_file.exists() else None
    if recorded and recorded != config.profile and RabbitMQ(config).status().state == "running":
        raise StackError(
            f"the stack is running with the {recorded!r} profile, not {config.profile!r}",
            hint="run `fleetsense stack down` first; the broker's listeners change only on start",
        )
    config.profile_file.write_text(config.profile + "\n")


def apply_topology_and_schema(config: StackConfig) -> None:
    from fleetsense.gateway import topology

    client = management_client(config)
    topology.apply(client, operator=RabbitMQ(config).operator.username)
    topology.ensure_flink_user(client, flink_job_credentials(config).password)
    topology.ensure_service_user(client, service_broker_credentials(config).password)
    Cassandra(config).apply_schema()  # as its operator, then each component's user and grants


def down(config: StackConfig, *, say: Callable[[str], None] = print) -> None:
    # Reverse order: the job stops consuming before the broker and the database go away.
    for component in reversed(components(config)):
        component.stop()
        say(f"  {component.name}: stopped")


def status(config: StackConfig) -> list[ComponentStatus]:
    return [component.status() for component in components(config)]


def component_healthy(row: ComponentStatus) -> bool:
    return row.state in ("running", "external") and row.health.startswith("ok")


@dataclass(frozen=True, kw_only=True)
class StackHealth:
    """The components' rows and the telemetry path's checks (queue depth, the ingest job's subtasks, checkpoints
    and restarts): healthy only when every component and every check is."""

    rows: list[ComponentStatus]
    title: str
    checks: list[Check]

    @property
    def healthy(self) -> bool:
        return all(check.ok for check in self.checks) and all(component_healthy(row) for row in self.rows)

    def check_lines(self) -> list[str]:
        from fleetsense.stack.health import format_checks

        return format_checks(self.title, self.checks)


def stack_health(config: StackConfig, *, with_components: bool = True) -> StackHealth:
    from fleetsense.stack.health_probe import pipeline_checks

    rows = status(config) if with_components else []
    title, checks = pipeline_checks(config)
    return StackHealth(rows=rows, title=title, checks=checks)


def format_status(rows: list[ComponentStatus]) -> str:
    header = ("COMPONENT", "STATE", "PIDS", "PORTS (on " + LOOPBACK + ")", "HEALTH")
    table = [header] + [(r.name, r.state, ",".join(map(str, r.pids)) or "-", r.ports, r.health) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table]
    logs = [f"  {r.name} log: {r.log_path}" for r in rows if r.log_path]
    return "\n".join([*lines, "", *logs])


def log_path(config: StackConfig, component: str) -> Path:
    for candidate in components(config):
        if candidate.name == component:
            return candidate.main_log()
    names = ", ".join(c.name for c in components(config))
    raise StackError(f"no component named {component!r}", hint=f"choose one of: {names}")


def tail(path: Path, lines: int) -> str:
    if path.is_dir():
        files = sorted(path.glob("*.log"))
        return "\n".join(f"==> {f} <==\n{tail(f, lines)}" for f in files)
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 200 * lines))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log yet at {path})"
    return "\n".join(text.splitlines()[-lines:])
