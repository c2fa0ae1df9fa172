"""Edge agent benchmark: CPU per vehicle-hour at 100 Hz on the simulated bus, and outbox appends per second.

    python bench/edge_agent.py [--seconds 300]

Prints one JSON object. The agent's CPU is measured by running the real agent (drivers, FIFO draining,
windowing, wire encoding, outbox commits with fsync) on firmware-sim's chips in virtual time; the simulator's
own share (vehicle physics + register emulation) is measured separately in the same run and subtracted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from fleetsense.edge.outbox import Outbox
from fleetsense.sim.fleet import vehicle_physics
from fleetsense.sim.virtual_drive import record_drive

from fleetsense import wire
from fleetsense.device_config import BrokerConfig, EdgeConfig, StorageConfig


def agent_cpu_per_vehicle_hour(seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        config = EdgeConfig(
            vehicle_id="bench-van",
            broker=BrokerConfig(host="127.0.0.1", username="bench-van", password="unused"),
            storage=StorageConfig(state_dir=tmp),
        )
        start = time.process_time()
        drive = record_drive(config, seconds=seconds)
        total_cpu = time.process_time() - start
        wire_bytes = imu_bytes_per_sample(config)
    # The simulator's physics alone, sampled as the simulated chips sample it: the IMU at its 100 Hz output
    # rate, the barometer at its 26 Hz conversion rate.
    physics = vehicle_physics("bench-van", start_ns=0)
    start = time.process_time()
    for i in range(int(seconds * 100)):
        physics.imu_at(i / 100)
    for i in range(int(seconds * 26)):
        physics.environment_at(i / 26)
    physics_cpu = time.process_time() - start
    scale = 3600.0 / seconds
    return {
        "simulated_seconds": seconds,
        "imu_samples": drive.imu_samples,
        "batches": drive.imu_batches + drive.baro_batches,
        "imu_bytes_per_sample_on_the_wire_incl_mqtt": wire_bytes,
        "cpu_s_per_vehicle_hour_total": round(total_cpu * scale, 2),
        "cpu_s_per_vehicle_hour_physics_only": round(physics_cpu * scale, 2),
        "cpu_s_per_vehicle_hour_agent_and_register_emulation": round((total_cpu - physics_cpu) * scale, 2),
    }


def imu_bytes_per_sample(config: EdgeConfig) -> float:
    """Mean size of the agent's real IMU batches plus MQTT PUBLISH framing (QoS 1), per sample."""
    box = Outbox(config.state_dir / "outbox", max_bytes=config.outbox.max_bytes)
    entries = [e for e in box.pending(limit=1_000_000) if wire.decode_header(e.payload).kind == wire.Kind.IMU]
    box.close()
    topic_len = len(f"fleet/{config.vehicle_id}/telemetry".encode())
    total = 0
    samples = 0
    for entry in entries:
        remaining = 2 + topic_len + 2 + len(entry.payload)  # topic length, topic, packet id, payload
        header = 1 + (1 if remaining < 128 else 2 if remaining < 16384 else 3)  # fixed header + varint
        total += header + remaining
        samples += wire.decode_header(entry.payload).sample_count
    return round(total / samples, 2)


def outbox_appends_per_second(count: int = 2000, payload_bytes: int = 800) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        box = Outbox(Path(tmp), max_bytes=1 << 30)
        payload = b"x" * payload_bytes
        start = time.perf_counter()
        for _ in range(count):
            box.append("fleet/bench/telemetry", lambda seq: payload)
        elapsed = time.perf_counter() - start
        box.close()
    return {"outbox_appends_per_s_fsync_each": round(count / elapsed, 1), "payload_bytes": payload_bytes}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300.0, help="simulated driving time")
    args = parser.parse_args()
    result = {**agent_cpu_per_vehicle_hour(args.seconds), **outbox_appends_per_second()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
