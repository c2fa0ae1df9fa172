"""The read API under load: GET /v1/fleet with 2,000 vehicles, p50/p99 latency and requests/s from a second process
(target p99 < 50 ms). Prints one JSON object to stdout, progress to stderr.

    .venv/bin/python bench/api.py [--vehicles 2000] [--seconds 20] [--concurrency 8] [--ports-offset 1150]

What it does: starts a Cassandra of its own (only Cassandra: `.fleetsense-bench/api`, the stack's ports moved by
`--ports-offset`, schema and users applied as `fleetsense stack up` does), seeds `--vehicles` vehicles as the job and
the service write them (fleet_vehicles, vehicle_status, vehicles, trips, daily_scores, and an assignment for every
other one), starts the API with uvicorn in a child process (this script with `--serve`: the service's Cassandra
user, the fleet snapshot refreshed every `--refresh-s`; the login check replaced by a fixed viewer, so what is timed
is the view, not the password hash), waits for its first snapshot, then runs the load in another child process
(`--load`: GET /v1/fleet at each of `--rates` requests/s for `--seconds` each (open loop: latency timed from when
a request was due), then `--concurrency` connections back to back for `--seconds` (closed loop: the throughput)).
Beside the latencies: the snapshot's refresh time and the answers' `age_s` (how stale the view was), the response
size, the machine's load. Cassandra is stopped at the end unless `--keep-cassandra`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
FLEET_ID = "default"


def say(text: str) -> None:
    print(f"[api {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def stack_config(data_dir: Path, offset: int) -> Any:
    from fleetsense.stack.layout import Ports, StackConfig

    return StackConfig(data_dir=data_dir.absolute(), ports=Ports().offset(offset), name=f"fleetsense-bench{offset}")


# --- the seed ---------------------------------------------------------------------------------------------------


def seed(config: Any, vehicles: int) -> None:
    sys.path.insert(0, str(REPO))
    from fleetsense.service.fleet_query import day_of

    from fleetsense.stack.cassandra_auth import JOB, session_as
    from tests import service_rows as rows

    now_ms = time.time_ns() // 1_000_000
    writes = []
    for n in range(vehicles):
        vehicle = f"bench-van-{n:05d}"
        writes += [
            rows.fleet_vehicle(FLEET_ID, vehicle, f"Van {n}"),
            rows.status(vehicle, online=n % 5 != 0, reason="heartbeat" if n % 5 else "connection lost",
                        received_ms=now_ms - n),
            rows.seen(vehicle, now_ms - 1_000 - n),
            rows.trip(vehicle, now_ms - 600_000, 600.0, is_open=n % 3 == 0),
            rows.day_score(vehicle, day_of(now_ms), 70 + n % 30, {"harsh_brake": n % 4}, now_ms=now_ms),
        ]  # fmt: skip
        if n % 2 == 0:
            writes += rows.assignment(vehicle, f"driver-{n:05d}", now_ms - 3_600_000)
    with session_as(config, JOB) as session:
        for start in range(0, len(writes), 2_000):
            rows.write_all(session, writes[start : start + 2_000])


# --- the server (a child process) ---------------------------------------------------------------------------------


def serve(config: Any, port: int, refresh_s: float) -> None:
    import uvicorn
    from fleetsense.service.app import create_app
    from fleetsense.service.auth import current_principal
    from fleetsense.service.context import ServiceContext
    from fleetsense.service.db import Db
    from fleetsense.service.fleet_snapshot import FleetSnapshotter
    from fleetsense.service.roles import Principal, Role
    from fleetsense.service.settings import ServeSettings

    from fleetsense.stack.cassandra_auth import SERVICE, session_as

    with session_as(config, SERVICE) as session:
        settings = ServeSettings(port=port, fleet_id=FLEET_ID, secret_key="bench-" + "x" * 32)
        snapshotter = FleetSnapshotter(refresh_s=refresh_s, first_wait_s=60.0)
        app = create_app(
            context=ServiceContext(db=Db(session, "fleetsense"), settings=settings, components=[snapshotter])
        )
        app.dependency_overrides[current_principal] = lambda: Principal("bench", Role.VIEWER, "token")
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the load (another child process) -----------------------------------------------------------------------------


async def load(url: str, seconds: float, concurrency: int, rates: list[float]) -> dict[str, Any]:
    """Open-loop phases first (a request every 1/rate s whatever the answers' pace, timed from when it was due, so a
    slow server cannot hide its queue), then a closed loop of `concurrency` connections back to back (the most the
    server answers: its latency there is mostly queueing)."""
    import httpx

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        await client.get("/v1/fleet")  # warm: the connection and the first snapshot
        result: dict[str, Any] = {}
        for rate in rates:
            result[f"open_loop_{rate:g}_per_s"] = await _phase(client, seconds, rate=rate)
        result[f"closed_loop_{concurrency}_connections"] = await _phase(client, seconds, concurrency=concurrency)
        scraped = (await client.get("/v1/metrics")).text
        result["refresh_s"] = refresh_stats(scraped)
        result["server_side_ms"] = server_side_ms(scraped)
    return result


async def _phase(client: Any, seconds: float, *, rate: float | None = None, concurrency: int = 0) -> dict[str, Any]:
    latencies_s: list[float] = []
    ages_s: list[float] = []
    sizes: list[int] = []
    errors: dict[str, int] = {}

    async def one(due: float) -> None:
        try:
            answer = await client.get("/v1/fleet")
            body = answer.content
        except Exception as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        latencies_s.append(time.perf_counter() - due)
        if answer.status_code != 200:
            errors[str(answer.status_code)] = errors.get(str(answer.status_code), 0) + 1
            return
        sizes.append(len(body))
        ages_s.append(float(answer.headers["x-snapshot-age-s"]))

    started = time.perf_counter()
    deadline = started + seconds
    if rate is not None:
        tasks = []
        for n in range(int(seconds * rate)):
            due = started + n / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
    else:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await one(time.perf_counter())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies_s),
        "requests_per_s": round(len(latencies_s) / elapsed, 1),
        "latency_ms": percentiles_ms(latencies_s),
        "snapshot_age_s": {
            "max": max(ages_s, default=None),
            "mean": round(sum(ages_s) / len(ages_s), 3) if ages_s else None,
        },
        "response_bytes": max(sizes, default=0),  # decompressed
        "errors": errors,
    }


def percentiles_ms(values_s: list[float]) -> dict[str, float | None]:
    ordered = sorted(values_s)
    if not ordered:
        return {"p50": None, "p90": None, "p99": None, "max": None}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1] * 1000, 2)}


def server_side_ms(exposition: str) -> dict[str, float | None]:
    """The server's own time for GET /v1/fleet (arrival to the end of the body, its metrics' histogram, all phases):
    the upper bound of the bucket holding each percentile, so what the server costs apart from the client and the
    network."""
    wanted = 'method="GET",route="/v1/fleet",status="200"'
    buckets = []
    for line in exposition.splitlines():
        if line.startswith("fleetsense_http_request_duration_seconds_bucket{") and wanted in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0

    def at(q: float) -> float | None:
        return next((round(bound * 1000, 1) for bound, count in buckets if count >= q * total), None) if total else None

    return {"requests": total, "p50_at_most": at(0.5), "p99_at_most": at(0.99)}


def refresh_stats(exposition: str) -> dict[str, float | None]:
    """The snapshot refreshes' count and mean time, from the server's own metrics."""
    found = {}
    for line in exposition.splitlines():
        for name in ("fleetsense_fleet_refresh_seconds_sum", "fleetsense_fleet_refresh_seconds_count"):
            if line.startswith(name + " "):
                found[name] = float(line.split()[1])
    count = found.get("fleetsense_fleet_refresh_seconds_count")
    total = found.get("fleetsense_fleet_refresh_seconds_sum")
    return {"refreshes": count, "mean_s": round(total / count, 3) if count and total is not None else None}


# --- the driver ---------------------------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_fleet(url: str, timeout_s: float) -> float:
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if httpx.get(f"{url}/v1/fleet", timeout=timeout_s).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the API at {url} did not answer GET /v1/fleet within {timeout_s:.0f} s")


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vehicles", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8, help="connections of the closed-loop phase")
    parser.add_argument("--rates", default="10,50", help="requests/s of the open-loop phases, comma-separated")
    parser.add_argument("--refresh-s", type=float, default=5.0, help="the fleet snapshot's refresh interval")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".fleetsense-bench" / "api")
    parser.add_argument("--ports-offset", type=int, default=1150)
    parser.add_argument("--api-port", type=int, default=18480)
    parser.add_argument("--keep-cassandra", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server child
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)  # the load child
    args = parser.parse_args(argv)
    config = stack_config(args.data_dir, args.ports_offset)
    if args.serve:
        serve(config, args.api_port, args.refresh_s)
        return 0
    if args.load:
        rates = [float(r) for r in args.rates.split(",") if r]
        print(json.dumps(asyncio.run(load(args.load, args.seconds, args.concurrency, rates))))
        return 0

    from fleetsense.stack.cassandra import Cassandra

    report: dict[str, Any] = {"machine_before": machine(), "settings": {**vars(args), "data_dir": str(args.data_dir)}}
    cassandra = Cassandra(config)
    server: subprocess.Popen[bytes] | None = None
    try:
        say(f"starting Cassandra in {config.data_dir} (CQL port {config.ports.cql})")
        cassandra.start()
        cassandra.apply_schema()
        say(f"seeding {args.vehicles} vehicles")
        started = time.monotonic()
        seed(config, args.vehicles)
        report["seed_s"] = round(time.monotonic() - started, 1)
        me = [sys.executable, str(Path(__file__).resolve()), "--data-dir", str(args.data_dir),
              "--ports-offset", str(args.ports_offset), "--api-port", str(args.api_port)]  # fmt: skip
        server = subprocess.Popen([*me, "--serve", "--refresh-s", str(args.refresh_s)])
        url = f"http://127.0.0.1:{args.api_port}"
        report["first_snapshot_s"] = round(wait_for_fleet(url, 120.0), 2)
        # The server's CPU without requests (its refreshes alone), then under the load: what a request costs in CPU
        # does not depend on how busy the rest of the machine is, unlike its latency.
        idle_s, idle_cpu_s = 2 * args.refresh_s, cpu_s(server.pid)
        time.sleep(idle_s)
        refresh_cpu_per_s = (cpu_s(server.pid) - idle_cpu_s) / idle_s
        say(f"load: {args.concurrency} connections for {args.seconds:.0f} s")
        load_started, load_cpu_s = time.monotonic(), cpu_s(server.pid)
        loaded = subprocess.run(
            [*me, "--load", url, "--seconds", str(args.seconds), "--concurrency", str(args.concurrency),
             "--rates", args.rates],
            capture_output=True, text=True, timeout=args.seconds * (2 + len(args.rates.split(","))) + 120,
        )  # fmt: skip
        load_cpu_s = cpu_s(server.pid) - load_cpu_s
        load_wall_s = time.monotonic() - load_started
        report["fleet"] = json.loads(loaded.stdout) if loaded.returncode == 0 else {"error": loaded.stderr[-2000:]}
        served = report["fleet"].get("server_side_ms", {}).get("requests") or 0
        report["server_cpu"] = {
            "refreshes_cores": round(refresh_cpu_per_s, 3),  # the snapshot's refreshes, no requests
            "under_load_cores": round(load_cpu_s / load_wall_s, 3),
            "ms_per_request": round((load_cpu_s - refresh_cpu_per_s * load_wall_s) / served * 1000, 3)
            if served
            else None,
        }
        report["machine_after"] = machine()
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not args.keep_cassandra:
            cassandra.stop()
    print(json.dumps(report, indent=2, default=str))
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
