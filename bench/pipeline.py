"""Sustained throughput and latency of the pipeline (fleet load generator -> RabbitMQ -> Flink job -> Cassandra)
against the naive alternative (bench/naive_subscriber.py: one Python subscriber, a row per sample), for each fleet
size, on the local stack of a separate data dir and ports. Prints one JSON object to stdout, progress to stderr.

    .venv/bin/python bench/pipeline.py [--vehicles 100,500,2000] [--seconds 60] [--warmup 20] [--keep-stack]

Per fleet size, in this order: the pipeline phase (a fresh ingest job), then the naive phase (the job cancelled and
`fleet.telemetry` unbound, so only the naive subscriber consumes). Each phase: the generator connects the fleet,
publishes `--warmup` s, then the measured window of `--seconds` s, stops; then the consumer drains (at most
`--drain-timeout` s; the rest is purged). What is measured, exactly: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fleetsense.cloud.cassandra_session import connect
from fleetsense.gateway.topology import FLEET_VHOST, MQTT_EXCHANGE, TELEMETRY_QUEUE

from fleetsense.errors import FleetsenseError
from fleetsense.load import provisioning
from fleetsense.load.stats import percentiles
from fleetsense.stack import jobs, manager
from fleetsense.stack.layout import Ports, StackConfig, repo_root
from fleetsense.stack.rabbitmq import RabbitMQ
from fleetsense.stack.secrets import new_password, write_private

ROOT = repo_root() or Path.cwd()
# The bench's own scripts are taken from beside this file, not from the source tree whose fleetsense is imported: so
# bench/compare_cassandra.py can run one bench against an older tree (Cassandra 2.1) and a newer one (5.0).
BENCH_DIR = Path(__file__).resolve().parent
NAIVE_USER = NAIVE_CLIENT_ID = "fleetsense-bench-naive"
NAIVE_QUEUE = f"mqtt-subscription-{NAIVE_CLIENT_ID}qos1"  # what RabbitMQ's MQTT plugin names a QoS 1 subscription
FLEET_PREFIX = "bench"
HOUR_MS = 3_600_000
EPOCH = datetime(1970, 1, 1)


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def ms(moment: datetime) -> float:
    """A naive UTC datetime from the driver as ms since the epoch."""
    return (moment - EPOCH).total_seconds() * 1000.0


# ---------------------------------------------------------------------------------------------------------
# CPU per process, from /proc (clock ticks of the process and all its descendants)

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) * TICK_S)
    return table


def cpu_seconds(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds of each group of processes and their descendants (but the bench itself without its children,
    the generator and the subscriber, which have groups of their own), and of the whole machine."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    result = {}
    for name, roots in groups.items():
        total, stack = 0.0, list(roots)
        while stack:
            pid = stack.pop()
            if pid in table:
                total += table[pid][1]
                stack += children.get(pid, []) if name != "bench" else []
        result[name] = total
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(f) for f in fields]
    result["machine_busy"] = (sum(ticks) - ticks[3] - ticks[4]) * TICK_S  # all but idle and iowait
    return result


def stack_processes(config: StackConfig) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {"bench": [os.getpid()]}
    for status in manager.status(config):
        if status.name != "flink":
            groups[status.name] = list(status.pids)
            continue
        for pid in status.pids:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
            role = "flink_jobmanager" if b"StandaloneSessionClusterEntrypoint" in cmdline else "flink_taskmanagers"
            groups.setdefault(role, []).append(pid)
    return groups


def cores_used(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores busy per group over the window; `other` is the machine's busy time not in any group."""
    used = {name: round((after[name] - before.get(name, 0.0)) / seconds, 2) for name in after}
    used["other"] = round(used["machine_busy"] - sum(v for k, v in used.items() if k != "machine_busy"), 2)
    return used


def jvm_memory_mib(pids: list[int]) -> dict[str, float | None]:
    """Resident memory of a JVM (VmRSS summed over `pids`) and its heap's size and use from `jcmd <pid>
    GC.heap_info` (JDK 17's tool; None where it cannot attach)."""
    rss_kib = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status")
        if status.exists():
            line = next((x for x in status.read_text().splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
            rss_kib += int(line.split()[1])
    heap: dict[str, float | None] = {"heap_total_mib": None, "heap_used_mib": None}
    try:
        text = subprocess.run(["jcmd", str(pids[0]), "GC.heap_info"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, IndexError, subprocess.TimeoutExpired):
        text = ""
    for line in text.splitlines():  # " garbage-first heap   total 524288K, used 301234K [0x..."
        words = line.replace(",", " ").split()
        if "heap" in words and "total" in words and "used" in words:
            total, used = words[words.index("total") + 1], words[words.index("used") + 1]
            if total.endswith("K") and used.endswith("K"):
                heap = {"heap_total_mib": round(int(total[:-1]) / 1024, 1),
                        "heap_used_mib": round(int(used[:-1]) / 1024, 1)}  # fmt: skip
                break
    return {"rss_mib": round(rss_kib / 1024, 1), **heap}


# ---------------------------------------------------------------------------------------------------------
# Child processes that print JSON lines: the load generator and the naive subscriber


class JsonLines:
    """A child process whose stdout is JSON lines, read by a thread; stderr goes to ours."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=ROOT)
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, name=f"read-{name}", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                print(f"[{self.name}] {line.rstrip()}", file=sys.stderr)
                continue
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, kind: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = [e for e in self.events if e.get("event") == kind]
                if found:
                    return found[-1]
                if self.process.poll() is not None and not any(e.get("event") == kind for e in self.events):
                    last = self.events[-1] if self.events else {}
                    raise FleetsenseError(
                        f"{self.name} exited (code {self.process.returncode}) before '{kind}': {last}"
                    )
                if time.monotonic() > deadline:
                    raise FleetsenseError(f"{self.name} sent no '{kind}' within {timeout_s:.0f} s")
                self._changed.wait(1.0)

    def latest(self, kind: str) -> dict[str, Any]:
        with self._changed:
            return next((e for e in reversed(self.events) if e.get("event") == kind), {})

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_generator(config: StackConfig, credentials: Path, vehicles: int, args: argparse.Namespace) -> JsonLines:
    argv = [sys.executable, "-m", "fleetsense.load", "run", "--port", str(config.ports.mqtt),
            "--credentials", str(credentials), "--vehicles", str(vehicles), "--seconds", str(args.seconds),
            "--warmup", str(args.warmup), "--connect-rate", str(args.connect_rate)]  # fmt: skip
    return JsonLines("generator", argv + (["--baro"] if args.baro else []))


# ---------------------------------------------------------------------------------------------------------
# Watching a phase: readable latency for a few vehicles, and the queue's depth


@dataclass
class Watch:
    """Polls, in a thread: the newest readable sample of `vehicles` (each new one seen gives a latency sample:
    poll time - that sample's time) and the depth of `queue`."""

    poll: Callable[[list[str]], dict[str, tuple[int, float]]]  # vehicle -> (newest seq, its newest sample ms)
    depth: Callable[[], int | None]
    vehicles: list[str]
    not_before_ms: float  # ignore rows older than the phase (earlier runs share the vehicle ids)
    interval_s: float = 0.25
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (seen at ms, latency ms)
    depths: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, name="watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        seen: dict[str, int] = {}
        polls = 0
        while not self._stop.wait(self.interval_s):
            try:
                newest = self.poll(self.vehicles)
                now_ms = time.time() * 1000.0
                for vehicle, (seq, sample_ms) in newest.items():
                    if sample_ms >= self.not_before_ms and seq != seen.get(vehicle):
                        seen[vehicle] = seq
                        self.latencies.append((now_ms, now_ms - sample_ms))
                if polls % 8 == 0 and (depth := self.depth()) is not None:
                    self.depths.append((time.time(), depth))
            except Exception as exc:  # a slow poll under load must not end the bench
                say(f"watch: {type(exc).__name__}: {exc}")
            polls += 1

    def latency_ms(self, start_s: float, end_s: float) -> dict[str, Any]:
        values = [lat for at, lat in self.latencies if start_s * 1000 <= at < end_s * 1000]
        return {"n": len(values), **percentiles(values)}

    def depth_at(self, when_s: float) -> int | None:
        before = [d for t, d in self.depths if t <= when_s]
        return before[-1] if before else None

    def depth_growth_per_s(self, start_s: float, end_s: float) -> float | None:
        """Least-squares slope of the depth over the window: > 0 means a growing backlog."""
        points = [(t, d) for t, d in self.depths if start_s <= t <= end_s]
        if len(points) < 3:
            return None
        mean_t = sum(t for t, _ in points) / len(points)
        mean_d = sum(d for _, d in points) / len(points)
        var = sum((t - mean_t) ** 2 for t, _ in points)
        return round(sum((t - mean_t) * (d - mean_d) for t, d in points) / var, 1) if var else None


def queue_depth(client: Any, name: str) -> Callable[[], int | None]:
    def depth() -> int | None:
        queue = client.queue(FLEET_VHOST, name)
        return int(queue.get("messages", 0)) if queue else None

    return depth


# ---------------------------------------------------------------------------------------------------------
# Reading back what landed in Cassandra (by WRITETIME: the write's timestamp, set by the writer's driver)


def hour_buckets(start_s: float, end_s: float) -> list[int]:
    first = int(start_s * 1000) // HOUR_MS * HOUR_MS
    return list(range(first, int(end_s * 1000) + 1, HOUR_MS))


def stored_pipeline(session: Any, vehicles: list[str], start_s: float, end_s: float, span: tuple[float, float]) -> Any:
    """Sample blocks written in [start, end): samples/s and per block (write time - newest sample time)."""
    from cassandra.concurrent import execute_concurrent_with_args

    query = session.prepare(
        "SELECT sample_count, start_time, sample_period_us, writetime(sample_count) AS written "
        "FROM fleetsense.batches WHERE vehicle_id = ? AND hour_bucket = ?"
    )
    params = [(v, h) for v in vehicles for h in hour_buckets(*span)]
    samples, latencies = 0, []
    for _ok, rows in execute_concurrent_with_args(session, query, params, concurrency=50, raise_on_first_error=True):
        for row in rows:
            written_ms = row.written / 1000.0
            if start_s * 1000 <= written_ms < end_s * 1000:
                samples += row.sample_count
                newest_ms = ms(row.start_time) + (row.sample_count - 1) * row.sample_period_us / 1000.0
                latencies.append(written_ms - newest_ms)
    return samples, latencies


def stored_naive(session: Any, vehicles: list[str], start_s: float, end_s: float, span: tuple[float, float]) -> Any:
    """Sample rows written in [start, end), and per batch (last row's write time - newest sample time)."""
    from cassandra.concurrent import execute_concurrent_with_args

    query = session.prepare(
        "SELECT seq, sample_time, writetime(ax) AS written FROM fleetsense_naive.naive_samples "
        "WHERE vehicle_id = ? AND hour = ?"
    )
    params = [(v, h) for v in vehicles for h in hour_buckets(*span)]
    samples, batches = 0, dict[tuple[str, int], tuple[float, float, int]]()
    results = execute_concurrent_with_args(session, query, params, concurrency=20, raise_on_first_error=True)
    for (vehicle, _), (_ok, rows) in zip(params, results, strict=True):
        for row in rows:
            written_ms = row.written / 1000.0
            if start_s * 1000 <= written_ms < end_s * 1000:
                samples += 1
            key = (vehicle, row.seq)
            last_written, newest, count = batches.get(key, (0.0, 0.0, 0))
            batches[key] = (max(last_written, written_ms), max(newest, ms(row.sample_time)), count + 1)
    latencies = [w - n for w, n, c in batches.values() if c == 100 and start_s * 1000 <= w < end_s * 1000]
    return samples, latencies


# ---------------------------------------------------------------------------------------------------------
# The phases


@dataclass
class Bench:
    config: StackConfig
    args: argparse.Namespace
    client: Any
    session: Any
    credentials: Path
    naive_config: Path
    overrides: dict[str, str]

    def vehicles(self, count: int) -> list[str]:
        return provisioning.fleet_ids(count, FLEET_PREFIX)

    def watched(self, count: int) -> list[str]:
        ids = self.vehicles(count)
        step = max(1, count // self.args.latency_vehicles)
        return ids[::step][: self.args.latency_vehicles]

    def pipeline_phase(self, count: int) -> dict[str, Any]:
        say(f"pipeline, {count} vehicles: submitting a fresh ingest job")
        leftover = self._purge("pipeline")  # from an interrupted earlier run
        job_id, _ = jobs.submit_ingest(self.config, self.overrides)
        flink = jobs.cluster(self.config)
        poll = self._newest_vehicle_rows()
        depth = queue_depth(self.client, TELEMETRY_QUEUE)

        def counters() -> int:
            return flink.counters(job_id, ("samples",))["samples"]

        def drained() -> bool:
            return depth() == 0

        def after(result: dict[str, Any]) -> None:
            result["drain"]["purged_before_phase"] = leftover
            result["flink"] = {"job_id": job_id, "settings_overridden": self.overrides,
                               "backpressure_at_window_end": result.pop("_backpressure"),
                               "checkpoints": flink.last_checkpoint(job_id)}  # fmt: skip
            jobs.cancel_ingest(self.config)

        return self._phase("pipeline", count, poll, depth, counters, drained, after, backpressure=job_id)

    def naive_phase(self, count: int) -> dict[str, Any]:
        say(f"naive, {count} vehicles: cancelling the job, unbinding {TELEMETRY_QUEUE}, starting the subscriber")
        jobs.cancel_ingest(self.config)
        self.client.unbind(FLEET_VHOST, MQTT_EXCHANGE, TELEMETRY_QUEUE, "fleet.*.telemetry")
        self._truncate_naive_table()  # earlier runs used the same vehicle ids: keep the read-back small
        naive = JsonLines("naive", [sys.executable, str(BENCH_DIR / "naive_subscriber.py"),
                                    "--config", str(self.naive_config)])  # fmt: skip
        try:
            naive.wait_for("stats", 60)
            depth = queue_depth(self.client, NAIVE_QUEUE)

            def drained() -> bool:
                return depth() in (0, None)

            def after(result: dict[str, Any]) -> None:
                result["queue"]["discarded_at_stop"] = depth()  # an auto-delete queue goes with its consumer
                naive.stop()
                result["subscriber"] = naive.latest("summary")

            return self._phase(
                "naive", count, self._newest_naive_rows(), depth,
                lambda: int(naive.latest("stats").get("samples_written", 0)), drained, after,
                extra_pids={"naive_subscriber": [naive.process.pid]},
            )  # fmt: skip
        finally:
            naive.stop()
            self.client.bind(FLEET_VHOST, MQTT_EXCHANGE, TELEMETRY_QUEUE, "fleet.*.telemetry")

    def _phase(
        self,
        name: str,
        count: int,
        poll: Callable[[list[str]], dict[str, tuple[int, float]]],
        depth: Callable[[], int | None],
        counter: Callable[[], int],
        drained: Callable[[], bool],
        after: Callable[[dict[str, Any]], None],
        *,
        backpressure: str | None = None,
        extra_pids: dict[str, list[int]] | None = None,
    ) -> dict[str, Any]:
        args = self.args
        generator = start_generator(self.config, self.credentials, count, args)
        pids = {**stack_processes(self.config), "generator": [generator.process.pid], **(extra_pids or {})}
        try:
            publishing = generator.wait_for("publishing", 120 + count / args.connect_rate)
            start_s, end_s = publishing["window_start"], publishing["window_end"]
            watch = Watch(poll, depth, self.watched(count), not_before_ms=publishing["anchor"] * 1000)
            watch.start()
            say(f"{name}, {count} vehicles: publishing; measuring {args.seconds} s after {args.warmup} s of warm-up")
            _sleep_until(start_s)
            cpu_before, counter_before = cpu_seconds(pids), counter()
            _sleep_until(end_s)
            cpu_after, counter_after = cpu_seconds(pids), counter()
            cassandra_memory = jvm_memory_mib(pids.get("cassandra", []))
            pressure = _backpressure(self.config, backpressure) if backpressure else None
            summary = generator.wait_for("summary", 60 + args.warmup)
        finally:
            generator.stop()
        say(f"{name}, {count} vehicles: window over; draining (at most {args.drain_timeout} s)")
        drain_started = time.monotonic()
        while not (drained() and _still(counter)) and time.monotonic() - drain_started < args.drain_timeout:
            time.sleep(1.0)
        drain_s, is_drained = round(time.monotonic() - drain_started, 1), drained()
        watch.stop()
        purged = self._purge(name) if not is_drained else 0
        say(f"{name}, {count} vehicles: reading back what was stored")
        span = (publishing["anchor"] - 5, time.time() + 5)
        reader = stored_pipeline if name == "pipeline" else stored_naive
        stored, store_latencies = reader(self.session, self.vehicles(count), start_s, end_s, span)
        offered = summary.get("window", {})
        seconds = end_s - start_s
        stored_per_s = stored / seconds
        growth = watch.depth_growth_per_s(start_s, end_s)
        result: dict[str, Any] = {
            "published": offered,
            "stored_samples_per_s": round(stored_per_s, 1),
            "stored_fraction_of_acked": round(stored_per_s / offered["acked_samples_per_s"], 3)
            if offered.get("acked_samples_per_s")
            else None,
            "consumer_counted_samples_per_s": round((counter_after - counter_before) / seconds, 1),
            "queue": {
                "depth_at_window_start": watch.depth_at(start_s),
                "depth_at_window_end": watch.depth_at(end_s),
                "growth_msgs_per_s": growth,
                "max_depth": max((d for _, d in watch.depths), default=None),
            },
            "latency_ms": {
                "write_time_minus_newest_sample": {
                    "n": len(store_latencies),
                    **percentiles(store_latencies),
                },
                "readable_polled": watch.latency_ms(start_s, end_s),
            },
            "drain": {"seconds": drain_s, "drained": is_drained, "purged_messages": purged},
            "cpu_cores": cores_used(cpu_before, cpu_after, seconds),
            "cassandra_memory_at_window_end": cassandra_memory,
            "generator": {key: summary.get(key) for key in ("connect", "unacked_at_end", "errors", "cpu_s")},
            "_backpressure": pressure,
        }
        batches_per_s = offered.get("acked_batches_per_s") or 0
        # Kept up: nearly everything acked was stored, and the backlog grew by less than 2 s of traffic over the
        # window (unacked messages wait up to a checkpoint interval, so a little depth comes and goes).
        result["keeps_up"] = bool(
            (result["stored_fraction_of_acked"] or 0) >= 0.95
            and (growth is None or growth * seconds <= 2 * batches_per_s)
        )
        after(result)
        result.pop("_backpressure", None)
        say(f"{name}, {count} vehicles: stored {stored_per_s:.0f} samples/s of {offered.get('acked_samples_per_s')}"
            f" acked; keeps up: {result['keeps_up']}")  # fmt: skip
        return result

    def _purge(self, name: str) -> int:
        if name != "pipeline":
            return 0  # the naive subscription's queue is deleted with its subscriber
        jobs.cancel_ingest(self.config)
        queue = self.client.queue(FLEET_VHOST, TELEMETRY_QUEUE) or {}
        self.client.request("DELETE", f"queues/{FLEET_VHOST}/{TELEMETRY_QUEUE}/contents")
        return int(queue.get("messages", 0))

    def _truncate_naive_table(self) -> None:
        """Empty the naive table if it exists. Asking the server is what works on 2.1 and 5.0 alike (their schema
        tables differ: system.schema_columnfamilies against system_schema.tables)."""
        from cassandra import InvalidRequest

        try:
            self.session.execute("TRUNCATE fleetsense_naive.naive_samples", timeout=120)
        except InvalidRequest:
            pass  # no such keyspace or table yet: the subscriber creates it

    def _newest_vehicle_rows(self) -> Callable[[list[str]], dict[str, tuple[int, float]]]:
        query = self.session.prepare("SELECT last_seq, last_sample_time FROM fleetsense.vehicles WHERE vehicle_id = ?")

        def poll(vehicles: list[str]) -> dict[str, tuple[int, float]]:
            futures = [(v, self.session.execute_async(query, (v,))) for v in vehicles]
            newest = {}
            for vehicle, future in futures:
                row = future.result().one()
                if row is not None and row.last_sample_time is not None:
                    newest[vehicle] = (row.last_seq, ms(row.last_sample_time))
            return newest

        return poll

    def _newest_naive_rows(self) -> Callable[[list[str]], dict[str, tuple[int, float]]]:
        query = self.session.prepare(
            "SELECT seq, sample_time FROM fleetsense_naive.naive_samples WHERE vehicle_id = ? AND hour = ? LIMIT 1"
        )

        def poll(vehicles: list[str]) -> dict[str, tuple[int, float]]:
            now_s = time.time()
            hours = sorted(set(hour_buckets(now_s - 900, now_s)))
            futures = [(v, self.session.execute_async(query, (v, h))) for v in vehicles for h in hours]
            newest: dict[str, tuple[int, float]] = {}
            for vehicle, future in futures:
                row = future.result().one()
                if row is not None and (vehicle not in newest or ms(row.sample_time) > newest[vehicle][1]):
                    newest[vehicle] = (row.seq, ms(row.sample_time))
            return newest

        return poll


def _still(counter: Callable[[], int], wait_s: float = 3.0) -> bool:
    """The consumer's counter did not move for `wait_s`."""
    before = counter()
    time.sleep(wait_s)
    return counter() == before


def _sleep_until(wall_s: float) -> None:
    while (left := wall_s - time.time()) > 0:
        time.sleep(min(left, 1.0))


def _backpressure(config: StackConfig, job_id: str) -> dict[str, Any]:
    """Flink's view at the end of the window: per operator, back-pressure level and busy ratios of its subtasks."""
    import requests

    base = f"{jobs.cluster(config).rest_url}/jobs/{job_id}"
    result = {}
    for vertex in requests.get(base, timeout=10).json().get("vertices", []):
        info = requests.get(f"{base}/vertices/{vertex['id']}/backpressure", timeout=10).json()
        subtasks = info.get("subtasks", [])
        result[vertex["name"][:60]] = {
            "level": info.get("backpressureLevel") or info.get("backpressure-level"),
            "busy_ratio": [round(float(s.get("busyRatio", 0.0)), 2) for s in subtasks],
            "backpressured_ratio": [
                round(float(s.get("backPressuredRatio", s.get("ratio", 0.0))), 2) for s in subtasks
            ],
        }
    return result


# ---------------------------------------------------------------------------------------------------------
# Set-up: stack, fleet users, the naive subscriber's user


def ensure_fleet(config: StackConfig, client: Any, count: int) -> Path:
    """Broker users bench-00000 ... for the largest fleet, provisioned once per data dir; secrets in a 0600 file."""
    path = config.secrets_dir / "bench-fleet.json"
    passwords = provisioning.load_credentials(path) if path.exists() else {}
    wanted = provisioning.fleet_ids(count, FLEET_PREFIX)
    existing = {user["name"] for user in client.users()}
    missing = {
        vid: passwords.get(vid) or new_password() for vid in wanted if vid not in existing or vid not in passwords
    }
    if missing:
        say(f"provisioning {len(missing)} vehicle users")
        started = time.monotonic()
        provisioning.provision_fleet(lambda: manager.management_client(config), missing)
        say(f"provisioned {len(missing)} in {time.monotonic() - started:.1f} s")
        passwords.update(missing)
        provisioning.save_credentials(path, passwords)
    run_path = config.secrets_dir / "bench-fleet-run.json"  # exactly the vehicles of this run, in id order
    provisioning.save_credentials(run_path, {vid: passwords[vid] for vid in wanted})
    return run_path


def ensure_naive_user(config: StackConfig, client: Any) -> Path:
    """A subscriber user that may create, bind and read its own MQTT subscription queue and read telemetry."""
    password = new_password()
    client.put_user(NAIVE_USER, password, tags="")
    own = f"mqtt-subscription-{NAIVE_CLIENT_ID}.*"
    client.put_permissions(FLEET_VHOST, NAIVE_USER, configure=f"^{own}$", write=f"^{own}$",
                           read=rf"^(amq\.topic|{own})$")  # fmt: skip
    client.put_topic_permissions(FLEET_VHOST, NAIVE_USER, exchange=MQTT_EXCHANGE, write="^$",
                                 read=r"^fleet\.[^.]+\.telemetry$")  # fmt: skip
    host, port = config.cql_contact
    path = config.secrets_dir / "bench-naive.json"
    write_private(path, json.dumps({"mqtt_host": "127.0.0.1", "mqtt_port": config.ports.mqtt, "username": NAIVE_USER,
                                    "password": password, "client_id": NAIVE_CLIENT_ID, "cql_host": host,
                                    "cql_port": port}))  # fmt: skip
    return path


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(int(meminfo[1]) / 1024**2, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


@contextmanager
def stack(config: StackConfig, *, keep: bool) -> Iterator[None]:
    from fleetsense.stack.prepare import prepare

    prepare(config, say=say)
    manager.up(config, say=say)
    try:
        yield
    finally:
        try:
            jobs.cancel_ingest(config)
        except FleetsenseError as exc:
            say(f"cancelling the job: {exc.message}")
        if not keep:
            say("stopping the stack")
            manager.down(config, say=say)


def stack_only(config: StackConfig, action: str) -> int:
    """`--stack-only up|down`: what bench/compare_cassandra.py calls around its runs."""
    from fleetsense.stack.prepare import prepare

    try:
        if action == "up":
            prepare(config, say=say)
            manager.up(config, say=say)
        else:
            manager.down(config, say=say)
    except FleetsenseError as exc:
        say(exc.render())
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vehicles", default="100,500,2000", help="fleet sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per phase")
    parser.add_argument("--warmup", type=float, default=20.0, help="publishing before the window opens")
    parser.add_argument("--phases", default="pipeline,naive")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".fleetsense-bench")
    parser.add_argument("--ports-offset", type=int, default=500)
    parser.add_argument("--keep-stack", action="store_true")
    parser.add_argument("--stack-only", choices=("up", "down"),
                        help="only start (prepare + up) or stop this data dir's stack, then exit")  # fmt: skip
    parser.add_argument("--connect-rate", type=float, default=100.0, help="new MQTT connections per second")
    parser.add_argument("--latency-vehicles", type=int, default=20)
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument("--baro", action="store_true", help="vehicles also send a barometer batch every second")
    parser.add_argument("--job-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="ingest job setting, e.g. parallelism=2 (repeatable)")  # fmt: skip
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.vehicles.split(",")]
    phases = args.phases.split(",")
    overrides = dict(item.split("=", 1) for item in args.job_setting)
    config = StackConfig(data_dir=args.data_dir.absolute(), ports=Ports().offset(args.ports_offset))
    if args.stack_only:
        return stack_only(config, args.stack_only)
    report: dict[str, Any] = {"machine": machine(), "settings": {**vars(args), "data_dir": str(args.data_dir)}}
    report["runs"] = runs = []
    try:
        with stack(config, keep=args.keep_stack):
            from fleetsense.gateway import topology

            client = manager.management_client(config)
            topology.apply(client, operator=RabbitMQ(config).operator.username)  # re-binds after a crash
            credentials = ensure_fleet(config, client, max(sizes))
            naive_config = ensure_naive_user(config, client)
            with connect(config.cql_contact) as session:
                bench = Bench(config, args, client, session, credentials, naive_config, overrides)
                for count in sizes:
                    entry: dict[str, Any] = {"vehicles": count}
                    runs.append(entry)
                    for phase in phases:
                        entry[phase] = bench.pipeline_phase(count) if phase == "pipeline" else bench.naive_phase(count)
    except FleetsenseError as exc:
        say(exc.render())
        report["error"] = exc.message
    print(json.dumps(report, indent=2, default=str))
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
