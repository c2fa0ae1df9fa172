"""Pooled batches for the fleet load generator (fleetsense/load/): a simulated vehicle's drive rendered once into
wire messages, quantised like the agent's sensors, kept as wire.StampTemplate. Encoding costs ~0.85 ms a batch in
pure Python, too much for thousands a second; re-stamping a pooled one (wire.Restamper) costs about 1 µs."""

from __future__ import annotations

from collections.abc import Sequence

from fleetsense.edge.sensors import mpu6050_registers as reg
from fleetsense.edge.sensors.bmp280 import PRESSURE_PA_PER_COUNT, TEMPERATURE_C_PER_COUNT
from fleetsense.edge.sensors.mpu6050 import Mpu6050Config
from fleetsense.sim.vehicle import Vehicle

from fleetsense import wire

IMU_RATE_HZ = 100
BARO_RATE_HZ = 10  # the agent's default ([sampling] baro_rate_hz)
BATCH_US = 1_000_000  # one batch per kind per second, like the agent's default window


def imu_scales() -> tuple[float, ...]:
    """The agent's MPU-6050 scales at its default ranges (Mpu6050Config)."""
    chip = Mpu6050Config()
    accel = reg.accel_m_s2_per_count(reg.ACCEL_RANGES_G.index(chip.accel_range_g))
    gyro = reg.gyro_rad_s_per_count(reg.GYRO_RANGES_DPS.index(chip.gyro_range_dps))
    return (accel,) * 3 + (gyro,) * 3


def render_pool(
    seed: int, *, seconds: int, drive_offset_s: float = 120.0, baro: bool = False
) -> list[wire.StampTemplate]:
    """`seconds` consecutive 1 s IMU batches (and, with `baro`, a barometer batch after each) of the vehicle
    `Vehicle.random(seed)` from `drive_offset_s` into its drive, quantised as the agent does."""
    vehicle = Vehicle.random(seed, drive_offset_s + seconds + 60.0)
    scales = imu_scales()
    period_us = BATCH_US // IMU_RATE_HZ
    pool: list[wire.StampTemplate] = []
    for second in range(seconds):
        t0_s = drive_offset_s + second
        rows = []
        for i in range(IMU_RATE_HZ):
            reading = vehicle.imu_at(t0_s + i * period_us / 1e6)
            values = (*reading.specific_force_m_s2, *reading.angular_rate_rad_s)
            rows.append(tuple(wire.counts_from_si(v, scale=s) for v, s in zip(values, scales, strict=True)))
        pool.append(_template(wire.Kind.IMU, period_us, scales, (0.0,) * 6, rows))
        if baro:
            air = [vehicle.environment_at(t0_s + i / BARO_RATE_HZ) for i in range(BARO_RATE_HZ)]
            offset_pa = round(air[0].pressure_pa)
            counts = [
                (wire.counts_from_si(a.pressure_pa, scale=PRESSURE_PA_PER_COUNT, offset=offset_pa),
                 wire.counts_from_si(a.temperature_c, scale=TEMPERATURE_C_PER_COUNT))
                for a in air
            ]  # fmt: skip
            scales_baro = (PRESSURE_PA_PER_COUNT, TEMPERATURE_C_PER_COUNT)
            pool.append(
                _template(wire.Kind.BARO, BATCH_US // BARO_RATE_HZ, scales_baro, (float(offset_pa), 0.0), counts)
            )
    return pool


def _template(
    kind: wire.Kind,
    period_us: int,
    scales: tuple[float, ...],
    offsets: tuple[float, ...],
    rows: Sequence[tuple[int, ...]],
) -> wire.StampTemplate:
    batch = wire.Batch(vehicle_id="pool", seq=0, start_time_us=0, sample_period_us=period_us, kind=kind,
                       scales=scales, offsets=offsets, samples=tuple(rows))  # fmt: skip
    return wire.StampTemplate.from_message(wire.encode(batch))
