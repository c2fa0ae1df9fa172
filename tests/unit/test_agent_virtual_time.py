"""The whole edge agent (drivers on simulated chips, windowing, wire format, outbox) in virtual time."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from fleetsense.edge.outbox import Outbox
from fleetsense.sim.virtual_drive import record_drive

from fleetsense import wire
from fleetsense.device_config import BrokerConfig, EdgeConfig, OutboxConfig, StorageConfig


def config_for(tmp_path: Path, **outbox: int) -> EdgeConfig:
    return EdgeConfig(
        vehicle_id="van-007",
        broker=BrokerConfig(host="127.0.0.1", username="van-007", password="unused"),
        storage=StorageConfig(state_dir=str(tmp_path)),
        outbox=OutboxConfig(**outbox),  # type: ignore[arg-type]
    )


def stored(tmp_path: Path) -> list[wire.Batch]:
    box = Outbox(tmp_path / "outbox", max_bytes=1 << 30)
    batches = [wire.decode(entry.payload) for entry in box.pending(limit=10_000)]
    box.close()
    return batches


def test_a_minute_of_driving_is_sixty_imu_and_sixty_barometer_batches(tmp_path: Path) -> None:
    drive = record_drive(config_for(tmp_path), seconds=60)
    batches = stored(tmp_path)
    imu = [b for b in batches if b.kind == wire.Kind.IMU]
    baro = [b for b in batches if b.kind == wire.Kind.BARO]
    assert (drive.imu_batches, drive.baro_batches) == (len(imu), len(baro))
    assert 59 <= len(imu) <= 60 and all(len(b.samples) == 100 for b in imu)
    assert 59 <= len(baro) <= 60 and all(len(b.samples) == 10 for b in baro)
    # One sequence for all of a vehicle's batches: contiguous, never reused.
    assert sorted(b.seq for b in batches) == list(range(len(batches)))
    # Each IMU batch starts exactly where the previous one ended: no sample lost, none duplicated.
    starts = [b.start_time_us for b in imu]
    assert all(later - earlier == 1_000_000 for earlier, later in itertools.pairwise(starts))
    assert all(b.sample_period_us == 10_000 for b in imu)
    assert not any(b.flags & wire.Flags.GAP_BEFORE for b in batches)


def test_the_simulated_van_reads_one_g_and_sea_level_air(tmp_path: Path) -> None:
    record_drive(config_for(tmp_path), seconds=5)
    batches = stored(tmp_path)
    imu = next(b for b in batches if b.kind == wire.Kind.IMU)
    ax, ay, az = (sum(s[c] for s in imu.samples) / len(imu.samples) * imu.scales[c] for c in range(3))
    assert (ax**2 + ay**2 + az**2) ** 0.5 == pytest.approx(9.81, abs=1.0)
    baro = next(b for b in batches if b.kind == wire.Kind.BARO)
    pressure_pa = baro.offsets[0] + baro.samples[0][0] * baro.scales[0]
    assert 85_000 < pressure_pa < 105_000


def test_sequence_numbers_continue_across_agent_restarts(tmp_path: Path) -> None:
    first = record_drive(config_for(tmp_path), seconds=3)
    second = record_drive(config_for(tmp_path), seconds=3)
    assert second.first_seq == first.next_seq > 0


def test_a_small_outbox_keeps_the_newest_batches_and_counts_the_rest(tmp_path: Path) -> None:
    record_drive(config_for(tmp_path, max_bytes=8192), seconds=30)
    box = Outbox(tmp_path / "outbox", max_bytes=8192)
    stats, gaps = box.stats(), box.unreported_gaps()
    box.close()
    assert stats.bytes <= 8192 and stats.dropped_total > 0
    assert gaps and gaps[0].first_seq == 0 and gaps[-1].last_seq + 1 == stats.oldest_seq
    assert sum(g.count for g in gaps) == stats.dropped_total
