"""The fleet load generator's pure parts (fleetsense/load/ and firmware-sim/pool.py): pool rendering and its
re-stamping, the publish schedule, the MQTT packets it writes and reads, bulk provisioning's permissions, and its
command line. No network."""

from __future__ import annotations

import math
import subprocess
import sys
from bisect import bisect_right
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from fleetsense.gateway import provision
from fleetsense.sim.pool import BARO_RATE_HZ, imu_scales, render_pool

from fleetsense import wire
from fleetsense.load import mqtt_packets as mp
from fleetsense.load.provisioning import provision_fleet
from fleetsense.load.schedule import Schedule
from fleetsense.load.stats import percentiles
from fleetsense.load.vehicles import SimVehicle, build_fleet


def stamp(template: wire.StampTemplate, seq: int = 0) -> wire.Batch:
    return wire.decode(wire.Restamper("van-1").stamp(template, seq, 0))


def test_pool_rendering_is_deterministic_and_looks_like_a_driving_mpu6050() -> None:
    first = render_pool(3, seconds=4)
    assert [b.tail for b in first] == [b.tail for b in render_pool(3, seconds=4)]
    assert [b.tail for b in first] != [b.tail for b in render_pool(4, seconds=4)]
    assert len({b.tail for b in first}) == 4  # distinct seconds
    for template in first:
        decoded = stamp(template)
        assert (decoded.kind, len(decoded.samples), decoded.sample_period_us) == (wire.Kind.IMU, 100, 10_000)
        assert template.sample_count == 100
        assert decoded.scales == pytest.approx(imu_scales(), rel=1e-7)
        # Specific force is about 1 g whatever the mounting: gravity plus moderate driving.
        norms = [
            math.dist((0, 0, 0), [c * s for c, s in zip(row[:3], decoded.scales, strict=False)])
            for row in decoded.samples
        ]
        assert 7.0 < sum(norms) / len(norms) < 13.0


def test_pool_with_barometer_alternates_imu_and_baro_batches() -> None:
    pool = render_pool(5, seconds=2, baro=True)
    assert [b.kind for b in pool] == [wire.Kind.IMU, wire.Kind.BARO] * 2
    baro = stamp(pool[1], seq=1)
    assert (len(baro.samples), baro.sample_period_us) == (BARO_RATE_HZ, 100_000)
    pressure_pa = baro.offsets[0] + baro.samples[0][0] * baro.scales[0]
    assert 80_000 < pressure_pa < 110_000


def test_a_vehicle_stamps_its_share_of_the_pool_under_its_own_id_and_sequence() -> None:
    (vehicle,) = build_fleet({"van-042": "pw"}, pool_seeds=1, pool_seconds=3, baro=True)
    vehicle.make_batches(0, 1_764_000_000_000_000, 2)
    vehicle.make_batches(1, 1_764_000_001_000_000, 2)
    decoded = [wire.decode(p.payload) for p in vehicle.outbox]
    assert [(b.vehicle_id, b.seq, b.kind) for b in decoded] == [
        ("van-042", seq, kind) for seq, kind in enumerate([wire.Kind.IMU, wire.Kind.BARO] * 2)
    ]
    assert [b.start_time_us for b in decoded] == [1_764_000_000_000_000] * 2 + [1_764_000_001_000_000] * 2
    assert [p.samples for p in vehicle.outbox] == [100, BARO_RATE_HZ] * 2
    assert vehicle.topic_field == mp.utf8_field("fleet/van-042/telemetry")


def test_packet_ids_skip_those_still_in_flight() -> None:
    vehicle = SimVehicle("van-1", "pw", render_pool(0, seconds=1), 0)
    assert [vehicle.next_packet_id() for _ in range(3)] == [1, 2, 3]
    vehicle._packet_id = 65534
    vehicle.inflight[1] = vehicle.inflight[65535] = None  # type: ignore[assignment]
    assert vehicle.next_packet_id() == 2  # 65535 and 1 are taken; ids wrap past 65535 to 1, never 0


@pytest.mark.parametrize("vehicles", [1, 3, 7, 100, 333, 2000, 2001])
def test_the_schedule_spreads_the_fleet_evenly_over_each_second(vehicles: int) -> None:
    schedule = Schedule(vehicles)
    events = range(3 * vehicles)
    dues = [schedule.due_us(e) for e in events]
    assert dues == sorted(dues)  # event order is time order: the loop needs only a counter
    for window in range(3):
        batch = [schedule.vehicle_and_window(e) for e in events if schedule.vehicle_and_window(e)[1] == window]
        assert sorted(v for v, _ in batch) == list(range(vehicles))  # every vehicle once per window
    gaps = [b - a for a, b in pairwise(dues)]
    assert max(gaps) <= -(-1_000_000 // vehicles) + 1  # smooth: no burst, no long pause
    assert all(schedule.due_us(e) - schedule.window_start_us(e) == 1_000_000 for e in events)  # sent when it ends
    for elapsed in [0, 999_999, *dues, *(d - 1 for d in dues), dues[-1] - 5]:
        if elapsed < dues[-1]:
            assert schedule.events_due_by(elapsed) == bisect_right(dues, elapsed)


@pytest.mark.parametrize(
    ("n", "encoded"),
    [(0, "00"), (127, "7f"), (128, "8001"), (16_383, "ff7f"), (16_384, "808001"), (268_435_455, "ffffff7f")],
)
def test_remaining_length_follows_the_mqtt_spec_examples(n: int, encoded: str) -> None:
    assert mp.remaining_length(n).hex() == encoded


def test_remaining_length_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        mp.remaining_length(268_435_456)


def test_connect_packet_bytes() -> None:
    packet = mp.connect_packet("v1", "v1", "pw", keepalive_s=60)
    assert packet.hex() == "101600044d5154540" + "4c2003c" + "00027631" + "00027631" + "00027077"


def test_publish_packets_split_anywhere_are_read_back_whole() -> None:
    topic = b"\x00\x17fleet/van-042/telemetry"
    first = mp.publish_packet(topic, 1, b"x" * 200)
    second = mp.publish_packet(topic, 65535, b"", dup=True)
    assert first[0] == 0x32 and second[0] == 0x3A  # PUBLISH, QoS 1, DUP on the resend
    reader = mp.PacketReader()
    packets: list[tuple[int, bytes]] = []
    for byte in first + second + b"\x40\x02\x00\x01":
        packets += reader.feed(bytes([byte]))
    assert packets == [(3, first[3:]), (3, second[2:]), (mp.PUBACK, b"\x00\x01")]
    assert packets[0][1][: len(topic) + 2] == topic + b"\x00\x01"


def test_a_malformed_remaining_length_is_an_error() -> None:
    with pytest.raises(ValueError, match="remaining length"):
        mp.PacketReader().feed(b"\x40\xff\xff\xff\xff\x01")


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None, "max": None}


class RecordingAdmin:
    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self.calls = calls

    def put_user(self, username: str, password: str | None, tags: str = "") -> None:
        self.calls.append(("user", (username, password, tags)))

    def put_permissions(self, vhost: str, username: str, *, configure: str, write: str, read: str) -> None:
        self.calls.append(("permissions", (vhost, username, configure, write, read)))

    def put_topic_permissions(self, vhost: str, username: str, *, exchange: str, write: str, read: str) -> None:
        self.calls.append(("topic", (vhost, username, exchange, write, read)))

    def put_user_limits(self, username: str, *, max_connections: int, max_channels: int) -> None:
        self.calls.append(("limits", (username, max_connections, max_channels)))


def test_bulk_provisioning_grants_exactly_what_gateway_provision_grants(tmp_path: Path) -> None:
    single: list[tuple[str, Any]] = []
    endpoint = provision.BrokerEndpoint(host="127.0.0.1", mqtt_port=1883)
    provision.provision(RecordingAdmin(single), "van-042", endpoints=[endpoint], config_path=tmp_path / "van.toml",  # type: ignore[arg-type]
                        state_dir=tmp_path / "van", password="secret")  # fmt: skip
    bulk: list[tuple[str, Any]] = []
    provision_fleet(lambda: RecordingAdmin(bulk), {"van-042": "secret"}, workers=2)
    assert bulk == single


def test_bulk_provisioning_refuses_an_invalid_vehicle_id() -> None:
    with pytest.raises(Exception, match="invalid vehicle id"):
        provision_fleet(lambda: RecordingAdmin([]), {"fleet.*": "x"})


def test_the_command_line_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "fleetsense.load", "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "provision" in done.stdout and "run" in done.stdout
    done = subprocess.run([sys.executable, "-m", "fleetsense.load", "run"], capture_output=True, text=True)
    assert done.returncode == 2 and "--credentials" in done.stderr
