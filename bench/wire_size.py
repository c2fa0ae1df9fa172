"""Bytes per IMU sample on the wire, MQTT framing included, and codec times: wire v2 against v1, JSON, and the
other sample codings measured before v2's was chosen. Prints JSON.

    .venv/bin/python bench/wire_size.py [--seconds 60]

The signals are synthetic but shaped like an MPU-6050 (±2 g, ±250 °/s) bolted to a van at 100 Hz: gravity on
a slightly tilted z axis, manoeuvres, body bounce, wheel hop, engine vibration, potholes, sensor noise
(~2.5 mg and ~0.05 °/s RMS, the datasheet's order) and gyro bias; parked means gravity, noise and a little
rocking. Real recordings would be better; see docs/wire-format.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import time
import zlib
from collections.abc import Callable
from itertools import pairwise
from typing import TypeVar

from fleetsense import wire
from fleetsense.quantities import STANDARD_GRAVITY_M_S2

ACCEL_COUNTS_PER_G = 16384  # MPU-6050, ±2 g
GYRO_COUNTS_PER_DEG_S = 131.0  # MPU-6050, ±250 °/s
IMU_SCALES = (STANDARD_GRAVITY_M_S2 / ACCEL_COUNTS_PER_G,) * 3 + (math.radians(1.0) / GYRO_COUNTS_PER_DEG_S,) * 3
RATE_HZ = 100
TOPIC = "fleet/van-001/telemetry"
START_US = 1_764_000_000_000_000

Sample = tuple[int, ...]
T = TypeVar("T")


class Resonator:
    """White noise through a two-pole resonance at `frequency_hz`, scaled to `rms`: road and body motion."""

    def __init__(self, rng: random.Random, frequency_hz: float, q: float, rms: float) -> None:
        radius = math.exp(-math.pi * frequency_hz / (q * RATE_HZ))
        self.a1 = 2 * radius * math.cos(2 * math.pi * frequency_hz / RATE_HZ)
        self.a2 = -radius * radius
        self.rng = rng
        self.y1 = self.y2 = 0.0
        self.gain = 1.0
        power = sum(self._step() ** 2 for _ in range(4000)) / 4000
        self.gain = rms / math.sqrt(power)

    def _step(self) -> float:
        y = self.a1 * self.y1 + self.a2 * self.y2 + self.rng.gauss(0.0, 1.0)
        self.y2, self.y1 = self.y1, y
        return y

    def next(self) -> float:
        return self._step() * self.gain


def _clamp16(value: float) -> int:
    return max(-32768, min(32767, round(value)))


def imu_samples(seconds: int, *, driving: bool, seed: int) -> list[Sample]:
    """Raw counts (ax, ay, az, gx, gy, gz) at RATE_HZ."""
    rng = random.Random(seed)
    pitch, roll = (math.radians(3.0), math.radians(-2.0)) if driving else (math.radians(4.0), math.radians(1.5))
    gravity = (
        -STANDARD_GRAVITY_M_S2 * math.sin(pitch),
        STANDARD_GRAVITY_M_S2 * math.sin(roll) * math.cos(pitch),
        STANDARD_GRAVITY_M_S2 * math.cos(roll) * math.cos(pitch),
    )
    gyro_bias = [rng.randint(-300, 300) for _ in range(3)]  # counts: a few °/s, typical before calibration
    if driving:
        accel_motion = [
            [Resonator(rng, 1.5, 2, 0.25), Resonator(rng, 12, 4, 0.15)],  # body bounce, wheel hop (m/s²)
            [Resonator(rng, 1.2, 2, 0.25), Resonator(rng, 12, 4, 0.15)],
            [Resonator(rng, 1.5, 2, 0.5), Resonator(rng, 12, 4, 0.4)],
        ]
        gyro_motion = [
            [Resonator(rng, 1.5, 2, 1.5), Resonator(rng, 12, 4, 0.5)],  # roll/pitch/yaw rate (°/s)
            [Resonator(rng, 1.5, 2, 1.0), Resonator(rng, 12, 4, 0.5)],
            [Resonator(rng, 0.3, 1, 3.0), Resonator(rng, 12, 4, 0.3)],
        ]
    else:
        accel_motion = [[Resonator(rng, 1.2, 3, 0.01)] for _ in range(3)]  # rocking in the wind
        gyro_motion = [[Resonator(rng, 1.2, 3, 0.05)] for _ in range(3)]
    phase = rng.uniform(0.0, 2 * math.pi)
    next_pothole_s = rng.uniform(0.5, 5.0)
    samples = []
    for i in range(seconds * RATE_HZ):
        t = i / RATE_HZ
        accel = [g + sum(r.next() for r in rs) for g, rs in zip(gravity, accel_motion, strict=True)]
        gyro = [sum(r.next() for r in rs) for rs in gyro_motion]
        if driving:
            accel[0] += 1.5 * math.sin(2 * math.pi * 0.05 * t + phase)  # speeding up, braking
            accel[1] += 2.0 * math.sin(2 * math.pi * 0.03 * t + 2 * phase)  # cornering
            gyro[2] += 10.0 * math.sin(2 * math.pi * 0.03 * t + 2 * phase)
            for axis, amplitude in enumerate((0.08, 0.05, 0.12)):  # engine at 28 Hz
                accel[axis] += amplitude * math.sin(2 * math.pi * 28.0 * t + axis)
            since = t - next_pothole_s
            if 0 <= since < 0.15:
                decay = math.exp(-4 * since / 0.15)
                accel[2] += 12.0 * decay * math.sin(2 * math.pi * 12 * since)
                gyro[0] += 25.0 * decay * math.sin(2 * math.pi * 10 * since)
            elif since >= 0.15:
                next_pothole_s = t + rng.uniform(2.0, 8.0)
        row = [_clamp16((a + rng.gauss(0, 0.025)) / STANDARD_GRAVITY_M_S2 * ACCEL_COUNTS_PER_G) for a in accel]
        row += [
            _clamp16((w + rng.gauss(0, 0.05)) * GYRO_COUNTS_PER_DEG_S) + b for w, b in zip(gyro, gyro_bias, strict=True)
        ]
        samples.append(tuple(row))
    return samples


def imu_batches(seconds: int, *, driving: bool, seed: int = 7) -> list[wire.Batch]:
    """One 1 s batch per window, as the agent sends them."""
    samples = imu_samples(seconds, driving=driving, seed=seed)
    return [
        wire.Batch(
            vehicle_id="van-001",
            seq=window,
            start_time_us=START_US + window * 1_000_000,
            sample_period_us=1_000_000 // RATE_HZ,
            kind=wire.Kind.IMU,
            scales=IMU_SCALES,
            samples=tuple(samples[window * RATE_HZ : (window + 1) * RATE_HZ]),
        )
        for window in range(seconds)
    ]


def mqtt_publish_bytes(payload_bytes: int, topic: str = TOPIC) -> int:
    """An MQTT 3.1.1 PUBLISH at QoS 1: fixed header, remaining-length varint, topic, packet id, payload."""
    remaining = 2 + len(topic.encode()) + 2 + payload_bytes
    varint = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + varint + remaining


# --- baselines --------------------------------------------------------------------------------------------


def json_objects_si(batch: wire.Batch) -> bytes:
    """What a first implementation sends: one object per sample, SI values to 4 decimals, times in µs."""
    names = wire.CHANNEL_NAMES[batch.kind]
    document = {
        "vehicle_id": batch.vehicle_id,
        "seq": batch.seq,
        "kind": batch.kind.name.lower(),
        "samples": [
            {
                "t_us": batch.sample_time_us(i),
                **{n: round(c * s, 4) for n, c, s in zip(names, sample, batch.scales, strict=True)},
            }
            for i, sample in enumerate(batch.samples)
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def json_arrays_counts(batch: wire.Batch) -> bytes:
    """The leanest sensible JSON: the header once, then arrays of raw counts."""
    document = {
        "vehicle_id": batch.vehicle_id,
        "seq": batch.seq,
        "start_time_us": batch.start_time_us,
        "sample_period_us": batch.sample_period_us,
        "kind": batch.kind.name.lower(),
        "scales": batch.scales,
        "samples": batch.samples,
    }
    return json.dumps(document, separators=(",", ":")).encode()


# --- sample codings tried for v2 (each replaces v2's sample block; header, descriptors and CRC unchanged) ---


def _zigzag(values: list[int]) -> list[int]:
    return [(r << 1) ^ (r >> 15) for r in [((v + 32768) & 0xFFFF) - 32768 for v in values]]


def _deltas(column: list[int]) -> list[int]:
    return _zigzag([0] + [b - a for a, b in pairwise(column)])


def _columns(batch: wire.Batch) -> list[list[int]]:
    return [list(column) for column in zip(*batch.samples, strict=True)]


def _pack(values: list[int], width: int) -> str:
    return "".join(format(v, f"0{width}b") for v in values) if width else ""


def _bytes(bits: str) -> bytes:
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def block_raw_int16(batch: wire.Batch) -> bytes:
    return b"".join(int(v).to_bytes(2, "big", signed=True) for sample in batch.samples for v in sample)


def block_delta_fixed_width(batch: wire.Batch) -> bytes:
    """First-order deltas, zigzag, one bit width per channel (its largest value's)."""
    return _bytes("".join(_pack(z, max(z).bit_length()) for z in map(_deltas, _columns(batch))))


def block_delta_byteplanes(batch: wire.Batch) -> bytes:
    zigzagged = [z for column in _columns(batch) for z in _deltas(column)]
    return bytes(z & 0xFF for z in zigzagged) + bytes(z >> 8 for z in zigzagged)


def block_rice_delta_only(batch: wire.Batch) -> bytes:
    """v2's Rice coding with the previous-sample predictor forced on every channel (no level predictor)."""
    lows, codes, escapes = [], [], []
    for z in map(_deltas, _columns(batch)):
        costs = [_rice_bits(z, k) for k in range(wire.RICE_K_MAX + 1)]
        k = costs.index(min(costs))
        lows.append("".join(format(v & ((1 << k) - 1), f"0{k}b") for v in z) if k else "")
        for v in z:
            codes.append("0" * min(v >> k, wire.ESCAPE) + "1")
            escapes += [v >> k] if v >> k >= wire.ESCAPE else []
    return b"".join(e.to_bytes(2, "big") for e in escapes) + _bytes("".join(lows) + "".join(codes))


def _rice_bits(zigzagged: list[int], k: int) -> int:
    return sum(k + 1 + (z >> k if z >> k < wire.ESCAPE else wire.ESCAPE + 16) for z in zigzagged)


def _v2_block(batch: wire.Batch) -> bytes:
    message = wire.encode(batch)
    header = wire.decode_header(message)
    return message[header.samples_offset : header.samples_end]


SAMPLE_CODINGS: dict[str, Callable[[wire.Batch], bytes]] = {
    "raw_int16": block_raw_int16,
    "raw_int16_zlib": lambda b: zlib.compress(block_raw_int16(b), 9),
    "delta_zigzag_fixed_width": block_delta_fixed_width,
    "delta_zigzag_fixed_width_zlib": lambda b: zlib.compress(block_delta_fixed_width(b), 9),
    "delta_zigzag_byteplanes_zlib": lambda b: zlib.compress(block_delta_byteplanes(b), 9),
    "rice_delta_only": block_rice_delta_only,
    "v2_rice_zlib": lambda b: zlib.compress(_v2_block(b), 9),
}


# --- measurement ------------------------------------------------------------------------------------------


def per_sample(batches: list[wire.Batch], payload_bytes: Callable[[wire.Batch], int]) -> float:
    on_the_wire = sum(mqtt_publish_bytes(payload_bytes(batch)) for batch in batches)
    return round(on_the_wire / sum(len(batch.samples) for batch in batches), 2)


def sizes(batches: list[wire.Batch]) -> dict[str, float]:
    result = {
        "v2": per_sample(batches, lambda b: len(wire.encode(b))),
        "v1": per_sample(batches, lambda b: len(wire.encode_v1(b))),
        "json_objects_si": per_sample(batches, lambda b: len(json_objects_si(b))),
        "json_arrays_counts": per_sample(batches, lambda b: len(json_arrays_counts(b))),
        "json_arrays_counts_zlib": per_sample(batches, lambda b: len(zlib.compress(json_arrays_counts(b), 9))),
    }
    for name, coding in SAMPLE_CODINGS.items():

        def replaced(batch: wire.Batch, coding: Callable[[wire.Batch], bytes] = coding) -> int:
            return len(wire.encode(batch)) - len(_v2_block(batch)) + len(coding(batch))

        result[f"v2_with_{name}"] = per_sample(batches, replaced)
    return result


def microseconds_each(function: Callable[[T], object], items: list[T]) -> float:
    """Median over 5 rounds of the mean time per item, so one slow round (GC, another process) does not count."""
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for item in items:
            function(item)
        rounds.append((time.perf_counter() - started) / len(items) * 1e6)
    return round(statistics.median(rounds), 1)


def times(batches: list[wire.Batch]) -> dict[str, float]:
    from fleetsense.cloud.decode import decode_batch  # numpy: the cloud's side only

    messages = [wire.encode(batch) for batch in batches]
    return {
        "encode_v2_pure_python_us": microseconds_each(wire.encode, batches),
        "decode_v2_numpy_us": microseconds_each(decode_batch, messages),
        "decode_v2_pure_python_us": microseconds_each(wire.decode, messages),
        "encode_v1_us": microseconds_each(wire.encode_v1, batches),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="1 s windows per scenario (default 60)")
    args = parser.parse_args(argv)
    scenarios = {name: imu_batches(args.seconds, driving=name == "driving") for name in ("driving", "parked")}
    report = {
        "unit": "bytes per IMU sample (6 channels) on the wire, MQTT PUBLISH QoS 1 framing included",
        "target": 12.0,
        "window": {"seconds": 1, "rate_hz": RATE_HZ, "channels": 6, "topic": TOPIC},
        "sizes": {name: sizes(batches) for name, batches in scenarios.items()},
        "times_per_batch": {name: times(batches) for name, batches in scenarios.items()},
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
