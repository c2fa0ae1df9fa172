"""Submitting, listing and cancelling jobs on a Flink session cluster (REST for reads, the flink CLI to submit)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from fleetsense.errors import FleetsenseError

JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")
METRICS_REFRESH_S = 1.0  # how long a metrics refresh of a few TaskManagers takes here, with room


class JobError(FleetsenseError):
    """The Flink cluster refused or failed a job operation."""


@dataclass(frozen=True, kw_only=True)
class JobInfo:
    job_id: str
    name: str
    state: str
    start_time_ms: int


@dataclass(frozen=True, kw_only=True)
class RestTls:
    """How to reach a Flink REST API that requires TLS with a client certificate (the secure profile)."""

    ca_file: Path  # verifies the REST server's certificate
    cert_file: Path  # the client certificate and its key (PEM)
    key_file: Path
    client_conf_dir: Path  # a FLINK_CONF_DIR whose config.yaml gives `flink run` the same, as keystores


class FlinkCluster:
    def __init__(self, rest_host: str, rest_port: int, *, log_dir: Path, tls: RestTls | None = None) -> None:
        self.rest_host = rest_host
        self.rest_port = rest_port
        self.rest_url = f"{'https' if tls else 'http'}://{rest_host}:{rest_port}"
        self.log_dir = log_dir
        self.tls = tls
        self._session = rest_session(tls)

    def _get(self, path: str, *, missing_ok: bool = False) -> Any:
        try:
            reply = self._session.get(f"{self.rest_url}{path}", timeout=10)
        except requests.exceptions.SSLError as exc:
            raise JobError(
                f"the TLS handshake with Flink's REST API at {self.rest_url} failed: {exc}",
                hint="a secure-profile stack takes only its operator's client certificate (secrets/tls/flink/): "
                "run the command against that stack's data dir, with --profile secure",
            ) from exc
        except requests.RequestException as exc:
            raise JobError(
                f"the Flink REST API at {self.rest_url} does not answer: {exc}",
                hint="start the stack with `fleetsense stack up` (or check --flink for a remote cluster)",
            ) from exc
        if reply.status_code == 404 and missing_ok:
            return None
        if reply.status_code >= 400:
            raise JobError(f"GET {path} failed with HTTP {reply.status_code}: {reply.text[:300]}")
        return reply.json()

    def jobs(self) -> list[JobInfo]:
        overview = self._get("/jobs/overview")
        return [
            JobInfo(job_id=j["jid"], name=j["name"], state=j["state"], start_time_ms=j["start-time"])
            for j in overview.get("jobs", [])
        ]

    def running(self, name: str) -> JobInfo | None:
        for job in self.jobs():
            if job.name == name and job.state in ("RUNNING", "CREATED", "INITIALIZING", "RESTARTING"):
                return job
        return None

    def submit_python(
        self,
        job_file: Path,
        args: list[str],
        *,
        jar: Path,
        timeout_s: float = 180.0,
        savepoint: str | None = None,
        allow_non_restored: bool = False,
    ) -> str:
        """Submit a PyFlink job, from `savepoint` if given; `allow_non_restored` lets state of operators the new
        job does not have be dropped (a promoted replay's source, which read another queue)."""
        import pyflink

        flink = Path(pyflink.__file__).parent / "bin" / "flink"
        env = dict(os.environ)
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = f"{venv_bin}:{env.get('PATH', '')}"
        env["FLINK_LOG_DIR"] = str(self.log_dir)
        if self.tls:
            env["FLINK_CONF_DIR"] = str(self.tls.client_conf_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            "bash",
            str(flink),
            "run",
            "--detached",
            "--jobmanager",
            # With TLS the scheme must be given: the CLI sets security.ssl.rest.enabled from the address's scheme
            # and so turned it off for a bare host:port (seen: the submission went to http:// and was refused).
            self.rest_url if self.tls else f"{self.rest_host}:{self.rest_port}",
            "--jarfile",
            str(jar),
            *(["--fromSavepoint", savepoint] if savepoint else []),
            *(["--allowNonRestoredState"] if savepoint and allow_non_restored else []),
            "--pyClientExecutable",
            sys.executable,
            "--pyExecutable",
            sys.executable,
            "--python",
            str(job_file),
            *args,
        ]
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise JobError(
                f"submitting {job_file.name} timed out after {timeout_s:.0f} s", log_path=str(self.log_dir)
            ) from exc
        match = JOB_ID.search(done.stdout)
        if done.returncode != 0 or not match:
            tail = (done.stdout + done.stderr).strip()[-3000:]
            raise JobError(
                f"Flink refused the job {job_file.name} (exit {done.returncode}):\n{tail}",
                hint="read the client log for the full stack trace",
                log_path=str(self.log_dir),
            )
        return match.group(1)

    def wait_running(self, job_id: str, timeout_s: float = 120.0) -> None:
        """Wait until every task of the job is RUNNING (the source is consuming)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            detail = self._get(f"/jobs/{job_id}")
            state = detail["state"]
            if state in ("FAILED", "CANCELED", "FINISHED"):
                raise JobError(f"job {job_id} ended as {state} while starting", log_path=str(self.log_dir))
            vertices = detail.get("vertices", [])
            if state == "RUNNING" and vertices and all(v["status"] == "RUNNING" for v in vertices):
                return
            time.sleep(1)
        raise JobError(f"job {job_id} did not reach RUNNING in {timeout_s:.0f} s", log_path=str(self.log_dir))

    def cancel(self, job_id: str, *, timeout_s: float = 60.0) -> None:
        """Cancel and wait until the job has released its slots (state CANCELED)."""
        try:
            reply = self._session.patch(f"{self.rest_url}/jobs/{job_id}?mode=cancel", timeout=10)
        except requests.RequestException as exc:
            raise JobError(f"cannot reach Flink at {self.rest_url}: {exc}") from exc
        if reply.status_code >= 400:
            raise JobError(f"cancelling {job_id} failed with HTTP {reply.status_code}: {reply.text[:300]}")
        deadline = time.monotonic() + timeout_s
        while self._get(f"/jobs/{job_id}")["state"] not in ("CANCELED", "FAILED", "FINISHED"):
            if time.monotonic() > deadline:
                raise JobError(f"job {job_id} still not cancelled after {timeout_s:.0f} s", log_path=str(self.log_dir))
            time.sleep(0.5)

    def stop_with_savepoint(self, job_id: str, target_dir: Path, *, timeout_s: float = 120.0) -> str:
        """Take a savepoint and stop the job once it is complete (sources stop first, so nothing is processed
        after the savepoint). Returns the savepoint's path."""
        try:
            reply = self._session.post(
                f"{self.rest_url}/jobs/{job_id}/stop",
                json={"targetDirectory": str(target_dir), "drain": False},
                timeout=10,
            )
        except requests.RequestException as exc:
            raise JobError(f"cannot reach Flink at {self.rest_url}: {exc}") from exc
        if reply.status_code >= 400:
            raise JobError(f"stopping {job_id} with a savepoint failed: HTTP {reply.status_code}: {reply.text[:300]}")
        request_id = reply.json()["request-id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self._get(f"/jobs/{job_id}/savepoints/{request_id}")
            if status["status"]["id"] == "COMPLETED":
                operation = status.get("operation", {})
                if "location" in operation:
                    return str(operation["location"])
                cause = operation.get("failure-cause", {}).get("stack-trace", "")[:1500]
                raise JobError(f"the savepoint of {job_id} failed; the job keeps running:\n{cause}")
            time.sleep(0.5)
        raise JobError(f"no savepoint of {job_id} after {timeout_s:.0f} s", log_path=str(self.log_dir))

    def counters(self, job_id: str, names: tuple[str, ...]) -> dict[str, int]:
        """The job's user counters (e.g. accepted, rejected) summed over every subtask of every operator.
        Read per subtask: the aggregated `subtasks/metrics?agg=sum` view returned nothing for these here."""
        # Flink's REST metric store refreshes only when asked (at most every metrics.fetcher.update-interval, 10 s)
        # and answers from what it holds, so the first read after a quiet spell is as old as that spell (`job status`
        # once showed 300 accepted where the job had 632): ask once to start a refresh, give it a moment, then read.
        self._get(f"/jobs/{job_id}/metrics")
        time.sleep(METRICS_REFRESH_S)
        totals = dict.fromkeys(names, 0)
        for vertex in self._get(f"/jobs/{job_id}").get("vertices", []):
            for subtask in range(int(vertex.get("parallelism", 1))):
                path = f"/jobs/{job_id}/vertices/{vertex['id']}/subtasks/{subtask}/metrics"
                wanted = [m["id"] for m in self._get(path) if m["id"].rsplit(".", 1)[-1] in names]
                if wanted:
                    for metric in self._get(f"{path}?get={','.join(wanted)}"):
                        totals[metric["id"].rsplit(".", 1)[-1]] += int(float(metric.get("value", 0)))
        return totals

    def restarts(self, job_id: str) -> int:
        metrics = self._get(f"/jobs/{job_id}/metrics?get=numRestarts")
        return int(float(metrics[0]["value"])) if metrics else 0

    def last_checkpoint(self, job_id: str) -> dict[str, Any]:
        return checkpoint_summary(self._get(f"/jobs/{job_id}/checkpoints"))

    # -- raw replies for the health rules (fleetsense.stack.health) ----------------------------------

    def job_detail(self, job_id: str) -> dict[str, Any]:
        """`/jobs/<id>`: state, vertices with their subtask counts per state, and the JobManager's `now`."""
        return dict(self._get(f"/jobs/{job_id}"))

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        return dict(self._get(f"/jobs/{job_id}/checkpoints"))

    def checkpoint_config(self, job_id: str) -> dict[str, Any] | None:
        """The job's checkpoint settings (interval, timeout), or None when the job does not checkpoint."""
        config = self._get(f"/jobs/{job_id}/checkpoints/config", missing_ok=True)
        return dict(config) if config is not None else None

    def exception_history(self, job_id: str) -> dict[str, Any]:
        """`/jobs/<id>/exceptions`: each failure (each restart) with its time, newest first."""
        return dict(self._get(f"/jobs/{job_id}/exceptions?maxExceptions=20"))


def rest_session(tls: RestTls | None) -> requests.Session:
    """A session for Flink's REST API: with `tls`, it verifies the server against its CA and shows the client
    certificate on every request."""
    session = requests.Session()
    if tls:
        # Else $REQUESTS_CA_BUNDLE (set on many machines) silently replaces the CA given here: requests lets the
        # environment override a session's `verify` (psf/requests#3829).
        session.trust_env = False
        session.verify = str(tls.ca_file)
        session.cert = (str(tls.cert_file), str(tls.key_file))
    return session


def checkpoint_summary(reply: dict[str, Any]) -> dict[str, Any]:
    """Flink's `/jobs/<id>/checkpoints` reply in brief. A checkpoint whose trigger was refused because a task was
    not running yet (the job starting or restarting) counts as failed but leaves no entry behind, so `failed` > 0
    with `latest_failure` None means every failure was of that harmless kind."""
    counts = reply.get("counts") or {}
    latest = reply.get("latest") or {}
    completed, failed = latest.get("completed") or {}, latest.get("failed") or {}
    return {
        "completed": counts.get("completed", 0),
        "failed": counts.get("failed", 0),
        "latest_duration_ms": completed.get("end_to_end_duration"),
        "latest_size_bytes": completed.get("state_size"),
        "latest_failure": failed.get("failure_message"),
    }
