"""A standalone Flink session cluster (one JobManager, N TaskManagers) from the apache-flink wheel's own
distribution (pyflink/bin, pyflink/lib), configured through a private FLINK_CONF_DIR."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from fleetsense.cloud.jobctl import RestTls, rest_session
from fleetsense.errors import StackError
from fleetsense.stack import process
from fleetsense.stack.component import ComponentStatus
from fleetsense.stack.flink_tls import FlinkTlsFiles, ensure_flink_tls, secure_settings
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.prometheus_reporter import FACTORY_CLASS, link_plugins_dir
from fleetsense.stack.secrets import write_private


def flink_home() -> Path:
    try:
        import pyflink
    except ImportError as exc:
        raise StackError(
            "apache-flink is not installed in this environment",
            hint="install the cloud extra: `pip install -e '.[cloud]'` (the README's set-up command does this)",
        ) from exc
    return Path(pyflink.__file__).parent


def venv_python() -> str:
    """Python workers must run the interpreter that has pyflink and fleetsense installed."""
    return sys.executable


def flink_settings(config: StackConfig, state_dir: Path) -> dict[str, str]:
    ports = config.ports
    tm_rpc = ports.flink_taskmanager_rpc_first
    n = config.flink_taskmanagers
    prom_first = ports.flink_prometheus_first
    return {
        "jobmanager.bind-host": LOOPBACK,
        "jobmanager.rpc.address": LOOPBACK,
        "jobmanager.rpc.port": str(ports.flink_rpc),
        "jobmanager.memory.process.size": "1024m",
        "blob.server.port": str(ports.flink_blob),
        "rest.address": LOOPBACK,
        "rest.bind-address": LOOPBACK,
        "rest.port": str(ports.flink_rest),
        "taskmanager.bind-host": LOOPBACK,
        "taskmanager.host": LOOPBACK,
        "taskmanager.rpc.port": f"{tm_rpc}-{tm_rpc + n - 1}",
        # The shuffle port takes no range; 0 picks a free one, bound to taskmanager.bind-host (loopback).
        "taskmanager.data.port": "0",
        "taskmanager.numberOfTaskSlots": str(config.flink_slots_per_taskmanager),
        "taskmanager.memory.process.size": "1728m",
        "metrics.internal.query-service.port": "0",
        # Prometheus on loopback: the JobManager and each TaskManager take one port of the range (the wheel's
        # reporter would bind every interface; see prometheus_reporter).
        "metrics.reporter.prom.factory.class": FACTORY_CLASS,
        "metrics.reporter.prom.host": LOOPBACK,
        "metrics.reporter.prom.port": f"{prom_first}-{prom_first + n}",
        **shared_settings(state_dir),
    }


def shared_settings(state_dir: Path) -> dict[str, str]:
    """What every Flink of fleetsense runs with, wherever it binds: the single-node stack's and each host's of
    `fleetsense cluster` (fleetsense.cluster.flink_ha). Checkpoints and savepoints go under `state_dir`."""
    return {
        "jobmanager.execution.failover-strategy": "region",
        # One machine: a TaskManager that stops answering is gone (killed), so notice within seconds, not 50 s.
        "heartbeat.interval": "2000",
        "heartbeat.timeout": "10000",
        "parallelism.default": "2",
        "state.backend.type": "hashmap",
        "execution.checkpointing.dir": f"file://{state_dir / 'checkpoints'}",
        "execution.checkpointing.savepoint-dir": f"file://{state_dir / 'savepoints'}",
        "state.checkpoints.dir": f"file://{state_dir / 'checkpoints'}",
        "state.savepoints.dir": f"file://{state_dir / 'savepoints'}",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "python.executable": venv_python(),
        "python.client.executable": venv_python(),
        # PEMJA (the thread-mode bridge) loads libpython once per JVM; Java 17 refuses a second load from a
        # new job's class loader, so PEMJA must come from the TaskManager's own classpath (see link_lib_dir).
        "classloader.parent-first-patterns.additional": "pemja.",
        "web.submit.enable": "false",
        "web.cancel.enable": "true",
    }


def flink_env(
    *, conf_dir: Path, log_dir: Path, pid_dir: Path, lib_dir: Path, plugins_dir: Path, ident: str
) -> dict[str, str]:
    """The environment Flink's scripts run with: our config, logs and jars, and our Python for the workers."""
    env = dict(os.environ)
    venv_bin = str(Path(venv_python()).parent)
    env.update(
        FLINK_HOME=str(flink_home()),
        FLINK_CONF_DIR=str(conf_dir),
        FLINK_LOG_DIR=str(log_dir),
        FLINK_PID_DIR=str(pid_dir),
        FLINK_LIB_DIR=str(lib_dir),
        FLINK_PLUGINS_DIR=str(plugins_dir),
        FLINK_IDENT_STRING=ident,
        # PyFlink's workers start `python` from PATH unless told otherwise; make it ours.
        PATH=f"{venv_bin}:{env.get('PATH', '')}",
        PYFLINK_PYTHON=venv_python(),
    )
    env.pop("JAVA_TOOL_OPTIONS", None)
    return env


def java_opts(home: Path, log_dir: Path) -> str:
    """The wheel's Java 17 flags, plus: a JVM that dies in native code (PEMJA) writes hs_err_pid<pid>.log into its
    working directory, which is wherever Flink was started from; keep those reports with the other Flink logs."""
    shipped = (home / "conf" / "config.yaml").read_text()
    return f"{_java_opts_from_shipped(shipped)} -XX:ErrorFile={log_dir}/hs_err_pid%p.log".strip()


def link_lib_dir(lib_dir: Path, home: Path) -> None:
    """The wheel's lib/ plus flink-python from opt/, so Python UDFs in thread mode can run job after job
    in one TaskManager (the wheel itself is left untouched)."""
    shutil.rmtree(lib_dir, ignore_errors=True)
    lib_dir.mkdir(parents=True)
    for jar in [*(home / "lib").glob("*.jar"), *(home / "opt").glob("flink-python-*.jar")]:
        (lib_dir / jar.name).symlink_to(jar)


class Flink:
    name = "flink"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.state_dir = config.component_dir("flink")
        self.conf_dir = self.state_dir / "conf"
        self.pid_dir = self.state_dir / "pids"
        self.log_dir = config.log_dir("flink")
        self.lib_dir = self.state_dir / "lib"
        self.plugins_dir = self.state_dir / "plugins"

    @property
    def client_conf_dir(self) -> Path:
        """FLINK_CONF_DIR for `flink run` against this cluster (the secure profile's client keystore)."""
        return self.state_dir / "client-conf"

    def tls_files(self, *, create: bool = False) -> FlinkTlsFiles | None:
        """The secure profile's TLS files (made by write_config, create=True); None in the dev profile."""
        if self.config.profile != "secure":
            return None
        return ensure_flink_tls(self.config.tls_dir, self.config.secrets_dir, create=create)

    def rest_tls(self) -> RestTls | None:
        """How clients reach the REST API: in the secure profile only with the operator's client certificate."""
        files = self.tls_files()
        if files is None:
            return None
        return RestTls(
            ca_file=files.ca_cert,
            cert_file=files.client_cert,
            key_file=files.client_key,
            client_conf_dir=self.client_conf_dir,
        )

    @property
    def rest_url(self) -> str:
        scheme = "https" if self.config.profile == "secure" else "http"
        return f"{scheme}://{LOOPBACK}:{self.config.ports.flink_rest}"

    def main_log(self) -> Path:
        logs = sorted(self.log_dir.glob("flink-*-standalonesession-*.log"))
        return logs[0] if logs else self.log_dir

    def env(self) -> dict[str, str]:
        return flink_env(
            conf_dir=self.conf_dir,
            log_dir=self.log_dir,
            pid_dir=self.pid_dir,
            lib_dir=self.lib_dir,
            plugins_dir=self.plugins_dir,
            ident=self.config.name,
        )

    def write_config(self) -> None:
        home = flink_home()
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        copy_logging_config(home / "conf", self.conf_dir)
        link_lib_dir(self.lib_dir, home)
        link_plugins_dir(self.plugins_dir, home, self.config.build_dir)
        settings = {"env.java.opts.all": java_opts(home, self.log_dir), **flink_settings(self.config, self.state_dir)}
        files = self.tls_files(create=True)
        if files is not None:
            settings.update(secure_settings(files, rest_keystore=files.rest_server_keystore))
        # 0600: in the secure profile it holds the keystores' password.
        write_private(self.conf_dir / "config.yaml", flink_yaml(settings))
        if files is not None:
            self._write_client_conf(settings, files)

    def _write_client_conf(self, cluster_settings: dict[str, str], files: FlinkTlsFiles) -> None:
        """The cluster's settings with the operator's keystore as the REST one, and no metric reporter (the CLI
        would only try to bind the cluster's Prometheus ports)."""
        client = {k: v for k, v in cluster_settings.items() if not k.startswith("metrics.reporter.")}
        client.update(secure_settings(files, rest_keystore=files.rest_client_keystore))
        self.client_conf_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        copy_logging_config(self.conf_dir, self.client_conf_dir)
        write_private(self.client_conf_dir / "config.yaml", flink_yaml(client))

    def _pids(self, daemon: str) -> list[int]:
        pid_file = self.pid_dir / f"flink-{self.config.name}-{daemon}.pid"
        return [pid for pid in process.read_pids(pid_file) if process.pid_alive(pid)]

    def taskmanager_pids(self) -> list[int]:
        return self._pids("taskexecutor")

    def all_pids(self) -> list[int]:
        return self._pids("standalonesession") + self._pids("taskexecutor")

    def overview(self) -> dict[str, object] | None:
        import requests

        try:
            reply = rest_session(self.rest_tls()).get(f"{self.rest_url}/overview", timeout=3)
        except (requests.RequestException, StackError):  # not answering, or secure and never started
            return None
        return reply.json() if reply.status_code == 200 else None

    def healthy(self) -> bool:
        overview = self.overview()
        return bool(overview) and overview.get("taskmanagers") == self.config.flink_taskmanagers  # type: ignore[union-attr]

    def start(self) -> None:
        home = flink_home()
        bin_dir = home / "bin"
        env = self.env()
        jobmanagers = self._pids("standalonesession")
        taskmanagers = self._pids("taskexecutor")
        if not jobmanagers:
            ports = self.config.ports
            process.ensure_ports_free(
                "Flink",
                LOOPBACK,
                {"rest": ports.flink_rest, "rpc": ports.flink_rpc, "blob": ports.flink_blob},
                how_to_change="choose other ports with `fleetsense stack up --ports-offset N`",
            )
            self.write_config()
            process.run_checked(
                ["bash", str(bin_dir / "jobmanager.sh"), "start"],
                env=env,
                what="starting the Flink JobManager",
                log_path=self.log_dir,
            )
        for _ in range(self.config.flink_taskmanagers - len(taskmanagers)):
            process.run_checked(
                ["bash", str(bin_dir / "taskmanager.sh"), "start"],
                env=env,
                what="starting a Flink TaskManager",
                log_path=self.log_dir,
            )
        process.wait_until(
            self.healthy,
            timeout_s=self.config.startup_timeout_s,
            what=f"Flink (JobManager + {self.config.flink_taskmanagers} TaskManagers)",
            log_path=self.log_dir,
            still_running=lambda: len(self.all_pids()) == 1 + self.config.flink_taskmanagers,
        )

    def stop(self) -> None:
        home = flink_home()
        env = self.env()
        for script, action in (("taskmanager.sh", "stop-all"), ("jobmanager.sh", "stop-all")):
            try:
                process.run_checked(["bash", str(home / "bin" / script), action], env=env, what=f"{script} {action}")
            except StackError:
                pass  # fall through to killing whatever the pid files still name
        process.terminate(self.all_pids(), grace_s=15)
        # The Python workers are children of the TaskManagers; a killed TM can orphan them.
        process.terminate(_orphaned_python_workers(self.conf_dir), grace_s=5)

    def status(self) -> ComponentStatus:
        overview = self.overview()
        pids = self.all_pids()
        if overview:
            wanted = self.config.flink_taskmanagers
            found = overview.get("taskmanagers")
            health = (
                ("ok: " if found == wanted else f"only {found} of {wanted} TaskManagers registered: ")
                + f"{found} TaskManagers, {overview.get('slots-available')}/"
                f"{overview.get('slots-total')} slots free, {overview.get('jobs-running')} jobs running"
            )
        else:
            health = "REST not answering" if pids else "-"
        return ComponentStatus(
            name=self.name,
            state="running" if pids else "stopped",
            pids=tuple(pids),
            ports=f"rest {self.config.ports.flink_rest}, rpc {self.config.ports.flink_rpc}",
            health=health,
            log_path=self.main_log(),
        )


def copy_logging_config(source_dir: Path, target_dir: Path) -> None:
    for source in source_dir.iterdir():
        if source.name.startswith("log4j") or source.name.startswith("logback"):
            shutil.copy(source, target_dir / source.name)


def flink_yaml(settings: dict[str, str]) -> str:
    # One flat `key: "value"` per line; a JSON string is a valid YAML double-quoted scalar.
    lines = ["# Written by fleetsense (`stack up` or `cluster up`); edits are overwritten."]
    lines += [f"{key}: {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _java_opts_from_shipped(config_yaml: str) -> str:
    """Reuse the --add-opens list the wheel's own config.yaml carries for Java 17."""
    for line in config_yaml.splitlines():
        stripped = line.strip()
        if stripped.startswith("all:") and "--add-opens" in stripped:
            return stripped.split(":", 1)[1].strip()
    return ""


def _orphaned_python_workers(conf_dir: Path) -> list[int]:
    """Beam Python workers whose environment names our FLINK_CONF_DIR and whose parent is gone (ppid 1)."""
    found: list[int] = []
    marker = f"FLINK_CONF_DIR={conf_dir}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "environ").read_bytes():
                continue
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == 1:
            found.append(int(proc.name))
    return found
