"""wire.restamp against wire.encode: a message re-stamped with another vehicle id, seq and start time is byte for
byte the encoding of the same batch under the new identity, and the decoder accepts it; over thousands of
generated batches of every kind, version (v2, v3) and flag set."""

from __future__ import annotations

import dataclasses
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetsense import wire
from fleetsense.errors import ConfigError, WireFormatError
from tests.unit.test_wire_fuzz import batches

vehicle_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
seqs = st.integers(0, 2**63 - 1)
start_times = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), vehicle_id=vehicle_ids, seq=seqs, start_time_us=start_times)
def test_restamp_of_an_encoded_batch_is_the_encoding_of_the_batch_under_its_new_identity(
    batch: wire.Batch, vehicle_id: str, seq: int, start_time_us: int
) -> None:
    message = wire.restamp(wire.encode(batch), vehicle_id=vehicle_id, seq=seq, start_time_us=start_time_us)
    renamed = dataclasses.replace(batch, vehicle_id=vehicle_id, seq=seq, start_time_us=start_time_us)
    assert message == wire.encode(renamed)
    decoded = wire.decode(message)  # checks the CRC and every rule the cloud applies
    assert (decoded.vehicle_id, decoded.seq, decoded.start_time_us) == (vehicle_id, seq, start_time_us)
    assert (decoded.samples, decoded.flags, decoded.epoch, decoded.kind) == (
        batch.samples, batch.flags, batch.epoch, batch.kind
    )  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), vehicle_id=vehicle_ids, stamps=st.lists(st.tuples(seqs, start_times), min_size=1, max_size=4))
def test_a_restamper_gives_the_same_bytes_as_restamp_message_after_message(
    batch: wire.Batch, vehicle_id: str, stamps: list[tuple[int, int]]
) -> None:
    template = wire.StampTemplate.from_message(wire.encode(batch))
    assert (template.kind, template.sample_count, template.epoch) == (batch.kind, len(batch.samples), batch.epoch)
    stamper = wire.Restamper(vehicle_id)
    for seq, start_time_us in stamps:  # the second and later use the cached prefix CRC
        assert stamper.stamp(template, seq, start_time_us) == wire.restamp(
            wire.encode(batch), vehicle_id=vehicle_id, seq=seq, start_time_us=start_time_us
        )


def imu_message() -> bytes:
    samples = ((1, 2, 3, 4, 5, 6),) * 3
    batch = wire.Batch(vehicle_id="pool", seq=0, start_time_us=0, sample_period_us=10_000, kind=wire.Kind.IMU,
                       scales=(0.01,) * 6, samples=samples)  # fmt: skip
    return wire.encode(batch)


def test_the_crc_covers_the_new_header() -> None:
    message = wire.restamp(imu_message(), vehicle_id="van-1", seq=5, start_time_us=1)
    assert int.from_bytes(message[-4:], "big") == zlib.crc32(message[:-4])
    tampered = bytearray(message)
    tampered[6 + len("van-1") + 7] ^= 0x01  # seq 5 -> 4 without a new CRC
    with pytest.raises(WireFormatError, match="bad CRC"):
        wire.decode(bytes(tampered))


@pytest.mark.parametrize(
    ("seq", "start_time_us"),
    [(-1, 0), (2**63, 0), (0, 2**63), (0, -(2**63) - 1)],
    ids=["seq<0", "seq>=2^63", "t>=2^63", "t<-2^63"],
)
def test_out_of_range_stamps_are_refused_like_encode_refuses_them(seq: int, start_time_us: int) -> None:
    with pytest.raises(WireFormatError, match="cannot stamp"):
        wire.restamp(imu_message(), vehicle_id="van-1", seq=seq, start_time_us=start_time_us)
    batch = dataclasses.replace(wire.decode(imu_message()), seq=seq, start_time_us=start_time_us)
    with pytest.raises(WireFormatError):
        wire.encode(batch)


def test_an_invalid_vehicle_id_is_refused_like_encode_refuses_it() -> None:
    with pytest.raises(ConfigError, match="invalid vehicle id"):
        wire.restamp(imu_message(), vehicle_id="fleet.*", seq=0, start_time_us=0)
    with pytest.raises(ConfigError, match="invalid vehicle id"):
        wire.Restamper("x" * 65)


def test_only_checked_v2_and_v3_messages_can_be_templates() -> None:
    message = imu_message()
    with pytest.raises(WireFormatError, match="version 1"):
        wire.StampTemplate.from_message(wire.encode_v1(wire.decode(message)))
    with pytest.raises(WireFormatError, match="bad CRC"):
        wire.restamp(message[:-1] + bytes([message[-1] ^ 1]), vehicle_id="van-1", seq=0, start_time_us=0)
