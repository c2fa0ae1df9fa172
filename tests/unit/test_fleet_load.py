"""The fleet load generator's pure parts: re-stamping pooled messages (header and CRC), pool rendering, the
publish schedule, the MQTT packets it writes and reads, and bulk provisioning's permissions. No network."""

from __future__ import annotations

import math
import zlib
from bisect import bisect_right
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from fleetsense.sim import fleet_load as fl

from fleetsense import wire
from fleetsense.errors import WireFormatError

IMU_SAMPLES = tuple((i, -i, 8192 + i % 7, 3 * i - 150, -32768 + i, 32767 - i) for i in range(100))


def pooled_imu() -> tuple[wire.Batch, fl.PooledBlock]:
    batch = wire.Batch(vehicle_id="pool", seq=0, start_time_us=0, sample_period_us=10_000, kind=wire.Kind.IMU,
                       scales=fl.imu_scales(), samples=IMU_SAMPLES)  # fmt: skip
    return batch, fl.PooledBlock.from_message(wire.encode(batch))


@pytest.mark.parametrize("vehicle_id", ["v", "van-042", "a-much-longer-vehicle-id_" + "x" * 39])
@pytest.mark.parametrize(("seq", "start_time_us"), [(0, 1_764_000_000_000_000), (2**63 - 1, -(2**63)), (7, 2**63 - 1)])
def test_a_restamped_message_decodes_to_the_pooled_samples_under_its_new_identity(
    vehicle_id: str, seq: int, start_time_us: int
) -> None:
    original, block = pooled_imu()
    message = fl.restamp(block, vehicle_id=vehicle_id, seq=seq, start_time_us=start_time_us)
    decoded = wire.decode(message)
    assert (decoded.vehicle_id, decoded.seq, decoded.start_time_us) == (vehicle_id, seq, start_time_us)
    assert decoded.samples == original.samples
    assert (decoded.kind, decoded.flags, decoded.sample_period_us) == (wire.Kind.IMU, wire.Flags.NONE, 10_000)
    assert decoded.scales == pytest.approx(original.scales, rel=1e-7)  # float32 on the wire
    # The same bytes as encoding the batch from scratch: only the header and the CRC changed.
    fresh = wire.Batch(vehicle_id=vehicle_id, seq=seq, start_time_us=start_time_us, sample_period_us=10_000,
                       kind=wire.Kind.IMU, scales=original.scales, samples=original.samples)  # fmt: skip
    assert message == wire.encode(fresh)


def test_the_crc_is_recomputed_over_the_new_header() -> None:
    _, block = pooled_imu()
    message = fl.restamp(block, vehicle_id="van-1", seq=5, start_time_us=1)
    assert int.from_bytes(message[-4:], "big") == zlib.crc32(message[:-4])
    seq_offset = 6 + len("van-1")
    tampered = bytearray(message)
    tampered[seq_offset + 7] ^= 0x01  # seq 5 -> 4 without a new CRC
    with pytest.raises(WireFormatError, match="bad CRC"):
        wire.decode(bytes(tampered))


def test_the_stamper_fast_path_gives_the_same_bytes_as_restamp_for_every_kind() -> None:
    _, imu = pooled_imu()
    baro = fl.PooledBlock.from_message(
        wire.encode(wire.Batch(vehicle_id="pool", seq=0, start_time_us=0, sample_period_us=100_000,
                               kind=wire.Kind.BARO, scales=(0.1, 0.01), offsets=(101325.0, 0.0),
                               samples=((0, 2150), (3, 2151), (-2, 2149)), flags=wire.Flags.GAP_BEFORE))
    )  # fmt: skip
    stamper = fl.Stamper("van-042")
    for seq, block in enumerate([imu, baro, imu, baro]):
        start = 1_764_000_000_000_000 + seq * 1_000_000
        assert stamper.message(block, seq, start) == fl.restamp(
            block, vehicle_id="van-042", seq=seq, start_time_us=start
        )
    decoded = wire.decode(stamper.message(baro, 9, 123))
    assert decoded.offsets == (101325.0, 0.0) and decoded.flags == wire.Flags.GAP_BEFORE


def test_only_version_2_messages_can_be_pooled() -> None:
    batch, _ = pooled_imu()
    with pytest.raises(WireFormatError, match="version 1"):
        fl.PooledBlock.from_message(wire.encode_v1(batch))


def test_pool_rendering_is_deterministic_and_looks_like_a_driving_mpu6050() -> None:
    first = fl.render_pool(3, seconds=4)
    assert [b.tail for b in first] == [b.tail for b in fl.render_pool(3, seconds=4)]
    assert [b.tail for b in first] != [b.tail for b in fl.render_pool(4, seconds=4)]
    assert len({b.tail for b in first}) == 4  # distinct seconds
    for block in first:
        decoded = wire.decode(fl.restamp(block, vehicle_id="van-1", seq=0, start_time_us=0))
        assert (decoded.kind, len(decoded.samples), decoded.sample_period_us) == (wire.Kind.IMU, 100, 10_000)
        assert decoded.scales == pytest.approx(fl.imu_scales(), rel=1e-7)
        # Specific force is about 1 g whatever the mounting: gravity plus moderate driving.
        norms = [
            math.dist((0, 0, 0), [c * s for c, s in zip(row[:3], decoded.scales, strict=False)])
            for row in decoded.samples
        ]
        assert 7.0 < sum(norms) / len(norms) < 13.0


def test_pool_with_barometer_alternates_imu_and_baro_batches() -> None:
    pool = fl.render_pool(5, seconds=2, baro=True)
    assert [b.kind for b in pool] == [wire.Kind.IMU, wire.Kind.BARO] * 2
    baro = wire.decode(fl.restamp(pool[1], vehicle_id="van-1", seq=1, start_time_us=0))
    assert (len(baro.samples), baro.sample_period_us) == (fl.BARO_RATE_HZ, 100_000)
    pressure_pa = baro.offsets[0] + baro.samples[0][0] * baro.scales[0]
    assert 80_000 < pressure_pa < 110_000


@pytest.mark.parametrize("vehicles", [1, 3, 7, 100, 333, 2000, 2001])
def test_the_schedule_spreads_the_fleet_evenly_over_each_second(vehicles: int) -> None:
    schedule = fl.Schedule(vehicles)
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
    assert fl.remaining_length(n).hex() == encoded


def test_remaining_length_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        fl.remaining_length(268_435_456)


def test_connect_packet_bytes() -> None:
    packet = fl.connect_packet("v1", "v1", "pw", keepalive_s=60)
    assert packet.hex() == "101600044d5154540" + "4c2003c" + "00027631" + "00027631" + "00027077"


def test_publish_packets_split_anywhere_are_read_back_whole() -> None:
    topic = b"\x00\x17fleet/van-042/telemetry"
    first = fl.publish_packet(topic, 1, b"x" * 200)
    second = fl.publish_packet(topic, 65535, b"", dup=True)
    assert first[0] == 0x32 and second[0] == 0x3A  # PUBLISH, QoS 1, DUP on the resend
    reader = fl.PacketReader()
    packets: list[tuple[int, bytes]] = []
    for byte in first + second + b"\x40\x02\x00\x01":
        packets += reader.feed(bytes([byte]))
    assert packets == [(3, first[3:]), (3, second[2:]), (fl.PUBACK, b"\x00\x01")]
    assert packets[0][1][: len(topic) + 2] == topic + b"\x00\x01"


def test_a_malformed_remaining_length_is_an_error() -> None:
    with pytest.raises(ValueError, match="remaining length"):
        fl.PacketReader().feed(b"\x40\xff\xff\xff\xff\x01")


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert fl.percentiles(values) == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    assert fl.percentiles([]) == {"p50": None, "p90": None, "p99": None, "max": None}


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

    def delete_user(self, username: str) -> None:
        self.calls.append(("delete", username))


def test_bulk_provisioning_grants_exactly_what_gateway_provision_grants(tmp_path: Path) -> None:
    from fleetsense.gateway import provision

    single: list[tuple[str, Any]] = []
    endpoint = provision.BrokerEndpoint(host="127.0.0.1", mqtt_port=1883)
    provision.provision(RecordingAdmin(single), "van-042", endpoint=endpoint, config_path=tmp_path / "van.toml",  # type: ignore[arg-type]
                        state_dir=tmp_path / "van", password="secret")  # fmt: skip
    bulk: list[tuple[str, Any]] = []
    fl.provision_fleet(lambda: RecordingAdmin(bulk), {"van-042": "secret"}, workers=2)
    assert bulk == single


def test_bulk_provisioning_refuses_an_invalid_vehicle_id() -> None:
    with pytest.raises(Exception, match="invalid vehicle id"):
        fl.provision_fleet(lambda: RecordingAdmin([]), {"fleet.*": "x"})
