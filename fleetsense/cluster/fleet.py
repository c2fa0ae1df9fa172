"""The simulated fleet of the fault scenarios: vehicles whose drives were recorded beforehand (scripted, with known
events) are replayed live through the real edge agent's outbox and link, so traffic flows while a fault is injected.

Each vehicle's recorded batches sit in `<state_dir>/recorded/outbox`; the runner appends them to the vehicle's live
outbox (`<state_dir>/outbox`) at the pace they were sampled (times `speed`), exactly as the agent does while
driving, and the vehicle's Link publishes them with its own backoff, acknowledgements and replay rate. A fault
therefore builds a real backlog in the outbox, and the outbox carries it across. The runner writes its progress
(per vehicle: batches produced, acknowledged, total) to a JSON file twice a second: the scenario reads it to know
what "current" means at the fault's end. On the cluster it runs on the fleet host:

    ip netns exec <prefix>-fleet1 python -m fleetsense.cluster.fleet --vehicles DIR --progress FILE
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from fleetsense import wire
from fleetsense.device_config import EdgeConfig, load
from fleetsense.edge.link import Link
from fleetsense.edge.outbox import Gap, Outbox
from fleetsense.edge.runtime import open_outbox
from fleetsense.errors import ConfigError
from fleetsense.status import VehicleStatus

RECORDED_DIR = "recorded"  # under a vehicle's state dir: the outbox its drive was recorded into
PROGRESS_INTERVAL_S = 0.5
DRAIN_POLL_S = 0.05


def recorded_config(config: EdgeConfig) -> EdgeConfig:
    """The same vehicle with its state under `recorded/`: record a drive with it, the live outbox stays empty."""
    from dataclasses import replace

    return replace(config, storage=replace(config.storage, state_dir=str(config.state_dir / RECORDED_DIR)))


@dataclass
class VehicleProgress:
    vehicle_id: str
    total: int  # batches in the recorded drive
    first_seq: int
    produced: int = 0  # appended to the live outbox so far (what a driving vehicle would have sampled)
    acknowledged: int = 0  # PUBACKed by the broker (taken off the outbox)
    finished_at: float | None = None  # wall clock, when the last batch was acknowledged
    error: str = ""


@dataclass(frozen=True)
class Recorded:
    topic: str
    payload: bytes
    seq: int
    due_s: float  # after the drive's first batch, in drive time: when its window closed


def read_recorded(config: EdgeConfig) -> list[Recorded]:
    box = Outbox(config.state_dir / RECORDED_DIR / "outbox", max_bytes=config.outbox.max_bytes)
    try:
        entries = box.pending(limit=1_000_000)
    finally:
        box.close()
    if not entries:
        raise ConfigError(
            f"vehicle {config.vehicle_id} has no recorded drive in {config.state_dir / RECORDED_DIR}",
            hint="record one first (tests/integration/cluster/ground_truth.py prepares the fleet)",
        )
    batches = [wire.decode(entry.payload) for entry in entries]
    first_us = min(b.start_time_us for b in batches)
    return [
        Recorded(e.topic, e.payload, e.seq, (b.start_time_us + b.sample_period_us * len(b.samples) - first_us) / 1e6)
        for e, b in zip(entries, batches, strict=True)
    ]


def _recorded_payload(item: Recorded) -> Callable[[int], bytes]:
    def payload(seq: int) -> bytes:
        return item.payload  # recorded with this very seq: the outbox allocates them in the same order

    return payload


def drive_vehicle(config: EdgeConfig, progress: VehicleProgress, *, speed: float, deadline: float) -> None:
    """Append the recorded batches at their pace while the link sends; return once all are acknowledged or at
    `deadline` (monotonic)."""
    recorded = read_recorded(config)
    outbox = open_outbox(config)
    if outbox.stats().next_seq != recorded[0].seq:
        outbox.close()
        raise ConfigError(
            f"vehicle {config.vehicle_id}: its live outbox is at seq {outbox.stats().next_seq}, the recording "
            f"starts at {recorded[0].seq}",
            hint="replay a fleet once, into fresh live outboxes",
        )

    def status(reason: str, gaps: list[Gap]) -> VehicleStatus:
        stats = outbox.stats()
        return VehicleStatus(
            vehicle_id=config.vehicle_id,
            online=True,
            reason=reason,
            agent_version="fault-fleet",
            outbox_depth=stats.depth,
            next_seq=stats.next_seq,
            epoch=outbox.epoch,
            dropped_total=stats.dropped_total,
            dropped_ranges=[(g.first_seq, g.last_seq) for g in gaps],
        )

    link = Link(config, outbox, status)
    link.start()
    started = time.monotonic()
    try:
        for item in recorded:
            wait_s = started + item.due_s / speed - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            entry = outbox.append(item.topic, _recorded_payload(item))
            assert entry.seq == item.seq, (entry.seq, item.seq)  # appended in order into a fresh outbox
            progress.produced += 1
            progress.acknowledged = progress.produced - outbox.stats().depth
            link.wake()
        outbox.flush()
        while outbox.stats().depth and time.monotonic() < deadline:
            progress.acknowledged = progress.total - outbox.stats().depth
            time.sleep(DRAIN_POLL_S)
    finally:
        link.stop(drain_timeout_s=max(0.0, min(5.0, deadline - time.monotonic())))
        progress.acknowledged = progress.total - outbox.stats().depth
        if outbox.stats().depth == 0:
            progress.finished_at = time.time()
        outbox.close()


def write_progress(path: Path, vehicles: list[VehicleProgress], *, running: bool) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"running": running, "at": time.time(), "vehicles": [asdict(v) for v in vehicles]}))
    os.replace(tmp, path)  # readers never see half a file


def read_progress(path: Path) -> tuple[bool, list[VehicleProgress]]:
    data = json.loads(path.read_text())
    return bool(data["running"]), [VehicleProgress(**v) for v in data["vehicles"]]


def run_fleet(config_files: list[Path], *, speed: float, timeout_s: float, progress_file: Path) -> int:
    """Replay every vehicle at once; returns how many vehicles did not get everything acknowledged."""
    configs = [load(path) for path in config_files]
    vehicles = []
    for config in configs:
        recorded = read_recorded(config)
        vehicles.append(VehicleProgress(config.vehicle_id, total=len(recorded), first_seq=recorded[0].seq))
    deadline = time.monotonic() + timeout_s

    def one(config: EdgeConfig, progress: VehicleProgress) -> None:
        try:
            drive_vehicle(config, progress, speed=speed, deadline=deadline)
        except Exception as exc:  # reported in the progress file, where the scenario looks
            progress.error = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=one, args=pair, daemon=True) for pair in zip(configs, vehicles, strict=True)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        write_progress(progress_file, vehicles, running=True)
        time.sleep(PROGRESS_INTERVAL_S)
    write_progress(progress_file, vehicles, running=False)
    return sum(1 for v in vehicles if v.acknowledged < v.total or v.error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetsense.cluster.fleet", description=__doc__.split("\n")[0])
    parser.add_argument("--vehicles", type=Path, required=True, help="a directory of <vehicle>.toml edge configs")
    parser.add_argument("--progress", type=Path, required=True, help="the JSON progress file to write")
    parser.add_argument("--speed", type=float, default=1.0, help="drive time per wall second (2: twice as fast)")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    args = parser.parse_args(argv)
    files = sorted(args.vehicles.glob("*.toml"))
    if not files or args.speed <= 0:
        parser.error(f"no vehicle configs (*.toml) in {args.vehicles}" if not files else "--speed must be positive")
    return min(run_fleet(files, speed=args.speed, timeout_s=args.timeout_s, progress_file=args.progress), 100)


if __name__ == "__main__":
    raise SystemExit(main())
