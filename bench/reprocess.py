"""Kappa reprocessing's replay speed (issue 19, docs/reprocessing.md): a day of history replayed into a new result
version while the live job ingests a live fleet beside it, on a stack of its own; and from it, how long a day of a
1,000-vehicle fleet would take to reprocess on this box. Prints one JSON object to stdout, progress to stderr.

    .venv/bin/python bench/reprocess.py [--vehicles 50] [--hours 2] [--live-vehicles 100] [--baseline-seconds 60]
                                        [--set KEY=VALUE ...] [--timeout 7200] [--keep-stack]

1. A fresh stack (`.fleetsense-bench/reprocess`, wiped first, ports offset 800) and its live ingest job.
2. History without waiting for it: yesterday (UTC), `--vehicles` x `--hours` of driving, one 1 s batch of 100 Hz
   IMU samples a second, re-stamped from the load generator's pooled drives (wire.Restamper) and written the way the
   live job stores them (cloud/result_rows.block_writes through its CassandraWriter): `batches`, `vehicle_hours`,
   `vehicles`.
3. The live fleet (`--live-vehicles`, the load generator as bench/pipeline.py runs it) publishes all along; the live
   job's latency (a batch's write time - its newest sample, as bench/pipeline.py measures it) and stored samples/s
   over `--baseline-seconds` before the replay and over the replay.
4. `reprocess(since="1d")`: its job and feeder, polled until caught up (promote's own test). What is measured:
   bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from fleetsense.cloud.schema import KEYSPACE
from fleetsense.gateway.topology import FLEET_VHOST, replay_queue
from pipeline import (
    JsonLines,
    cores_used,
    cpu_seconds,
    ensure_fleet,
    hour_buckets,
    machine,
    ms,
    say,
    stack_processes,
)
from pipeline import stack as pipeline_stack

from fleetsense import wire
from fleetsense.errors import ConfigError, FleetsenseError
from fleetsense.load import provisioning
from fleetsense.load.stats import percentiles
from fleetsense.stack import cassandra_auth, jobs, manager, reprocess
from fleetsense.stack.layout import Ports, StackConfig, repo_root

ROOT = repo_root() or Path.cwd()
HISTORY_PREFIX = "hist"  # the history's vehicles; the live fleet is bench/pipeline.py's ("bench-00000", ...)
LIVE_PREFIX = "bench"
DAY_MS = 86_400_000
BATCH_US = 1_000_000  # the agent's (and the generator's) window: one IMU batch a second
IMU_RATE_HZ = 100
# The projection's fleet-day: what a vehicle sends on a working day.
FLEET_VEHICLES = 1000
DRIVING_HOURS_PER_DAY = 8.0
SAMPLES_PER_VEHICLE_DAY = round(DRIVING_HOURS_PER_DAY * 3600 * IMU_RATE_HZ)  # 2,880,000
POLL_S = 2.0


# ---------------------------------------------------------------------------------------------------------
# Pure arithmetic


def drive_start_ms(index: int, *, day_start_ms: int, hours: float) -> int:
    """Vehicle `index`'s drive start in the day: ten start times spread over the hours that leave the whole drive
    inside the day, so hour partitions and vehicle-days look like a fleet's, not like one vehicle's."""
    spread_ms = (24.0 - hours) * 3_600_000
    return day_start_ms + int((index * 7) % 10 / 10 * spread_ms) // 1000 * 1000


def per_s(count: float, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if seconds else None


def projection(samples_per_s: float | None, *, start_s: float = 0.0) -> dict[str, Any]:
    """How long one day of FLEET_VEHICLES vehicles (DRIVING_HOURS_PER_DAY at IMU_RATE_HZ each) takes to replay at
    `samples_per_s`, after `start_s` of start-up."""
    samples = FLEET_VEHICLES * SAMPLES_PER_VEHICLE_DAY
    seconds = start_s + samples / samples_per_s if samples_per_s else None
    return {
        "samples_per_s": samples_per_s,
        "seconds": round(seconds) if seconds else None,
        "hours": round(seconds / 3600, 2) if seconds else None,
        "replay_days_per_fleet_day": round(seconds / 86_400, 2) if seconds else None,
    }


@dataclass
class Point:
    """One poll of the replay: seconds since its submit, what the feeder had fed, what its job had acknowledged."""

    at_s: float
    passes: int
    fed_rows: int
    fed_samples: int
    queued: int | None
    acked: int | None


@dataclass
class Follow:
    """The replay's polls, and the moments that matter (seconds since the submit)."""

    points: list[Point] = field(default_factory=list)
    first_pass_s: float | None = None  # the feeder finished its first pass over the log
    first_pass_rows: int = 0
    first_pass_samples: int = 0
    stored_s: float | None = None  # the job had acknowledged (checkpointed, written) all the first pass fed
    caught_up_s: float | None = None  # reprocess.catch_up's verdict: what `job promote` asks for
    missing: tuple[str, ...] = ()
    pass_starts_ms: list[int] = field(default_factory=list)  # each finished pass's start (fed_through_ms), in order

    def add(self, point: Point, *, caught_up: bool, missing: tuple[str, ...], pass_start_ms: int | None) -> None:
        self.points.append(point)
        self.missing = missing
        if pass_start_ms is not None and pass_start_ms not in self.pass_starts_ms:
            self.pass_starts_ms.append(pass_start_ms)
        if self.first_pass_s is None and point.passes >= 1:
            # A later pass may have fed a little more before this poll: the ack target is then a little late.
            self.first_pass_s, self.first_pass_rows, self.first_pass_samples = (
                point.at_s,
                point.fed_rows,
                point.fed_samples,
            )
        if self.first_pass_s is not None and self.stored_s is None and (point.acked or 0) >= self.first_pass_rows:
            self.stored_s = point.at_s
        if caught_up and self.caught_up_s is None:
            self.caught_up_s = point.at_s

    @property
    def done(self) -> bool:
        return self.stored_s is not None and self.caught_up_s is not None

    def pass_intervals_s(self) -> list[float]:
        """Seconds between the starts of consecutive finished passes seen (a pass, and the pause after it when it
        found little to feed): how often the feeder looks at the whole log again. Passes that start and finish
        between two polls are not seen."""
        return [round((b - a) / 1000, 1) for a, b in pairwise(self.pass_starts_ms)]

    def thinned(self, every_s: float = 30.0) -> list[dict[str, Any]]:
        kept: list[dict[str, Any]] = []
        next_s = 0.0
        for point in self.points:
            if point.at_s >= next_s or point is self.points[-1]:
                kept.append({k: round(v, 1) if isinstance(v, float) else v for k, v in vars(point).items()})
                next_s = point.at_s + every_s
        return kept


# ---------------------------------------------------------------------------------------------------------
# History: a day of the log written as the live job writes it


def write_history(config: StackConfig, *, vehicles: int, hours: float, day_start_ms: int) -> dict[str, Any]:
    """`vehicles` x `hours` of 1 s IMU batches in `batches`, `vehicle_hours` and `vehicles`, through the job's own
    row builder and writer; vehicle i drives pooled drive i mod 16 from its own second, like the load generator."""
    from fleetsense.cloud.result_rows import block_writes
    from fleetsense.cloud.store import CassandraWriter, hour_bucket_ms
    from fleetsense.sim.pool import render_pool

    seeds, pool_seconds = 16, 64  # the load generator's defaults
    started = time.monotonic()
    pools = [render_pool(seed, seconds=pool_seconds) for seed in range(seeds)]
    say(f"history: rendered {seeds} x {pool_seconds} s of pooled batches in {time.monotonic() - started:.1f} s")
    per_vehicle = round(hours * 3600 * 1_000_000 / BATCH_US)
    batches = samples = message_bytes = 0
    started = time.monotonic()
    with cassandra_auth.session_as(config, cassandra_auth.OPERATOR) as session:
        writer = CassandraWriter(session, KEYSPACE)
        for index, vehicle_id in enumerate(provisioning.fleet_ids(vehicles, HISTORY_PREFIX)):
            stamper, pool = wire.Restamper(vehicle_id), pools[index % seeds]
            first = index // seeds * 7 % pool_seconds
            start_us = drive_start_ms(index, day_start_ms=day_start_ms, hours=hours) * 1000
            writes: list[Any] = []
            last_hour: int | None = None
            for seq in range(per_vehicle):
                message = stamper.stamp(pool[(first + seq) % len(pool)], seq, start_us + seq * BATCH_US)
                header = wire.decode_header(message)
                hour = hour_bucket_ms(header.start_time_us)
                last = seq == per_vehicle - 1
                writes += block_writes(header, message, epoch=header.epoch, new_hour=hour != last_hour, latest=last)
                last_hour = hour
                batches += 1
                samples += header.sample_count
                message_bytes += len(message)
                if len(writes) >= 4000 or last:
                    writer.write_all(writes)
                    writes = []
            if index % 10 == 9 or index == vehicles - 1:
                say(f"history: {index + 1}/{vehicles} vehicles, {batches:,} batches written")
    seconds = time.monotonic() - started
    return {
        "day": datetime.fromtimestamp(day_start_ms / 1000, UTC).date().isoformat(),
        "vehicles": vehicles,
        "driving_hours_per_vehicle": hours,
        "batches": batches,
        "samples": samples,
        "message_bytes": message_bytes,
        "message_bytes_per_sample": round(message_bytes / samples, 2) if samples else None,
        "write_seconds": round(seconds, 1),
        "write_retries": writer.retries,
    }


# ---------------------------------------------------------------------------------------------------------
# The live fleet: what the live job stored, when


def live_writes(session: Any, vehicles: list[str], span: tuple[float, float]) -> list[tuple[float, float, int]]:
    """(write time ms, write time - newest sample ms, samples) of every batch the live job stored for `vehicles` in
    the hours of `span` (bench/pipeline.py's stored_pipeline, kept per batch so one read serves two windows)."""
    from cassandra.concurrent import execute_concurrent_with_args

    query = session.prepare(
        "SELECT sample_count, start_time, sample_period_us, writetime(sample_count) AS written "
        f"FROM {KEYSPACE}.batches WHERE vehicle_id = ? AND hour_bucket = ?"
    )
    params = [(v, h) for v in vehicles for h in hour_buckets(*span)]
    found = []
    for _ok, rows in execute_concurrent_with_args(session, query, params, concurrency=50, raise_on_first_error=True):
        for row in rows:
            written_ms = row.written / 1000.0
            newest_ms = ms(row.start_time) + (row.sample_count - 1) * row.sample_period_us / 1000.0
            found.append((written_ms, written_ms - newest_ms, row.sample_count))
    return found


def live_window(writes: list[tuple[float, float, int]], start_s: float, end_s: float) -> dict[str, Any]:
    inside = [(latency, n) for written, latency, n in writes if start_s * 1000 <= written < end_s * 1000]
    latencies = [latency for latency, _ in inside]
    return {
        "seconds": round(end_s - start_s, 1),
        "stored_samples_per_s": per_s(sum(n for _, n in inside), end_s - start_s),
        "latency_ms": {"n": len(latencies), **percentiles(latencies)},
    }


def start_generator(config: StackConfig, credentials: Path, vehicles: int, seconds: float) -> JsonLines:
    """The load generator as bench/pipeline.py runs it; it publishes for `seconds` (stopped earlier by us)."""
    argv = [sys.executable, "-m", "fleetsense.load", "run", "--port", str(config.ports.mqtt),
            "--credentials", str(credentials), "--vehicles", str(vehicles), "--seconds", str(seconds),
            "--warmup", "0", "--stats-interval", "30"]  # fmt: skip
    return JsonLines("generator", argv)


# ---------------------------------------------------------------------------------------------------------
# The replay


def follow_replay(config: StackConfig, version: int, *, submitted_s: float, timeout_s: float) -> Follow:
    """Poll the replay until the job has stored all its first pass fed and catch_up says it has caught up."""
    client = manager.management_client(config)
    flink = jobs.cluster(config)
    follow = Follow()
    said = 0.0
    while time.time() - submitted_s < timeout_s:
        progress = reprocess.load_progress(config, version)
        queue = client.queue(FLEET_VHOST, replay_queue(version)) or {}
        depth = int(queue["messages"]) if "messages" in queue else None
        acked = queue.get("message_stats", {}).get("ack")
        now_s = time.time()
        check = reprocess.catch_up(
            progress,
            queued=depth,
            job_running=flink.running(reprocess.job_name(version)) is not None,
            feeder_alive=reprocess.feeder_pid(config, version) is not None,
            now_ms=int(now_s * 1000),
        )
        point = Point(
            at_s=now_s - submitted_s,
            passes=progress.passes if progress else 0,
            fed_rows=progress.counts.rows if progress else 0,
            fed_samples=progress.counts.samples if progress else 0,
            queued=depth,
            acked=None if acked is None else int(acked),
        )
        pass_start_ms = progress.fed_through_ms if progress else None
        follow.add(point, caught_up=check.caught_up, missing=check.missing, pass_start_ms=pass_start_ms)
        if now_s - said >= 30 or follow.done:
            said = now_s
            lines = reprocess.progress_lines(progress, queued=depth, now_ms=int(now_s * 1000)) if progress else []
            say(f"replay at {point.at_s:.0f} s: acked {point.acked}; " + " / ".join(lines))
        if follow.done:
            return follow
        time.sleep(POLL_S)
    return follow


def replay_counters(config: StackConfig, job_id: str) -> dict[str, int]:
    try:
        return dict(jobs.cluster(config).counters(job_id, ("accepted", "samples", "rejected", "duplicate", "late")))
    except Exception as exc:  # the report says what it can
        say(f"the replay job's counters: {type(exc).__name__}: {exc}")
        return {}


# ---------------------------------------------------------------------------------------------------------
# The stack


@contextmanager
def fresh_stack(config: StackConfig, *, keep: bool) -> Iterator[None]:
    """A wiped data dir (no earlier run's history, versions or feeder), then bench/pipeline.py's stack."""
    manager.down(config, say=lambda _: None)
    shutil.rmtree(config.data_dir, ignore_errors=True)
    with pipeline_stack(config, keep=keep):
        yield


def run(config: StackConfig, args: argparse.Namespace, report: dict[str, Any]) -> None:
    from fleetsense.gateway import topology

    from fleetsense.stack.rabbitmq import RabbitMQ

    client = manager.management_client(config)
    topology.apply(client, operator=RabbitMQ(config).operator.username)
    jobs.submit_ingest(config)
    now_ms = int(time.time() * 1000)
    day_start_ms = now_ms - now_ms % DAY_MS - DAY_MS  # yesterday, UTC: inside `--since 1d`
    report["history"] = write_history(config, vehicles=args.vehicles, hours=args.hours, day_start_ms=day_start_ms)
    generator = None
    if args.live_vehicles:
        credentials = ensure_fleet(config, client, args.live_vehicles)
        generator = start_generator(config, credentials, args.live_vehicles, args.timeout + args.baseline_seconds + 900)
    try:
        groups = stack_processes(config)
        anchor_s = time.time()
        if generator is not None:
            groups["generator"] = [generator.process.pid]
            anchor_s = generator.wait_for("publishing", 120 + args.live_vehicles / 100)["anchor"]
            say(f"live fleet of {args.live_vehicles} publishing; {args.warmup_seconds:.0f} s of warm-up, then "
                f"{args.baseline_seconds:.0f} s measured before the replay")  # fmt: skip
            time.sleep(args.warmup_seconds)
        baseline = (time.time(), cpu_seconds(groups))
        time.sleep(args.baseline_seconds)
        report["replay"], window = replay(config, args, report["history"], groups)
    finally:
        if generator is not None:
            generator.stop()
    report["projection"] = projections(report["replay"])
    if generator is not None:
        with cassandra_auth.session_as(config, cassandra_auth.READER) as session:
            live_ids = provisioning.fleet_ids(args.live_vehicles, LIVE_PREFIX)
            writes = live_writes(session, live_ids, (anchor_s - 5, time.time() + 5))
        (submitted_s, cpu_submit), ended_s = window
        report["live"] = {
            "vehicles": args.live_vehicles,
            "before_replay": {
                **live_window(writes, baseline[0], submitted_s),
                "cpu_cores": cores_used(baseline[1], cpu_submit, submitted_s - baseline[0]),
            },
            "during_replay": live_window(writes, submitted_s, ended_s),
            "generator": generator.latest("stats"),
        }
    if report["replay"]["caught_up_s"] is None or report["replay"]["first_pass_stored_s"] is None:
        report["error"] = f"the replay had not caught up after {args.timeout:.0f} s: " + "; ".join(
            report["replay"]["missing"]
        )


def replay(
    config: StackConfig, args: argparse.Namespace, history: dict[str, Any], groups: dict[str, list[int]]
) -> tuple[dict[str, Any], tuple[tuple[float, dict[str, float]], float]]:
    """`reprocess --since 1d`, followed until caught up, then dropped; its report, and ((submit time, CPU then),
    end time)."""
    say(f"reprocess --since 1d {' '.join(args.set)}")
    submitted_s = time.time()
    cpu_before = cpu_seconds(groups)
    load_at_submit = [round(x, 2) for x in os.getloadavg()]
    started = reprocess.reprocess(config, since="1d", overrides=dict(item.split("=", 1) for item in args.set))
    call_s = time.time() - submitted_s
    try:
        feeder = reprocess.feeder_pid(config, started.version)
        groups = {**groups, "feeder": [feeder] if feeder is not None else []}
        if feeder is not None:
            # The feeder is our child here: reaped as it exits, or reprocess.feeder_pid (os.kill(pid, 0)) would see
            # its zombie as running and reprocess.drop would wait its full minute for it to stop.
            threading.Thread(target=reap, args=(feeder,), name="reap-feeder", daemon=True).start()
        follow = follow_replay(config, started.version, submitted_s=submitted_s, timeout_s=args.timeout)
        ended_s = time.time()
        cpu_after = cpu_seconds(groups)
        progress = reprocess.load_progress(config, started.version)
        counters = replay_counters(config, started.job_id)
    finally:
        say(f"dropping version {started.version}")
        reprocess.drop(config, started.version)
    result = replay_report(history, started, follow, progress, counters, call_s)
    result["cpu_cores"] = cores_used(cpu_before, cpu_after, ended_s - submitted_s)
    result["load_average_at_submit"] = load_at_submit
    return result, ((submitted_s, cpu_before), ended_s)


def reap(pid: int) -> None:
    with suppress(ChildProcessError):  # already reaped (subprocess reaps the Popen objects it dropped)
        os.waitpid(pid, 0)


def projections(replay: dict[str, Any]) -> dict[str, Any]:
    return {
        "assumption": f"{FLEET_VEHICLES:,} vehicles x {DRIVING_HOURS_PER_DAY:g} driving hours a day at "
        f"{IMU_RATE_HZ} Hz = {SAMPLES_PER_VEHICLE_DAY:,} samples per vehicle-day, "
        f"{FLEET_VEHICLES * SAMPLES_PER_VEHICLE_DAY:,} per fleet-day",
        "at_end_to_end_rate": projection(replay["end_to_end_samples_per_s"]),
        "at_after_start_rate": projection(replay["after_start_samples_per_s"], start_s=replay["reprocess_call_s"]),
    }


def replay_report(
    history: dict[str, Any], started: Any, follow: Follow, progress: Any, counters: dict[str, int], call_s: float
) -> dict[str, Any]:
    rows = progress.counts.rows if progress else 0
    return {
        "reprocess_call_s": round(call_s, 1),  # the version, its keyspace and queue, its job submitted and running
        "version": started.version,
        "job_id": started.job_id,
        "first_pass_fed_s": round(follow.first_pass_s, 1) if follow.first_pass_s is not None else None,
        "first_pass_stored_s": round(follow.stored_s, 1) if follow.stored_s is not None else None,
        "caught_up_s": round(follow.caught_up_s, 1) if follow.caught_up_s is not None else None,
        "first_pass": {
            "batches": follow.first_pass_rows,
            "samples": follow.first_pass_samples,
            "history_samples": history["samples"],
            "live_samples": follow.first_pass_samples - history["samples"],
        },
        "fed_at_end": {
            "batches": rows,
            "samples": progress.counts.samples if progress else 0,
            "late_batches": progress.counts.late_rows if progress else 0,
            "passes": progress.passes if progress else 0,
            "vehicle_days": progress.vehicle_days_total if progress else 0,
        },
        # End to end: log read, feeder, broker, job, Cassandra writes; from the submit (job start-up included).
        "end_to_end_samples_per_s": per_s(follow.first_pass_samples, follow.stored_s),
        # From the end of the reprocess call (the job runs, the feeder starts) to the same moment: the rate a long
        # replay runs at, its start-up left out.
        "after_start_samples_per_s": per_s(
            follow.first_pass_samples, follow.stored_s - call_s if follow.stored_s is not None else None
        ),
        "feeder_samples_per_s": round(progress.samples_per_s(), 1) if progress else None,
        "feeder_feeding_s": round(progress.feeding_ms / 1000, 1) if progress else None,
        "job_counters": counters,
        "missing": list(follow.missing),
        "pass_intervals_s": follow.pass_intervals_s(),
        "series": follow.thinned(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vehicles", type=int, default=50, help="vehicles in yesterday's history")
    parser.add_argument("--hours", type=float, default=2.0, help="driving hours of each in the history")
    parser.add_argument("--live-vehicles", type=int, default=100, help="the live fleet beside the replay (0: none)")
    parser.add_argument("--warmup-seconds", type=float, default=60.0, help="live fleet publishing before measuring")
    parser.add_argument("--baseline-seconds", type=float, default=60.0, help="the live job measured before the replay")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="the replay's --set")
    parser.add_argument("--timeout", type=float, default=7200.0, help="at most this long for the replay to catch up")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".fleetsense-bench" / "reprocess")
    parser.add_argument("--ports-offset", type=int, default=800)
    parser.add_argument("--keep-stack", action="store_true")
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except ConfigError as exc:
        say(exc.render())
        return 2
    config = StackConfig(
        data_dir=args.data_dir.absolute(), ports=Ports().offset(args.ports_offset), name="fleetsense-bench-reprocess"
    )
    report: dict[str, Any] = {"machine": machine(), "settings": {**vars(args), "data_dir": str(args.data_dir)}}
    try:
        with fresh_stack(config, keep=args.keep_stack):
            run(config, args, report)
    except FleetsenseError as exc:
        say(exc.render())
        report["error"] = exc.message
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2, default=str))
    return 1 if "error" in report else 0


def check_args(args: argparse.Namespace) -> None:
    if args.vehicles < 1 or args.live_vehicles < 0:
        raise ConfigError("--vehicles must be at least 1 and --live-vehicles at least 0", hint="e.g. --vehicles 50")
    if not 0 < args.hours <= 24:
        raise ConfigError(f"--hours {args.hours}: a vehicle drives more than 0 and at most 24 hours of a day")
    bad = [item for item in args.set if "=" not in item]
    if bad:
        raise ConfigError(f"--set {bad[0]!r} is not KEY=VALUE", hint="e.g. --set thresholds=van.harsh_brake_g=0.30")


if __name__ == "__main__":
    sys.exit(main())
