"""The size target of the wire format on realistic IMU data, with the benchmark's own data and arithmetic, so
the figures in docs/wire-format.md cannot silently go stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from fleetsense import wire

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wire_size_bench", ROOT / "bench" / "wire_size.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mqtt_framing_of_a_qos1_publish(bench: ModuleType) -> None:
    # 0x32, remaining length (2 bytes from 128 on), topic length, 23-byte topic, packet id
    assert bench.mqtt_publish_bytes(800) == 1 + 2 + 2 + 23 + 2 + 800
    assert bench.mqtt_publish_bytes(10) == 1 + 1 + 2 + 23 + 2 + 10


@pytest.mark.parametrize("driving", [True, False], ids=["driving", "parked"])
def test_at_most_12_bytes_per_imu_sample_on_the_wire(bench: ModuleType, driving: bool) -> None:
    batches = bench.imu_batches(10, driving=driving)
    v2 = bench.per_sample(batches, lambda b: len(wire.encode(b)))
    json_counts = bench.per_sample(batches, lambda b: len(bench.json_arrays_counts(b)))
    assert v2 <= (9.0 if driving else 7.0) < 12.0
    assert json_counts > 4 * v2
    for batch in batches:
        assert wire.decode(wire.encode(batch)).samples == batch.samples


def test_the_spec_quotes_the_benchmark(bench: ModuleType) -> None:
    spec = (ROOT / "docs" / "wire-format.md").read_text()
    for driving in (True, False):
        v2 = bench.per_sample(bench.imu_batches(60, driving=driving), lambda b: len(wire.encode(b)))
        assert f"**{v2:.2f}**" in spec
