"""Apache Cassandra 5.0 from Maven Central's cassandra-all jars (fleetsense/stack/cassandra_dist.py), run with java
directly on Java 17 from a cassandra.yaml the stack writes.
In the secure profile the node requires a login; its users are in fleetsense/stack/cassandra_auth.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from fleetsense.errors import StackError
from fleetsense.stack import process
from fleetsense.stack.cassandra_auth import (
    OPERATOR,
    bootstrap_operator,
    credentials_file,
    login,
    login_required,
    private_dir,
    provision_users,
    session_as,
)
from fleetsense.stack.cassandra_dist import (
    JAVA17_FLAGS,
    cassandra_version,
    complete,
    data_dir_problem,
    jamm_agent,
    lib_dir,
)
from fleetsense.stack.component import ComponentStatus
from fleetsense.stack.layout import LOOPBACK, StackConfig

LOGBACK_XML = """<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>{log_dir}/system.log</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>{log_dir}/system.log.%i.zip</fileNamePattern>
      <minIndex>1</minIndex><maxIndex>5</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>20MB</maxFileSize>
    </triggeringPolicy>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE" /></root>
</configuration>
"""


def cassandra_yaml(
    config: StackConfig, state_dir: Path, *, address: str = LOOPBACK, seeds: Sequence[str] = (LOOPBACK,)
) -> dict[str, object]:
    """Cassandra 5.0's settings (4.0+ names: durations and sizes carry their units). `address` and `seeds` are the
    single node's loopback unless a ring node (fleetsense/cluster/cassandra_ring.py) gives its own."""
    ports = config.ports
    secure = login_required(config)
    return {
        "cluster_name": f"{config.name} local",
        "num_tokens": 16,
        "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
        "data_file_directories": [str(state_dir / "data")],
        "commitlog_directory": str(state_dir / "commitlog"),
        "saved_caches_directory": str(state_dir / "saved_caches"),
        "hints_directory": str(state_dir / "hints"),
        "cdc_raw_directory": str(state_dir / "cdc_raw"),
        # A node that never ran 4.x: 5.0's own storage format and limits (e.g. TTLs past 2038), not 4.x-compatible.
        "storage_compatibility_mode": "NONE",
        # periodic: a power cut may lose up to 10 s of acknowledged writes on this single local node;
        # production clusters rely on replication instead.
        "commitlog_sync": "periodic",
        "commitlog_sync_period": "10000ms",
        "commitlog_segment_size": "32MiB",
        "seed_provider": [
            {
                "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                "parameters": [{"seeds": ",".join(f"{seed}:{ports.cassandra_storage}" for seed in seeds)}],
            }
        ],
        "listen_address": address,
        "rpc_address": address,
        "storage_port": ports.cassandra_storage,
        "start_native_transport": True,
        "native_transport_port": ports.cql,
        "endpoint_snitch": "SimpleSnitch",
        # Secure: every session logs in, and each user may do only what it was granted. system_auth keeps a
        # replication of 1, right for one node (a cluster raises it: docs/security.md, Cassandra).
        "authenticator": "PasswordAuthenticator" if secure else "AllowAllAuthenticator",
        "authorizer": "CassandraAuthorizer" if secure else "AllowAllAuthorizer",
        "write_request_timeout": "5000ms",
        "read_request_timeout": "10000ms",
        "range_request_timeout": "20000ms",
        "request_timeout": "20000ms",
        "batch_size_warn_threshold": "64KiB",
        "auto_snapshot": False,
        "concurrent_reads": 16,
        "concurrent_writes": 32,
        "memtable_allocation_type": "heap_buffers",
        "disk_failure_policy": "stop",
        "commit_failure_policy": "stop",
    }


class Cassandra:
    name = "cassandra"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.state_dir = config.component_dir("cassandra")
        self.conf_dir = self.state_dir / "conf"
        self.pid_file = self.state_dir / "cassandra.pid"
        self.log_dir = config.log_dir("cassandra")

    def main_log(self) -> Path:
        return self.log_dir / "system.log"

    def _pid(self) -> int | None:
        pids = process.read_pids(self.pid_file)
        return pids[0] if pids and process.pid_alive(pids[0]) else None

    def check(self) -> str:
        """The node's state: "ok" (the operator's session works), "login refused" (the node is up, the login is
        not: a fresh secure node before its operator exists, or wrong credentials) or "down"."""
        return self.probe()[0]

    def probe(self) -> tuple[str, str | None]:
        """check()'s state, and the release the node reports when the state is "ok"."""
        from fleetsense.cloud.cassandra_session import CassandraLoginRefused, CassandraUnavailable

        host, port = self.config.cql_contact
        if not process.port_accepts(host, port):
            return "down", None
        try:
            with session_as(self.config, OPERATOR, connect_timeout_s=5) as session:
                release = session.execute("SELECT release_version FROM system.local").one().release_version
        except CassandraLoginRefused:
            return "login refused", None
        except CassandraUnavailable:
            return "down", None
        return "ok", str(release)

    def healthy(self) -> bool:
        return self.check() == "ok"

    def _answers(self) -> bool:
        return self.check() != "down"

    def apply_schema(self) -> None:
        """The schema, as the operator; where logins are on, then each component's user and its grants (a grant
        needs its keyspace)."""
        from fleetsense.cloud.schema import KEYSPACE, apply_schema

        with session_as(self.config, OPERATOR) as session:
            apply_schema(session)
            if login(self.config, OPERATOR) is not None:
                provision_users(self.config, session, KEYSPACE)

    def write_config(self) -> None:
        # Owner-only: the data files hold every driver's results (and system_auth their users' password hashes).
        private_dir(self.state_dir)
        private_dir(self.log_dir)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        # JSON is valid YAML: no YAML writer needed, and no quoting surprises in paths.
        (self.conf_dir / "cassandra.yaml").write_text(json.dumps(cassandra_yaml(self.config, self.state_dir), indent=2))
        (self.conf_dir / "logback.xml").write_text(LOGBACK_XML.format(log_dir=self.log_dir))

    def java_command(self, lib: Path) -> list[str]:
        heap = f"{self.config.cassandra_heap_mb}M"
        return [
            process.require_binary("java", hint="install Java 17: `apt-get install openjdk-17-jdk-headless`"),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-Xss512k",
            "-XX:+UseG1GC",
            f"-javaagent:{jamm_agent(lib)}",
            "-XX:+HeapDumpOnOutOfMemoryError",
            f"-XX:HeapDumpPath={self.state_dir}",
            "-Djava.net.preferIPv4Stack=true",
            "-Dcassandra-foreground=yes",
            # Create the default superuser as CQL opens, not 10 s later: `up` replaces it at once.
            "-Dcassandra.superuser_setup_delay_ms=0",
            f"-Dcassandra-pidfile={self.pid_file}",
            f"-Dcassandra.storagedir={self.state_dir}",
            f"-Dcassandra.logdir={self.log_dir}",
            f"-Dcassandra.config=file://{self.conf_dir / 'cassandra.yaml'}",
            f"-Dlogback.configurationFile={self.conf_dir / 'logback.xml'}",
            *JAVA17_FLAGS,
            "-cp",
            f"{self.conf_dir}:{lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    def start(self) -> None:
        if self.config.cassandra is not None:
            self._check_external()
            return
        if self._pid() is not None:
            process.wait_until(
                self._answers,
                timeout_s=self.config.startup_timeout_s,
                what="Cassandra",
                log_path=self.main_log(),
                still_running=lambda: self._pid() is not None,
            )
            self._secure_logins()
            return
        lib = lib_dir(self.config)
        if not complete(lib, cassandra_version()):
            raise StackError(
                f"Cassandra {cassandra_version()}'s jars are missing ({lib})",
                hint="run `fleetsense stack prepare` (the README's set-up command does this)",
            )
        ports = self.config.ports
        process.ensure_ports_free(
            "Cassandra",
            LOOPBACK,
            {"cql": ports.cql, "storage": ports.cassandra_storage},
            how_to_change="choose other ports with `fleetsense stack up --ports-offset N`",
        )
        self.write_config()
        self._claim_data_dir()
        self.pid_file.unlink(missing_ok=True)
        pid = process.spawn_detached(
            self.java_command(lib), env=_java_env(), log_file=self.log_dir / "stdout.log", cwd=self.state_dir
        )
        self.pid_file.write_text(f"{pid}\n")
        process.wait_until(
            self._answers,
            timeout_s=self.config.startup_timeout_s,
            what="Cassandra",
            log_path=self.main_log(),
            still_running=lambda: process.pid_alive(pid),
        )
        self._secure_logins()

    def _claim_data_dir(self) -> None:
        """Refuse data another release line wrote (5.0 fails on 2.1's files deep in its start), then record ours."""
        version = cassandra_version()
        release_file = self.state_dir / "release"
        recorded = release_file.read_text().strip() if release_file.is_file() else None
        data = self.state_dir / "data"
        problem = data_dir_problem(recorded, data.is_dir() and any(data.iterdir()), version)
        if problem is not None:
            raise StackError(
                f"Cassandra cannot start on {self.state_dir}: {problem}",
                hint=f"the local stack's data is disposable: `fleetsense stack down`, then move {self.state_dir} "
                "away (or delete it) and run `fleetsense stack up` again",
            )
        release_file.write_text(f"{version}\n")

    def _secure_logins(self) -> None:
        if login_required(self.config):
            bootstrap_operator(self.config)

    def _check_external(self) -> None:
        host, port = self.config.cql_contact
        state = self.check()
        if state == "down":
            raise StackError(
                f"the external Cassandra at {host}:{port} does not answer CQL",
                hint="check --cassandra / FLEETSENSE_CASSANDRA and that the cluster is up",
            )
        if state == "login refused":
            raise StackError(
                f"the external Cassandra at {host}:{port} refused the operator's login",
                hint=f"put the operator's credentials in {credentials_file(self.config, OPERATOR)} "
                "(docs/security.md, Cassandra)",
            )

    def stop(self) -> None:
        pid = self._pid()
        if pid is not None:
            # SIGTERM runs Cassandra's shutdown hook, which flushes the commit log.
            process.terminate([pid], grace_s=30)
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> ComponentStatus:
        host, port = self.config.cql_contact
        if self.config.cassandra is not None:
            return ComponentStatus(
                name=self.name,
                state="external",
                pids=(),
                ports=f"cql {host}:{port}",
                health=self._health(),
                log_path=None,
            )
        pid = self._pid()
        return ComponentStatus(
            name=self.name,
            state="running" if pid else "stopped",
            pids=(pid,) if pid else (),
            ports=f"cql {port}, storage {self.config.ports.cassandra_storage}",
            health=self._health() if pid else "-",
            log_path=self.main_log(),
        )

    def _health(self) -> str:
        state, release = self.probe()
        if state == "ok":
            return f"ok (Cassandra {release})"
        down = "not answering" if self.config.cassandra else "starting or unhealthy"
        return {"down": down, "login refused": "login refused (operator)"}[state]


def _java_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("JAVA_TOOL_OPTIONS", None)
    return env
