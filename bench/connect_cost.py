"""What the client-id check costs per MQTT connect: the broker with its internal backend only, with the identity
authoriser uncached, and with it behind rabbitmq_auth_backend_cache (the stack's setting).

    .venv/bin/python bench/connect_cost.py [--vehicles 100] [--rounds 3] [--ports-offset 600]

Starts one private RabbitMQ node (its own data dir and ports) per configuration, provisions `--vehicles`
devices and times CONNECT -> CONNACK over a raw socket, then DISCONNECT, one connection at a time. Round 1 is
each device's first connect since the broker started (the cache is cold); later rounds repeat them (warm).
Progress goes to stderr, one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from fleetsense.gateway import topology

from fleetsense.load.mqtt_packets import connect_packet
from fleetsense.stack import manager
from fleetsense.stack.layout import LOOPBACK, Ports, StackConfig, repo_root
from fleetsense.stack.rabbitmq import AuthChain, RabbitMQ

ROOT = repo_root() or Path.cwd()
DISCONNECT = b"\xe0\x00"


def connect_once(port: int, vehicle_id: str, password: str) -> tuple[float, int]:
    """Seconds from opening the TCP connection to the CONNACK, and the CONNACK's return code."""
    started = time.perf_counter()
    with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(connect_packet(vehicle_id, vehicle_id, password, keepalive_s=30))
        connack = b""
        while len(connack) < 4:
            chunk = sock.recv(4 - len(connack))
            if not chunk:
                raise ConnectionError(f"{vehicle_id}: the broker closed the connection before its CONNACK")
            connack += chunk
        elapsed = time.perf_counter() - started
        if connack[3] == 0:
            sock.sendall(DISCONNECT)
    return elapsed, connack[3]


def authoriser_round_trips(url: str, count: int) -> list[float]:
    """Seconds per vhost question asked straight of the authoriser over one kept-alive connection, as the
    broker's httpc does: the authoriser's own share of an uncached connect (two questions)."""
    import requests

    body = {"username": "cost-0000", "vhost": "fleet", "client_id": "cost-0000", "tags": "fleetsense-vehicle"}
    times = []
    with requests.Session() as session:
        for _ in range(count):
            started = time.perf_counter()
            reply = session.post(f"{url}/auth/vhost", data=body, timeout=10)
            times.append(time.perf_counter() - started)
            if reply.text != "allow":
                raise RuntimeError(f"the authoriser answered {reply.text!r} to a device's own client id")
    return times


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    quantiles = statistics.quantiles(ms, n=100)
    return {
        "count": len(ms),
        "mean": round(statistics.fmean(ms), 3),
        "p50": round(quantiles[49], 3),
        "p90": round(quantiles[89], 3),
        "p99": round(quantiles[98], 3),
        "max": round(ms[-1], 3),
    }


def measure(config: StackConfig, chain: AuthChain, vehicles: int, rounds: int) -> dict[str, Any]:
    broker = RabbitMQ(config, auth_chain=chain)
    say(f"{chain.value}: starting the broker")
    broker.stop()  # a previous run's node, if any: the chain is set only at start
    broker.start()
    try:
        client = manager.management_client(config)
        topology.apply(client, operator=broker.operator.username)
        from fleetsense.device_config import load

        out = config.data_dir / "vehicles"
        passwords = {}
        for i in range(vehicles):
            vid = f"cost-{i:04d}"
            passwords[vid] = load(manager.provision_vehicle(config, client, vid, out_dir=out)).broker.password
        time.sleep(2)  # let the provisioning settle before timing
        result: dict[str, Any] = {}
        for round_no in range(1, rounds + 1):
            say(f"{chain.value}: round {round_no}")
            times, refused = [], 0
            for vid, password in passwords.items():
                elapsed, code = connect_once(config.ports.mqtt, vid, password)
                times.append(elapsed)
                refused += code != 0
            result[f"round_{round_no}_ms"] = summary_ms(times) | {"refused": refused}
        if chain is not AuthChain.INTERNAL_ONLY:
            result["authoriser_question_ms"] = summary_ms(authoriser_round_trips(broker.authoriser_url, 1000))
        return result
    finally:
        broker.stop()


def say(message: str) -> None:
    print(f"[connect_cost] {message}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vehicles", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".fleetsense-bench" / "connect-cost")
    parser.add_argument("--ports-offset", type=int, default=600)
    args = parser.parse_args()
    config = StackConfig(
        data_dir=args.data_dir.absolute(), ports=Ports().offset(args.ports_offset), name="fleetsense-connect-cost"
    )
    results = {chain.name: measure(config, chain, args.vehicles, args.rounds) for chain in AuthChain}
    print(
        json.dumps(
            {
                "bench": "connect_cost",
                "what": "CONNECT -> CONNACK over loopback, sequential, password login, clean session",
                "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "host": {"cpu_cores": os.cpu_count(), "python": platform.python_version()},
                "vehicles": args.vehicles,
                "chains": {chain.name: chain.value for chain in AuthChain},
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
