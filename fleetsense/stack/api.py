"""The service layer's API in the local stack: `fleetsense serve` as a process of its own, started by `stack up` once
the schema and the Cassandra users exist, health-checked on /v1/health and stopped by `stack down`.

Its settings come from the stack: the port (Ports.api), the Cassandra contact and the `service` user's login, the
secret key (generated once into <data>/secrets/api-secret-key, 0600), and in the secure profile TLS with the
stack's server certificate (secrets/tls/server.pem, from the stack's CA) and Secure cookies."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from fleetsense.errors import ConfigError
from fleetsense.stack import process
from fleetsense.stack.component import ComponentStatus
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.secrets import new_password, write_private

SECRET_KEY_FILE = "api-secret-key"
SETTINGS_FILE = "serve.json"


def secret_key(config: StackConfig) -> str:
    """The API's HMAC key (cursors), made once and kept: a restart keeps every cursor a client holds valid."""
    path = config.secrets_dir / SECRET_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path} can be read by other users", hint=f"chmod 600 {path}")
        return key
    key = new_password()
    write_private(path, key + "\n")
    return key


def serve_settings(config: StackConfig, *, host: str | None = None, port: int | None = None) -> Any:
    """ServeSettings for this stack (`host`/`port` given override the stack's)."""
    from fleetsense.service.settings import ServeSettings

    cql_host, cql_port = config.cql_contact
    tls: dict[str, Any] = {}
    if config.profile == "secure":
        from fleetsense.stack.tls import ensure_local_ca

        files = ensure_local_ca(config.tls_dir)
        tls = {"tls_cert": str(files.server_cert), "tls_key": str(files.server_key), "secure_cookies": True}
    return ServeSettings(
        host=host or LOOPBACK,
        port=port or config.ports.api,
        profile=config.profile,
        cassandra_contact=f"{cql_host}:{cql_port}",
        amqp_url=_live_feed_url(config),
        secret_key=secret_key(config),
        **tls,
    )


# Not in the settings file: the secret key (its own file) and the webhooks' settings (their defaults: not settable
# through the stack yet).
NOT_IN_FILE = ("secret_key", "webhooks")


def file_fields(settings: Any) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name not in NOT_IN_FILE}


def settings_from_file(path: Path, config: StackConfig) -> Any:
    """ServeSettings written by the component (every field but the secret key, read from its own file)."""
    from fleetsense.service.settings import ServeSettings

    data = json.loads(path.read_text())
    return ServeSettings(**{**data, "secret_key": secret_key(config)})


def _live_feed_url(config: StackConfig) -> str:
    from fleetsense.stack.manager import service_amqp_url

    return service_amqp_url(config)


def cassandra_login(config: StackConfig) -> Any:
    from fleetsense.stack.cassandra_auth import SERVICE, login

    return login(config, SERVICE)


class Api:
    name = "api"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.home = config.component_dir("api")
        self.pid_file = self.home / "api.pid"
        self.log_dir = config.log_dir("api")

    @property
    def scheme(self) -> str:
        return "https" if self.config.profile == "secure" else "http"

    @property
    def url(self) -> str:
        # "localhost" is in the stack's server certificate, 127.0.0.1 too; the address is the one printed.
        return f"{self.scheme}://{LOOPBACK}:{self.config.ports.api}"

    def main_log(self) -> Path:
        return self.log_dir / "api.log"

    def pids(self) -> list[int]:
        return [pid for pid in process.read_pids(self.pid_file) if process.pid_alive(pid)]

    def healthy(self) -> bool:
        import requests

        verify: str | bool = str(self.config.tls_dir / "ca.pem") if self.scheme == "https" else True
        try:
            answer = requests.get(f"{self.url}/v1/health", timeout=2, verify=verify)
        except requests.RequestException:
            return False
        return answer.status_code == 200

    def start(self) -> None:
        if self.pids() and self.healthy():
            return
        self.stop()
        process.ensure_ports_free(
            "the API", LOOPBACK, {"api": self.config.ports.api}, how_to_change="move the stack with --ports-offset N"
        )
        settings = serve_settings(self.config)
        self.home.mkdir(parents=True, exist_ok=True)
        settings_file = self.home / SETTINGS_FILE
        # 0600: it holds the live feed's URL, with the service's broker password (as secrets/ holds it too).
        fields = file_fields(settings)
        write_private(settings_file, json.dumps(fields, indent=2))
        command = [sys.executable, "-m", "fleetsense.cli", "--data-dir", str(self.config.data_dir)]
        command += ["--profile", self.config.profile]
        if self.config.cassandra is not None:
            command += ["--cassandra", f"{self.config.cassandra.host}:{self.config.cassandra.port}"]
        command += ["serve", "--settings", str(settings_file)]
        pid = process.spawn_detached(command, env=os.environ, log_file=self.main_log())
        self.pid_file.write_text(f"{pid}\n")
        process.wait_until(
            self.healthy,
            timeout_s=min(60.0, self.config.startup_timeout_s),
            what=f"the API on {self.url}",
            log_path=self.main_log(),
            still_running=lambda: process.pid_alive(pid),
        )

    def stop(self) -> None:
        process.terminate(self.pids(), grace_s=10)
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> ComponentStatus:
        pids = self.pids()
        if not pids:
            health = "-"
        else:
            health = f"ok: {self.url}/v1/health answers" if self.healthy() else f"{self.url} not answering"
        return ComponentStatus(
            name=self.name,
            state="running" if pids else "stopped",
            pids=tuple(pids),
            ports=f"api {self.config.ports.api} ({self.scheme})",
            health=health,
            log_path=self.main_log(),
        )
