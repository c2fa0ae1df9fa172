"""RabbitMQ from Debian's rabbitmq-server, run as a private node with the MQTT, management and Prometheus
plugins, and beside it the identity authoriser (gateway/authoriser.py) that the broker consults on every
connection: the two start and stop together."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from fleetsense.errors import StackError
from fleetsense.gateway.identity import PATHS as AUTHORISER_PATHS
from fleetsense.stack import process
from fleetsense.stack.component import ComponentStatus
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.secrets import Credentials, load_or_create
from fleetsense.wire import MAX_MESSAGE_BYTES

# Debian's /usr/sbin wrappers drop to the `rabbitmq` user when run as root; the scripts under
# /usr/lib/rabbitmq/bin run as whoever calls them, so the node's files stay ours.
RABBITMQ_BIN = Path(os.environ.get("FLEETSENSE_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
INSTALL_HINT = "install it with `apt-get install rabbitmq-server` (the README's set-up command does this)"
PLUGINS = (
    "rabbitmq_management",
    "rabbitmq_mqtt",
    "rabbitmq_prometheus",
    "rabbitmq_auth_backend_http",
    "rabbitmq_auth_backend_cache",
)
OPERATOR_USER = "fleetsense-operator"
FLEET_VHOST = "fleet"
# The authoriser's answers depend on the request alone (gateway/identity.py), so a cached answer never goes
# stale; the TTL only bounds the cache's memory (two entries per device and address).
AUTH_CACHE_TTL_MS = 600_000
AUTHORISER_TIMEOUT_MS = 5_000


class AuthChain(enum.Enum):
    """Who the broker asks. CACHED is the stack's; the other two exist to measure what the check costs
    (bench/connect_cost.py) and must not run a fleet: without the authoriser the takeover is open again."""

    CACHED = "internal + cached authoriser"
    UNCACHED = "internal + authoriser"
    INTERNAL_ONLY = "internal only (no client-id check)"

    def authz_backends(self) -> list[str]:
        extra = {"CACHED": ["rabbit_auth_backend_cache"], "UNCACHED": ["rabbit_auth_backend_http"]}
        return ["rabbit_auth_backend_internal", *extra.get(self.name, [])]


def authoriser_port(config: StackConfig) -> int:
    # Next to the Prometheus port until layout.Ports gets a field of its own; free in every port set (tested).
    return config.ports.rabbitmq_prometheus + 1


class RabbitMQ:
    name = "rabbitmq"

    def __init__(
        self,
        config: StackConfig,
        *,
        auth_chain: AuthChain = AuthChain.CACHED,
        listen_address: str = LOOPBACK,
        node_host: str = "localhost",
        cluster_settings: Sequence[str] = (),
    ) -> None:
        """`listen_address`, `node_host` and `cluster_settings` are the single node's unless a cluster host
        (fleetsense/cluster/brokers.py) gives its own: "0.0.0.0" in its namespace (its address and its loopback),
        its host name, and the peer discovery lines."""
        self.config = config
        self.auth_chain = auth_chain
        self.listen_address = listen_address
        self.cluster_settings = tuple(cluster_settings)
        self.home = config.component_dir("rabbitmq")
        self.node = f"{config.name}@{node_host}"
        self.pid_file = self.home / "rabbitmq.pid"
        self.authoriser_pid_file = self.home / "authoriser.pid"
        self.log_dir = config.log_dir("rabbitmq")

    # -- paths and environment -------------------------------------------------------------------

    def main_log(self) -> Path:
        return self.log_dir / f"{self.node}.log"

    def authoriser_log(self) -> Path:
        return self.log_dir / "authoriser.log"

    @property
    def authoriser_url(self) -> str:
        return f"http://{LOOPBACK}:{authoriser_port(self.config)}"

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
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.home / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.home / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.home / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.home / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_DIST_PORT=str(ports.rabbitmq_dist),
            ERL_EPMD_PORT=str(ports.epmd),
            # No scheduler busy-waiting: on a machine the broker shares with Flink and Cassandra, Erlang schedulers
            # spinning for work burn CPU the others need (RabbitMQ's runtime guide recommends this there).
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=" +sbwt none +sbwtdcpu none +sbwtdio none",
            # The Erlang cookie lives in $HOME: a private HOME gives the node and our CLI calls their own.
            HOME=str(self.home),
        )
        if self.listen_address == LOOPBACK:
            # Our own epmd and distribution on loopback: `down` can stop it without touching anyone else's nodes.
            # A cluster host's namespace holds only its own address and loopback, and its peers must reach both.
            env["ERL_EPMD_ADDRESS"] = LOOPBACK
            env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = (
                "-kernel inet_dist_use_interface {127,0,0,1}" + env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
            )
        return env

    def write_config(self) -> None:
        from fleetsense.stack.tls import ensure_local_ca

        ports = self.config.ports
        operator = self.operator
        tls = ensure_local_ca(self.config.tls_dir)
        plain_mqtt = (
            f"mqtt.listeners.tcp.default = {self.listen_address}:{ports.mqtt}"
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
                f"listeners.tcp.default = {self.listen_address}:{ports.amqp}",
                plain_mqtt,
                f"mqtt.listeners.ssl.default = {self.listen_address}:{ports.mqtts}",
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
                # Retained messages are never stored: a device could otherwise fill the broker's retained store
                # (which never shrinks) with up to max_message_size per topic; fleetsense subscribes to nothing.
                "mqtt.retained_message_store = rabbit_mqtt_retained_msg_store_noop",
                # Certificate login: a device that presents a certificate signed by our CA and no username
                # logs in as the certificate's common name (its vehicle id); that user must still exist, so
                # `revoke` locks it out. A username and password, when given, take precedence.
                "mqtt.ssl_cert_login = true",
                "ssl_cert_login_from = common_name",
                # Anything larger is refused at the broker (no PUBACK; logged) before it reaches a queue.
                f"max_message_size = {MAX_MESSAGE_BYTES}",
                f"mqtt.vhost = {FLEET_VHOST}",
                "mqtt.exchange = amq.topic",
                f"management.tcp.ip = {self.listen_address}",
                f"management.tcp.port = {ports.rabbitmq_management}",
                f"prometheus.tcp.ip = {self.listen_address}",
                f"prometheus.tcp.port = {ports.rabbitmq_prometheus}",
                *self._authoriser_settings(),
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
                *self.cluster_settings,
                "",
            ]
        )
        from fleetsense.stack.secrets import write_private

        write_private(self.home / "rabbitmq.conf", conf)
        # A list of authorisation backends (all must allow) exists only in the Erlang-term config.
        authz = ", ".join(self.auth_chain.authz_backends())
        (self.home / "advanced.config").write_text(
            f"[{{rabbit, [{{auth_backends, [{{rabbit_auth_backend_internal, [{authz}]}}]}}]}}].\n"
        )

    def _authoriser_settings(self) -> list[str]:
        """rabbitmq_auth_backend_http asks our authoriser by POST (a GET would put the password of the login
        question in a URL); rabbitmq_auth_backend_cache in front of it caches refusals too: both are pure."""
        paths = [f"auth_http.{name}_path = {self.authoriser_url}/auth/{name}" for name in AUTHORISER_PATHS]
        return [
            "auth_http.http_method = post",
            *paths,
            f"auth_http.request_timeout = {AUTHORISER_TIMEOUT_MS}",
            f"auth_http.connection_timeout = {AUTHORISER_TIMEOUT_MS}",
            "auth_cache.cached_backend = http",
            f"auth_cache.cache_ttl = {AUTH_CACHE_TTL_MS}",
            "auth_cache.cache_refusals = true",
        ]

    # -- lifecycle -------------------------------------------------------------------------------

    def _pid(self) -> int | None:
        pids = process.read_pids(self.pid_file)
        return pids[0] if pids and process.pid_alive(pids[0]) else None

    def _authoriser_pid(self) -> int | None:
        pids = process.read_pids(self.authoriser_pid_file)
        return pids[0] if pids and process.pid_alive(pids[0]) else None

    def healthy(self) -> bool:
        ports = self.config.ports
        mqtt = [ports.mqtts] if self.config.profile == "secure" else [ports.mqtt, ports.mqtts]
        listening = (ports.amqp, *mqtt, ports.rabbitmq_management, ports.rabbitmq_prometheus)
        return (
            all(process.port_accepts(LOOPBACK, port) for port in listening)
            and self._authoriser_answers()
            and self._management_answers()
        )

    def _authoriser_answers(self) -> bool:
        import requests

        try:
            return requests.get(f"{self.authoriser_url}/health", timeout=3).text == "ok"
        except requests.RequestException:
            return False

    def start_authoriser(self) -> None:
        """Start the authoriser unless it runs; the broker refuses every connection while it is down."""
        if self._authoriser_pid() is not None:
            return
        port = authoriser_port(self.config)
        process.ensure_ports_free(
            "the identity authoriser",
            LOOPBACK,
            {"authoriser": port},
            how_to_change="choose other ports with `fleetsense stack up --ports-offset N`",
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "fleetsense.gateway.authoriser", "--port", str(port)]
        pid = process.spawn_detached(
            [*cmd, "--log-file", str(self.authoriser_log())],
            env=os.environ,
            log_file=self.log_dir / "authoriser-startup.log",
        )
        self.home.mkdir(parents=True, exist_ok=True)
        self.authoriser_pid_file.write_text(f"{pid}\n")
        process.wait_until(
            self._authoriser_answers,
            timeout_s=30,
            what="the identity authoriser",
            log_path=self.log_dir / "authoriser-startup.log",
            still_running=lambda: process.pid_alive(pid),
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
        self.start_authoriser()  # first: the broker asks it about every connection, its own health check's too
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
                "prometheus": ports.rabbitmq_prometheus,
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
        authoriser = self._authoriser_pid()
        if authoriser is not None:  # last: the broker may consult it until it has stopped
            process.terminate([authoriser], grace_s=10)
        self.authoriser_pid_file.unlink(missing_ok=True)

    def _best_effort(self, cmd: list[str], timeout_s: float) -> None:
        try:
            subprocess.run(cmd, env=self.env(), capture_output=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass  # stopping continues with signals; `status` shows anything left behind

    def status(self) -> ComponentStatus:
        ports = self.config.ports
        pid, authoriser = self._pid(), self._authoriser_pid()
        pids = tuple(p for p in (pid, authoriser) if p)
        health = "ok" if pid and self.healthy() else ("starting or unhealthy" if pid else "-")
        if pid and not authoriser:
            health = "authoriser down: logins without a cached answer are refused"
        return ComponentStatus(
            name=self.name,
            state="running" if pid and authoriser else ("degraded" if pids else "stopped"),
            pids=pids,
            ports=f"amqp {ports.amqp}, mqtt {ports.mqtt}, mqtts {ports.mqtts}, mgmt {ports.rabbitmq_management}, "
            f"prometheus {ports.rabbitmq_prometheus}, authoriser {authoriser_port(self.config)}",
            health=health,
            log_path=self.main_log(),
        )
