"""The analyzer's state survives a pickle at any batch boundary: thousands of seeded random drive pieces, each fed
twice from the same starting state, once straight through and once with a pickle round trip before random calls
(as the job pickles after every batch, and a savepoint can be taken between any two), must give the same outputs
and end in the same state. Starting states are taken along the scripted drive (before calibration, while it
settles, calibrated with a trip and events open), and the pieces add random harsh pulses, bumps, hot and cold
cabins, data gaps, odd batch sizes and flushes. A failing case is replayed by its seed:
FLEETSENSE_STATE_SEED=<seed>."""

from __future__ import annotations

import functools
import os
import pickle
import random
import time
from collections.abc import Callable

import numpy as np
from fleetsense.cloud.analytics import AnalysisOutput, VehicleAnalyzer

from tests.unit.test_analytics_drives import RATE_HZ, scripted_recording

SEED_ENV = os.environ.get("FLEETSENSE_STATE_SEED")
CASES = 2_000
SEEDS = [int(SEED_ENV)] if SEED_ENV else list(range(CASES))
SNAPSHOT_EVERY_S = 5
PIECE_S = (2.0, 6.0)  # how much drive each case feeds


@functools.cache
def snapshots() -> tuple[tuple[int, bytes], ...]:
    """(sample index, pickled analyzer) every SNAPSHOT_EVERY_S seconds along the scripted drive, fed in 1 s
    batches; the recording's own arrays are read from there on."""
    recording = scripted_recording(1)
    analyzer, out = VehicleAnalyzer(), []
    for first in range(0, recording.t_us.size - RATE_HZ, RATE_HZ):
        if first % (SNAPSHOT_EVERY_S * RATE_HZ) == 0:
            out.append((first, pickle.dumps(analyzer)))
        part = slice(first, first + RATE_HZ)
        analyzer.on_imu(recording.t_us[part], recording.accel_m_s2[part], recording.gyro_rad_s[part])
    return tuple(out)


Call = Callable[[VehicleAnalyzer], AnalysisOutput]


def random_calls(rng: random.Random, start: int) -> list[Call]:
    """The calls of one random drive piece from sample `start` on: IMU batches of random sizes with pulses and
    gaps, barometer batches between them, sometimes a flush."""
    recording = scripted_recording(1)
    end = min(recording.t_us.size, start + int(rng.uniform(*PIECE_S) * RATE_HZ))
    t_us = recording.t_us[start:end]
    accel = recording.accel_m_s2[start:end].copy()
    gyro = recording.gyro_rad_s[start:end]
    for _ in range(rng.randrange(3)):  # harsh pulses (any direction) and bumps of random length
        first = rng.randrange(max(1, t_us.size))
        length = rng.choice((3, 10, 40, 120))
        accel[first : first + length] += np.array([rng.uniform(-6, 6), rng.uniform(-6, 6), rng.uniform(-5, 5)])
    calls: list[Call] = []
    env_t_us = int(t_us[0]) if t_us.size else 0
    temperature_c = rng.choice((20.0, 40.0, -3.0))
    index = 0
    while index < t_us.size:
        size = rng.choice((1, 2, 7, 50, 100, 100, 100, 150))
        if rng.random() < 0.05:
            index += rng.choice((5, 200))  # samples lost: a gap the analyzer sees in the times
        part = slice(index, min(index + size, t_us.size))
        index += size
        if part.start >= t_us.size:
            break
        gap = rng.random() < 0.03
        calls.append(
            functools.partial(_imu, t_us[part].copy(), accel[part].copy(), gyro[part].copy(), gap)  # type: ignore[arg-type]
        )
        if rng.random() < 0.3:
            count = rng.randint(1, 12)
            env_times = env_t_us + np.arange(count, dtype=np.int64) * 100_000
            env_t_us += count * 100_000 + (rng.choice((0, 0, 0, 90_000_000)))  # now and then a long silence
            if rng.random() < 0.2:
                temperature_c = rng.choice((20.0, 40.0, -3.0, 36.5))
            temps = temperature_c + np.array([rng.uniform(-0.5, 0.5) for _ in range(count)])
            pressure = 100_000.0 - np.arange(count) * rng.uniform(0, 3)
            calls.append(functools.partial(_environment, env_times, pressure, temps))  # type: ignore[arg-type]
        if rng.random() < 0.02:
            calls.append(VehicleAnalyzer.flush)
    return calls


def _imu(t_us: np.ndarray, accel: np.ndarray, gyro: np.ndarray, gap: bool, analyzer: VehicleAnalyzer) -> AnalysisOutput:
    return analyzer.on_imu(t_us, accel, gyro, gap_before=gap)


def _environment(
    t_us: np.ndarray, pressure: np.ndarray, temps: np.ndarray, analyzer: VehicleAnalyzer
) -> AnalysisOutput:
    return analyzer.on_environment(t_us, pressure, temps)


def one_case(seed: int) -> int:
    """Run one case; returns how many pickle round trips it made."""
    rng = random.Random(seed)
    start, blob = rng.choice(snapshots())
    calls = random_calls(rng, start)
    plain, pickled = pickle.loads(blob), pickle.loads(blob)
    trips = 0
    for step, call in enumerate(calls):
        if rng.random() < 0.5:
            pickled = pickle.loads(pickle.dumps(pickled))
            trips += 1
        expected, got = call(plain), call(pickled)
        assert got == expected, f"seed {seed}: call {step} of {len(calls)} differs after a round trip"
    assert pickled.state() == plain.state(), f"seed {seed}: the final states differ"
    return trips


def test_a_pickle_round_trip_at_random_batch_boundaries_changes_no_output() -> None:
    started = time.monotonic()
    trips = sum(one_case(seed) for seed in SEEDS)
    print(f"{len(SEEDS)} cases, {trips} round trips in {time.monotonic() - started:.1f} s")
    assert trips >= len(SEEDS)  # about one round trip in two calls


def test_the_random_cases_reach_the_states_that_matter() -> None:
    """The snapshots cover an uncalibrated start, a calibrated one with a trip open, and open driving events."""
    states = [pickle.loads(blob) for _, blob in snapshots()]
    assert not states[0]._calibration.settled and states[-1]._calibration.settled
    assert any(s._trips.trip_open and s._calibration.settled for s in states)
    assert any(s._detectors.state().runs or s._candidates.state().open_run for s in states) or any(
        s._candidates.state().runs for s in states
    )
