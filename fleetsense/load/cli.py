"""The load generator's command line:

    python -m fleetsense.load provision --data-dir D --ports-offset 500 --vehicles 2000 --out creds.json
    python -m fleetsense.load run --port 2383 --credentials creds.json --vehicles 2000 --seconds 60

`run` prints JSON lines to stdout: `publishing` (the measured window, wall clock), `stats` every interval and
`summary` at the end; progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from fleetsense.endpoints import parse_endpoint_text
from fleetsense.load.provisioning import fleet_ids, load_credentials, provision_fleet, save_credentials
from fleetsense.load.runner import LoadSettings, emit, run_load, say
from fleetsense.load.vehicles import build_fleet
from fleetsense.stack import manager
from fleetsense.stack.layout import Ports, StackConfig
from fleetsense.stack.secrets import new_password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleetsense.load",
        description="A fleet of simulated vehicles in one process, each its own broker user over its own MQTT "
        "connection, publishing real wire-format batches (QoS 1) at real-time rate.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    prov = sub.add_parser("provision", help="create broker users for a load fleet on a local stack")
    prov.add_argument("--data-dir", type=Path, required=True)
    prov.add_argument("--ports-offset", type=int, default=0)
    prov.add_argument("--vehicles", type=int, required=True)
    prov.add_argument("--prefix", default="load")
    prov.add_argument("--out", type=Path, required=True, help="credentials file to write (mode 0600)")
    run = sub.add_parser("run", help="drive the fleet")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=1883)
    run.add_argument("--endpoints", help='several brokers, "host:port,host:port": each vehicle fails over between them')
    run.add_argument("--credentials", type=Path, required=True)
    run.add_argument("--vehicles", type=int, help="use the first N vehicles of the credentials file")
    run.add_argument("--seconds", type=float, default=60.0)
    run.add_argument("--warmup", type=float, default=10.0)
    run.add_argument("--connect-rate", type=float, default=100.0)
    run.add_argument("--pool-seeds", type=int, default=16)
    run.add_argument("--pool-seconds", type=int, default=64)
    run.add_argument("--baro", action="store_true", help="also a barometer batch every second")
    run.add_argument("--stats-interval", type=float, default=5.0)
    run.add_argument("--tolerate-refused", action="store_true", help="keep going when some logins are refused")
    args = parser.parse_args(argv)
    if args.command == "provision":
        return _provision(args)
    credentials = load_credentials(args.credentials)
    if args.vehicles:
        credentials = dict(sorted(credentials.items())[: args.vehicles])
    endpoints = (
        parse_endpoint_text(args.endpoints, default_port=args.port, where="--endpoints") if args.endpoints else ()
    )
    settings = LoadSettings(host=args.host, port=args.port, endpoints=endpoints, seconds=args.seconds,
                            warmup_s=args.warmup, connect_rate_per_s=args.connect_rate, baro=args.baro,
                            stats_interval_s=args.stats_interval, tolerate_refused=args.tolerate_refused)  # fmt: skip
    started = time.monotonic()
    vehicles = build_fleet(credentials, pool_seeds=args.pool_seeds, pool_seconds=args.pool_seconds, baro=args.baro)
    say(f"rendered {args.pool_seeds} x {args.pool_seconds} s of pooled batches in {time.monotonic() - started:.1f} s")
    summary = asyncio.run(run_load(settings, vehicles))
    emit("summary", **summary)
    return 0 if summary.get("ok") else 2


def _provision(args: argparse.Namespace) -> int:
    config = StackConfig(data_dir=args.data_dir, ports=Ports().offset(args.ports_offset))
    passwords = {vid: new_password() for vid in fleet_ids(args.vehicles, args.prefix)}
    started = time.monotonic()
    provision_fleet(lambda: manager.management_client(config), passwords)
    save_credentials(args.out, passwords)
    say(f"provisioned {len(passwords)} vehicles in {time.monotonic() - started:.1f} s; credentials in {args.out}")
    return 0
