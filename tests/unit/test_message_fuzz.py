"""Fuzzing the job's whole per-message path: random and mutated-valid telemetry through validation,
deduplication, ordering and analysis (cloud/shard_stream.on_bundle), and every write it produces bound to its
statement's column types (tests/unit/cql_binding.py) as the driver would bind it. Nothing may raise, and no
message may end in the job's catch-all (the `errors` counter): each is processed or rejected with a reason.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

from fleetsense.cloud.shard_stream import DictShardStore, on_bundle, on_shard_timer
from fleetsense.cloud.vehicle_stream import StreamSettings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fleetsense import wire
from tests.unit.cql_binding import bind

NOW_MS = 1_790_000_000_000
SETTINGS = StreamSettings(gap_wait_ms=1000, max_waiting=8)
SEQ_AT = 6 + len("van-7")  # the seq's offset in a message of van-7


def valid_message(seq: int, *, version: int, kind: wire.Kind, flags: int, start_ms: int, n: int) -> bytes:
    channels = len(wire.CHANNEL_NAMES[kind])
    scales = {wire.Kind.BARO: (1.0, 0.01)}.get(kind, (0.001,) * channels)
    offsets = (100_000.0, 0.0) if kind is wire.Kind.BARO and version == 2 else (0.0,) * channels
    batch = wire.Batch(
        vehicle_id="van-7",
        seq=seq,
        start_time_us=start_ms * 1000,
        sample_period_us=10_000,
        kind=kind,
        scales=scales,
        offsets=offsets,
        samples=tuple(tuple((i * 37 + c * 11) % 200 - 100 for c in range(channels)) for i in range(n)),
        flags=wire.Flags(flags if version == 2 else flags & 1),
    )
    return wire.encode(batch) if version == 2 else wire.encode_v1(batch)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from((1, 2)))
    body = valid_message(
        draw(st.integers(0, 40) | st.integers(0, 2**63 - 1)),
        version=version,
        kind=draw(st.sampled_from(list(wire.Kind))),
        flags=draw(st.integers(0, 15)),
        start_ms=NOW_MS + draw(st.integers(-60_000, 60_000) | st.integers(-(2**50), 2**50)),
        n=draw(st.integers(0, 30)),
    )
    mutation = draw(st.sampled_from(("none", "bytes", "truncate", "seq", "field", "random")))
    raw = bytearray(body)
    if mutation == "bytes":
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    elif mutation == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif mutation == "seq":
        raw[SEQ_AT : SEQ_AT + 8] = struct.pack(">Q", draw(st.integers(2**63 - 2, 2**64 - 1)))
    elif mutation == "field":  # any header byte after the id: times, period, counts, descriptors
        at = draw(st.integers(SEQ_AT, min(len(raw) - 1, SEQ_AT + 60)))
        raw[at] = draw(st.integers(0, 255))
    elif mutation == "random":
        raw = bytearray(draw(st.binary(max_size=300)))
    if version == 2 and len(raw) > 4 and draw(st.booleans()):
        raw[-4:] = struct.pack(">I", zlib.crc32(bytes(raw[:-4])))  # a mutation that passes the CRC goes deeper
    return bytes(raw)


LAST_SEQ_BATCH = wire.Batch(
    vehicle_id="van-7",
    seq=wire.SEQ_LIMIT - 1,
    start_time_us=NOW_MS * 1000 - 10**7,
    sample_period_us=10_000,
    kind=wire.Kind.ACCEL,
    scales=(0.001,) * 3,
    offsets=(0.0,) * 3,
    samples=((1, 2, 3),),
)
KEYS = st.sampled_from(["fleet.van-7.telemetry", "fleet.van-8.telemetry", "fleet..telemetry", "x", "fleet.van-7"])


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(KEYS, messages()), min_size=1, max_size=6), st.integers(0, 30_000))
# Found by this test: a v1 sequence that reached the last seq (2^63 - 1), then a restart: the restart row's
# previous_next_seq was 2^63, which no bigint holds.
@example(
    [
        ("fleet.van-7.telemetry", wire.encode_v1(replace(LAST_SEQ_BATCH, seq=0))),
        ("fleet.van-7.telemetry", wire.encode_v1(LAST_SEQ_BATCH)),
        (
            "fleet.van-7.telemetry",
            wire.encode(
                replace(
                    LAST_SEQ_BATCH,
                    seq=0,
                    flags=wire.Flags.RESTARTED,
                    start_time_us=LAST_SEQ_BATCH.start_time_us + 1000,
                )
            ),
        ),
    ],
    0,
)
def test_any_message_sequence_is_processed_or_rejected_and_every_write_binds(
    bundle: list[tuple[str, bytes]], later_ms: int
) -> None:
    store, deadlines = DictShardStore(), {}
    results = [
        on_bundle(store, deadlines, bundle, now_ms=NOW_MS, settings=SETTINGS, profiles_of=lambda vehicles: {}),
        on_bundle(store, deadlines, bundle[::-1], now_ms=NOW_MS + 5, settings=SETTINGS, profiles_of=lambda v: {}),
        on_shard_timer(store, deadlines, now_ms=NOW_MS + later_ms),
        on_shard_timer(store, deadlines, now_ms=NOW_MS + 10**6),
    ]
    for result in results:
        assert "errors" not in result.counts, "a message raised inside the job"
        for name, values in result.writes:
            bind(name, values)
