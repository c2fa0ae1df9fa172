"""The event trace endpoint's latency (GET /v1/events/{key}/trace, target p99 < 100 ms) on a stored drive. Prints
JSON.

    .venv/bin/python bench/api_trace.py [--rounds 25] [--ports-offset 1700] [--data-dir .fleetsense-bench/api-trace]
                                        [--keep-stack]

Starts its own stack (prepare + up, in `--data-dir` at `--ports-offset`) and the ingest job, stores the scripted
drive of the integration tests (firmware-sim's `harsh_events_drive`: 8 driving events, a random mounting) through the
real agent, broker and job, then asks the application in process (httpx over ASGI, so the figures are the handler's:
its Cassandra reads, decoding, the calibration over its context and the rotation, plus serialisation; no network or
auth) for each event's trace `--rounds` times, one request at a time, nothing cached between them. Beside the
request latency: the Cassandra reads alone and the pure part alone (decode, calibrate, trace), per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def figures(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


async def measure_trace(session: Any, keyspace: str, event_keys: list[str], rounds: int) -> dict[str, Any]:
    """p50/p99 of the trace endpoint over `rounds` passes over `event_keys` (each one request at a time), and of
    its two halves: the Cassandra reads and the pure computation."""
    from urllib.parse import quote

    import httpx
    from fleetsense.service import analytics_reads as reads
    from fleetsense.service import trace as tr
    from fleetsense.service.app import create_app
    from fleetsense.service.auth import current_principal
    from fleetsense.service.context import ServiceContext
    from fleetsense.service.db import Db
    from fleetsense.service.event_key import EventKey
    from fleetsense.service.roles import Principal, Role
    from fleetsense.service.settings import ServeSettings

    db = Db(session, keyspace)
    app = create_app(context=ServiceContext(db=db, settings=ServeSettings()))
    app.dependency_overrides[current_principal] = lambda: Principal("bench", Role.VIEWER, "token")
    requests_s: list[float] = []
    reads_s: list[float] = []
    compute_s: list[float] = []
    samples: list[int] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for key in event_keys:  # warm-up: statements prepared once per process
            (await client.get(f"/v1/events/{quote(key, safe='')}/trace")).raise_for_status()
        for _ in range(rounds):
            for key in event_keys:
                started = time.perf_counter()
                response = await client.get(f"/v1/events/{quote(key, safe='')}/trace")
                requests_s.append(time.perf_counter() - started)
                response.raise_for_status()
                samples.append(len(response.json()["t_ms"]))
                parsed = EventKey.parse(key)
                started = time.perf_counter()
                row = await reads.event(db, parsed.vehicle_id, parsed.start_ms, parsed.kind)
                vehicle_class = await reads.vehicle_class(db, parsed.vehicle_id)
                start_us, end_us = reads.to_us(row.start_time), reads.to_us(row.end_time)
                lo, hi = tr.context_window_us(start_us, end_us, tr.CONTEXTS_S[0])
                messages = await reads.motion_messages(db, parsed.vehicle_id, lo, hi)
                read_done = time.perf_counter()
                batches = tr.batches_within(messages, lo, hi)
                frame = tr.calibrate(batches, vehicle_class)
                tr.vehicle_frame_trace(batches, frame, *tr.trace_window_us(start_us, end_us))
                reads_s.append(read_done - started)
                compute_s.append(time.perf_counter() - read_done)
    return {
        "events": len(event_keys),
        "rounds": rounds,
        "samples_per_trace": {"min": min(samples), "max": max(samples)},
        "request": figures(requests_s),
        "cassandra_reads": figures(reads_s),
        "decode_calibrate_trace": figures(compute_s),
        "target_p99_ms": 100,
    }


def store_drive(config: Any, client: Any, session: Any, keyspace: str, out_dir: Path) -> list[str]:
    """The scripted drive through the real agent, broker and job; the keys of the events the job stored."""
    from fleetsense.cloud.query import events_between
    from fleetsense.edge.runtime import send_outbox
    from fleetsense.service.event_key import EventKey
    from fleetsense.sim.mounting import Mounting
    from fleetsense.sim.scenarios import harsh_events_drive
    from fleetsense.sim.vehicle import SensorErrors, Vehicle

    from fleetsense.device_config import load
    from fleetsense.load.virtual_drive import record_drive
    from fleetsense.stack import manager

    vehicle_id = f"bench-trace-{int(time.time())}"
    edge = load(manager.provision_vehicle(config, client, vehicle_id, out_dir=out_dir))
    script = harsh_events_drive()
    seconds = script.duration_s + 5
    start_ns = time.time_ns() - int(seconds * 1e9)
    vehicle = Vehicle(script, seed=7, mounting=Mounting.random(7), sensor_errors=SensorErrors.typical_mpu6050(7))
    record_drive(edge, seconds=seconds, start_wall_ns=start_ns, vehicle=vehicle)
    send_outbox(edge, timeout_s=180)
    expected = len(vehicle.ground_truth.events()) - 1  # the stop is not a driving event
    deadline = time.monotonic() + 180
    rows: list[Any] = []
    while time.monotonic() < deadline:
        rows = [r for r in events_between(session, keyspace, vehicle_id, start_ns // 1000, time.time_ns() // 1000)]
        if len([r for r in rows if r.kind != "stop"]) >= expected:
            break
        time.sleep(2)
    time.sleep(10)  # the job's idle flush: the last batches' filter tail and the open minute rows
    return [str(EventKey(vehicle_id, round(r.start_time.timestamp() * 1000), r.kind)) for r in rows if r.kind != "stop"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".fleetsense-bench" / "api-trace")
    parser.add_argument("--ports-offset", type=int, default=1700)
    parser.add_argument("--keep-stack", action="store_true")
    args = parser.parse_args(argv)
    from fleetsense.cloud.schema import KEYSPACE

    from fleetsense.stack import jobs, manager
    from fleetsense.stack.cassandra_auth import JOB, session_as
    from fleetsense.stack.layout import Ports, StackConfig
    from fleetsense.stack.prepare import prepare

    config = StackConfig(data_dir=args.data_dir.absolute(), ports=Ports().offset(args.ports_offset))

    def say(line: str) -> None:
        print(line, flush=True, file=sys.stderr)

    prepare(config, say=say)
    manager.up(config, say=say)
    try:
        jobs.submit_ingest(config, {})
        client = manager.management_client(config)
        with session_as(config, JOB) as session:
            keys = store_drive(config, client, session, KEYSPACE, config.data_dir)
            load_before = os.getloadavg()
            result = asyncio.run(measure_trace(session, KEYSPACE, keys, args.rounds))
            result["load_average_1m"] = {"before": load_before[0], "after": os.getloadavg()[0], "cores": os.cpu_count()}
    finally:
        if not args.keep_stack:
            manager.down(config, say=say)
    print(json.dumps({"machine": platform.platform(), "trace": result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
