"""RabbitMQ from Debian's rabbitmq-server, run as a private node with the MQTT and management plugins."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fleetsense.errors import StackError
from fleetsense.stack import process
from fleetsense.stack.component import ComponentStatus
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.secrets import Credentials, load_or_create
from fleetsense.wire import MAX_MESSAGE_BYTES

# Debian's /usr/sbin wrappers drop to the `rabbitmq` user when run as root; the scripts under
# /usr/lib/rabbitmq/bin run as whoever calls them, so the node's files stay ours.
RABBITMQ_BIN = Path(os.environ.get("FLEETSENSE_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
INSTALL_HINT = "install it with `apt-get install rabbitmq-server` (the README's set-up command does this)"
PLUGINS = ("rabbitmq_management", "rabbitmq_mqtt")
OPERATOR_USER = "fleetsense-operator"
FLEET_VHOST = "fleet"


class RabbitMQ:
    name = "rabbitmq"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.home = config.component_dir("rabbitmq")
        self.node = f"{config.name}@localhost"
        self.pid_file = self.home / "rabbitmq.pid"
        self.log_dir = config.log_dir("rabbitmq")

    # -- paths and environment -------------------------------------------------------------------

    def main_log(self) -> Path:
        return self.log_dir / f"{self.node}.log"

    @property
    def operator(self) -> Credentials:
        return load_or_create(self.config.secrets_dir / "rabbitmq-operator.json", OPERATOR_USER)

    @property
    def management_url(self) -> str:
        return f"http://{LOOPBACK}:{self.config.ports.rabbitmq_management}"

    def env(self) -> dict[str, str]:
        ports = self.config.ports
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_CONFIG_FILE=str(self.home / "rabbitmq"),  # the broker appends .conf
            RABBITMQ_CONF_ENV_FILE=str(self.home / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.home / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.home / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_DIST_PORT=str(ports.rabbitmq_dist),
            # Our own epmd on loopback: `down` can stop it without touching anyone else's nodes.
            ERL_EPMD_PORT=str(ports.epmd),
            ERL_EPMD_ADDRESS=LOOPBACK,
            # No scheduler busy-waiting: on a machine the broker shares with Flink and Cassandra, Erlang schedulers
            # spinning for work burn CPU the others need (RabbitMQ's runtime guide recommends this there).
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
            " +sbwt none +sbwtdcpu none +sbwtdio none",
            # The Erlang cookie lives in $HOME: a private HOME gives the node and our CLI calls their own.
            HOME=str(self.home),
        )
        return env

    def write_config(self) -> None:
        from fleetsense.stack.tls import ensure_local_ca

        ports = self.config.ports
        operator = self.operator
        tls = ensure_local_ca(self.config.tls_dir)
        plain_mqtt = (
            f"mqtt.listeners.tcp.default = {LOOPBACK}:{ports.mqtt}"
            if self.config.profile != "secure"
            else "mqtt.listeners.tcp = none"
        )
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.home / "rabbitmq-env.conf").write_text("# fleetsense: no settings from /etc/rabbitmq\n")
        (self.home / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
        conf = "\n".join(
            [
                "# Written by `fleetsense stack up`; edits are overwritten.",
                f"listeners.tcp.default = {LOOPBACK}:{ports.amqp}",
                plain_mqtt,
                f"mqtt.listeners.ssl.default = {LOOPBACK}:{ports.mqtts}",
                f"ssl_options.cacertfile = {tls.ca_cert}",
                f"ssl_options.certfile = {tls.server_cert}",
                f"ssl_options.keyfile = {tls.server_key}",
                # Devices log in with a username and password or with a client certificate: a certificate is
                # verified against our CA when presented, but not required.
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = false",
                "ssl_options.versions.1 = tlsv1.3",
                "ssl_options.versions.2 = tlsv1.2",
                "mqtt.allow_anonymous = false",
                # Certificate login: a device that presents a certificate signed by our CA and no username
                # logs in as the certificate's common name (its vehicle id); that user must still exist, so
                # `revoke` locks it out. A username and password, when given, take precedence.
                "mqtt.ssl_cert_login = true",
                "ssl_cert_login_from = common_name",
                # Anything larger is refused at the broker (no PUBACK; logged) before it reaches a queue.
                f"max_message_size = {MAX_MESSAGE_BYTES}",
                f"mqtt.vhost = {FLEET_VHOST}",
                "mqtt.exchange = amq.topic",
                f"management.tcp.ip = {LOOPBACK}",
                f"management.tcp.port = {ports.rabbitmq_management}",
                # With a default user set the broker never creates `guest` on first boot.
                f"default_user = {operator.username}",
                f"default_pass = {operator.password}",
                "default_user_tags.administrator = true",
                f"default_vhost = {FLEET_VHOST}",
                "loopback_users.guest = true",
                # Connections show up in the management API (and can be closed by `revoke`) within 1 s.
                "collect_statistics_interval = 1000",
                "log.console = false",
                "log.file.level = info",
                "",
            ]
        )
        from fleetsense.stack.secrets import write_private

        write_private(self.home / "rabbitmq.conf", conf)

    # -- lifecycle -------------------------------------------------------------------------------

    def _pid(self) -> int | None:
        pids = process.read_pids(self.pid_file)
        return pids[0] if pids and process.pid_alive(pids[0]) else None

    def healthy(self) -> bool:
        ports = self.config.ports
        mqtt = [ports.mqtts] if self.config.profile == "secure" else [ports.mqtt, ports.mqtts]
        return (
            all(process.port_accepts(LOOPBACK, port) for port in (ports.amqp, *mqtt, ports.rabbitmq_management))
            and self._management_answers()
        )

    def _management_answers(self) -> bool:
        import requests

        operator = self.operator
        try:
            reply = requests.get(
                f"{self.management_url}/api/overview",
                auth=(operator.username, operator.password),
                timeout=3,
            )
        except requests.RequestException:
            return False
        return reply.status_code == 200

    def start(self) -> None:
        if self._pid() is not None:
            if self.healthy():
                return
            process.wait_until(
                self.healthy,
                timeout_s=self.config.startup_timeout_s,
                what="RabbitMQ",
                log_path=self.main_log(),
                still_running=lambda: self._pid() is not None,
            )
            return
        server = RABBITMQ_BIN / "rabbitmq-server"
        if not server.exists():
            raise StackError(f"RabbitMQ is not installed ({server} is missing)", hint=INSTALL_HINT)
        ports = self.config.ports
        process.ensure_ports_free(
            "RabbitMQ",
            LOOPBACK,
            {
                "amqp": ports.amqp,
                "mqtt": ports.mqtt,
                "mqtts": ports.mqtts,
                "management": ports.rabbitmq_management,
                "erlang-distribution": ports.rabbitmq_dist,
            },
            how_to_change="choose other ports with `fleetsense stack up --ports-offset N`",
        )
        self.write_config()
        self.pid_file.unlink(missing_ok=True)
        pid = process.spawn_detached(
            [str(server)], env=self.env(), log_file=self.log_dir / "startup.log", cwd=self.home
        )
        process.wait_until(
            self.healthy,
            timeout_s=self.config.startup_timeout_s,
            what="RabbitMQ",
            log_path=self.log_dir / "startup.log",
            still_running=lambda: process.pid_alive(pid),
        )

    def stop(self) -> None:
        pid = self._pid()
        if pid is not None:
            # `stop <pid file>` returns once the node has really exited and flushed its queues.
            self._best_effort([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "stop", str(self.pid_file)], 60)
            process.terminate([pid], grace_s=15)
        # epmd refuses -kill while any node is registered, so another node sharing the port is never hurt.
        self._best_effort(["epmd", "-port", str(self.config.ports.epmd), "-kill"], 10)

    def _best_effort(self, cmd: list[str], timeout_s: float) -> None:
        try:
            subprocess.run(cmd, env=self.env(), capture_output=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass  # stopping continues with signals; `status` shows anything left behind

    def status(self) -> ComponentStatus:
        ports = self.config.ports
        pid = self._pid()
        health = "ok" if pid and self.healthy() else ("starting or unhealthy" if pid else "-")
        return ComponentStatus(
            name=self.name,
            state="running" if pid else "stopped",
            pids=(pid,) if pid else (),
            ports=f"amqp {ports.amqp}, mqtt {ports.mqtt}, mqtts {ports.mqtts}, mgmt {ports.rabbitmq_management}",
            health=health,
            log_path=self.main_log(),
        )
