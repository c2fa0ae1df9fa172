"""CPU per message of the ingest job's Python step, in one process, without Flink or Cassandra. Prints JSON.

    .venv/bin/python bench/job_step.py [--vehicles 200] [--seconds 60] [--bundle 50] [--profile]
                                       [--cassandra HOST:PORT [--batch-rows 16,64]]

What the analysis subtask does with a bundle, minus the Cassandra driver: `shard_stream.on_bundle` over real
wire-format v2 messages (the fleet load generator's rendered blocks, re-stamped per vehicle and second), with
a dict as the shard's store and each touched vehicle's state pickled once per bundle, as the job's map state
does. The fleet is cut into bundles of `--bundle` messages of one second's batches, the size the job saw at
1,000 vehicles (about 50). `--profile` adds the top functions by cumulative time (cProfile inflates every
figure; the totals come from the run without it). The figures are CPU seconds of this process
(`time.process_time`), so another busy process on the machine changes them little.

With `--cassandra` (a running node, e.g. the local stack's 127.0.0.1:9042), each bundle's writes also go through
the job's `CassandraWriter` into a keyspace of the bench's own (`fleetsense_stepbench`, schema applied first),
once per `--batch-rows` value: the extra CPU is the driver's (this process's, its I/O thread included), so it
can be compared side by side with the step alone and between batch sizes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pickle
import platform
import pstats
import time
from collections.abc import MutableMapping
from typing import Any

from fleetsense.cloud.shard_stream import PrefixedWaiting, on_bundle
from fleetsense.cloud.vehicle_stream import StreamSettings, VehicleState
from fleetsense.sim.pool import render_pool

from fleetsense import wire

EPOCH_US = 1_790_000_000_000_000


class PickledStore:
    """The job's store without the JVM: states kept live, pickled once per save like the Flink map state."""

    def __init__(self) -> None:
        self.live: dict[str, VehicleState] = {}
        self.pickled_bytes = 0
        self._waiting: dict[str, bytes] = {}

    def load(self, vehicle_id: str) -> VehicleState | None:
        return self.live.get(vehicle_id)

    def save(self, vehicle_id: str, state: VehicleState) -> None:
        self.pickled_bytes += len(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        self.live[vehicle_id] = state

    def waiting(self, vehicle_id: str) -> MutableMapping[int, bytes]:
        waiting: MutableMapping[int, bytes] = PrefixedWaiting(self._waiting, vehicle_id)
        return waiting


def messages(vehicles: int, seconds: int) -> list[list[tuple[str, bytes]]]:
    """Per second, every vehicle's batch of that second (routing key, body); vehicles share 4 rendered drives."""
    pools = [render_pool(seed, seconds=seconds) for seed in range(4)]
    stampers = [wire.Restamper(f"bench-{v:05d}") for v in range(vehicles)]
    out = []
    for second in range(seconds):
        start_us = EPOCH_US + second * 1_000_000
        out.append(
            [
                (f"fleet.bench-{v:05d}.telemetry", stamper.stamp(pools[v % 4][second], second, start_us))
                for v, stamper in enumerate(stampers)
            ]
        )
    return out


STEP_KEYSPACE = "fleetsense_stepbench"


def run(per_second: list[list[tuple[str, bytes]]], bundle: int, writer: Any = None) -> dict[str, Any]:
    store, settings = PickledStore(), StreamSettings()
    deadlines: dict[str, int] = {}
    counts: dict[str, int] = {}
    writes = 0
    started, wall_started = time.process_time(), time.perf_counter()
    for second, batch in enumerate(per_second):
        now_ms = (EPOCH_US // 1000) + (second + 1) * 1000 + 50  # each batch arrives 50 ms after its window
        for i in range(0, len(batch), bundle):
            result = on_bundle(
                store, deadlines, batch[i : i + bundle], now_ms=now_ms, settings=settings, profiles_of=lambda _: {}
            )
            writes += len(result.writes)
            if writer is not None:
                writer.write_all(result.writes)
            for name, n in result.counts.items():
                counts[name] = counts.get(name, 0) + n
    cpu_s, wall_s = time.process_time() - started, time.perf_counter() - wall_started
    total = sum(len(batch) for batch in per_second)
    return {
        "messages": total,
        "cpu_s": round(cpu_s, 3),
        "cpu_us_per_message": round(cpu_s / total * 1e6, 1),
        "wall_us_per_message": round(wall_s / total * 1e6, 1),
        "writes_per_message": round(writes / total, 3),
        "pickled_bytes_per_message": round(store.pickled_bytes / total, 1),
        "counts": counts,
    }


def with_writes(per_second: list[list[tuple[str, bytes]]], bundle: int, contact: str, sizes: str) -> list[Any]:
    from fleetsense.cloud.cassandra_session import connect
    from fleetsense.cloud.schema import apply_schema
    from fleetsense.cloud.store import CassandraWriter

    host, port = contact.rsplit(":", 1)
    out = []
    with connect((host, int(port))) as session:
        apply_schema(session, keyspace=STEP_KEYSPACE)
        for rows in (int(n) for n in sizes.split(",")):
            writer = CassandraWriter(session, STEP_KEYSPACE, batch_rows=rows)
            run(per_second[:3], bundle, writer)  # prepared statements, connections and caches warm
            out.append({"batch_rows": rows, **run(per_second, bundle, writer)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--bundle", type=int, default=50)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cassandra", help="HOST:PORT of a running node: also write every bundle's rows")
    parser.add_argument("--batch-rows", default="16", help="comma-separated writer batch sizes to compare")
    args = parser.parse_args()
    per_second = messages(args.vehicles, args.seconds)
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "vehicles": args.vehicles,
        "seconds": args.seconds,
        "bundle_messages": args.bundle,
        "step": run(per_second, args.bundle),
    }
    if args.cassandra:
        report["with_writes"] = with_writes(per_second, args.bundle, args.cassandra, args.batch_rows)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, messages(args.vehicles, min(args.seconds, 20)), args.bundle)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        report["profile_top_by_own_time"] = text.getvalue().splitlines()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
