"""Bundles of many vehicles' messages (cloud/shard_stream.py), the bundle record layout (cloud/amqp_source.py)
and the shards' Flink keys (cloud/shard_keys.py), without Flink."""

from __future__ import annotations

import pickle
import random
import struct
import zlib

import pytest
from fleetsense.cloud.amqp_source import bundle_shard, shard_of, split_bundle
from fleetsense.cloud.profiles import Profile
from fleetsense.cloud.shard_keys import key_group, shard_keys, subtask_of
from fleetsense.cloud.shard_stream import DictShardStore, on_bundle, on_shard_timer
from fleetsense.cloud.vehicle_stream import StreamSettings, on_message

from tests.unit.test_vehicle_stream import NOW_MS, imu_message

SETTINGS = StreamSettings(gap_wait_ms=1000)


def no_profiles(vehicles: object) -> dict[str, Profile]:
    return {}


def bundle(shard: int, messages: list[tuple[str, bytes]]) -> bytes:
    """The layout the Java AmqpBundle.encode writes, spelled out independently."""
    out = struct.pack(">HH", shard, len(messages))
    for key, body in messages:
        raw = key.encode()
        out += struct.pack(">H", len(raw)) + raw + struct.pack(">I", len(body)) + body
    return out


def test_a_bundle_splits_into_its_messages_in_order() -> None:
    messages = [("fleet.a.telemetry", b"one"), ("fleet.b.telemetry", b""), ("fleet.ä.telemetry", b"\x00" * 70_000)]
    record = bundle(7, messages)
    assert split_bundle(record) == (7, messages) and bundle_shard(record) == 7


# The same bytes AmqpBundleTest.BUNDLE_HEX pins on the Java side (cloud/connector/src/test/java): the encoder
# and this decoder are held to one literal record, not only to each other's description of the layout.
JAVA_BUNDLE_HEX = (
    "00070003"
    "0011666c6565742e612e74656c656d65747279000000036f6e65"
    "0011666c6565742e622e74656c656d6574727900000000"
    "0012666c6565742ec3a42e74656c656d6574727900000003000000"
)


def test_the_bundle_the_java_encoder_writes_decodes() -> None:
    messages = [("fleet.a.telemetry", b"one"), ("fleet.b.telemetry", b""), ("fleet.ä.telemetry", b"\x00" * 3)]
    assert split_bundle(bytes.fromhex(JAVA_BUNDLE_HEX)) == (7, messages)
    assert bundle(7, messages).hex() == JAVA_BUNDLE_HEX


@pytest.mark.parametrize("cut", [1, 3, 5, 10, 25])
def test_a_truncated_or_padded_bundle_is_refused_with_a_reason(cut: int) -> None:
    record = bundle(1, [("fleet.a.telemetry", b"x" * 10)])
    with pytest.raises(ValueError, match="AMQP bundle"):
        split_bundle(record[:-cut])
    with pytest.raises(ValueError, match="after its 1 messages"):
        split_bundle(record + b"!")


def test_the_shard_is_crc32_of_the_vehicle_id() -> None:
    assert shard_of("fleet.van-7.telemetry", 16) == zlib.crc32(b"van-7") % 16
    assert shard_of("fleet.van-7.status", 16) == shard_of("fleet.van-7.telemetry", 16)
    assert shard_of("odd-key", 5) == zlib.crc32(b"odd-key") % 5


def test_key_groups_match_flinks_own_assignment_of_row_keys() -> None:
    # KeyGroupRangeAssignment.assignToKeyGroup(Row.of(k), 128) printed by Flink 1.20.3 (jshell on flink-dist).
    from_flink = {0: 33, 1: 44, 2: 97, 3: 104, 5: 17, 17: 107, 100: 66, 1000: 5}
    assert {k: key_group(k) for k in from_flink} == from_flink


def test_shard_keys_spread_shards_evenly_over_power_of_two_parallelism() -> None:
    keys = shard_keys(16)
    assert len(set(keys)) == 16
    for parallelism in (1, 2, 4, 8):
        per_subtask = [0] * parallelism
        for key in keys:
            per_subtask[subtask_of(key, parallelism)] += 1
        assert per_subtask == [16 // parallelism] * parallelism


def test_a_bundle_gives_each_vehicle_what_its_own_messages_would() -> None:
    """Three vehicles interleaved, one batch duplicated and one reordered: the same writes and counts as
    feeding each vehicle's messages to on_message alone, and each vehicle's state saved."""
    vehicles = ["van-1", "van-2", "van-3"]
    messages = [(f"fleet.{v}.telemetry", imu_message(seq, vehicle=v)) for seq in range(4) for v in vehicles]
    messages.append(messages[4])  # a redelivery
    messages[0], messages[3] = messages[3], messages[0]  # van-1: seq 1 before seq 0
    store = DictShardStore()
    deadlines: dict[str, int] = {}
    result = on_bundle(store, deadlines, messages, now_ms=NOW_MS, settings=SETTINGS, profiles_of=no_profiles)

    expected_writes = []
    expected_counts: dict[str, int] = {}
    for v in vehicles:
        state, waiting = None, {}
        for key, body in messages:
            if key == f"fleet.{v}.telemetry":
                state, step = on_message(state, waiting, key, body, now_ms=NOW_MS, settings=SETTINGS)
                expected_writes += step.writes
                for name, n in step.counts.items():
                    expected_counts[name] = expected_counts.get(name, 0) + n
    assert sorted(map(repr, result.writes)) == sorted(map(repr, expected_writes))
    assert result.counts == expected_counts and result.counts["duplicate"] == 1 and result.counts["accepted"] == 12
    assert set(store.states) == set(vehicles) and store.waiting_bodies == {}
    assert set(deadlines) == set(vehicles) and result.timer_ms == min(deadlines.values())


def test_a_rejected_message_saves_nothing_and_a_new_vehicle_gets_its_profile_class() -> None:
    store = DictShardStore()
    deadlines: dict[str, int] = {}
    messages = [
        ("fleet.van-1.telemetry", b"garbage"),
        ("fleet.a b.telemetry", imu_message(0)),  # no valid vehicle in the routing key: rejected, not raised
        ("fleet.truck-1.telemetry", imu_message(0, vehicle="truck-1")),
    ]
    asked: list[list[str]] = []

    def profiles(vehicles: object) -> dict[str, Profile]:
        asked.append(list(vehicles))  # type: ignore[call-overload]
        return {"truck-1": Profile("truck", updated_ms=NOW_MS - 5_000)}

    result = on_bundle(store, deadlines, messages, now_ms=NOW_MS, settings=SETTINGS, profiles_of=profiles)
    assert result.counts["rejected"] == 2 and result.counts["accepted"] == 1
    assert asked == [["van-1", "truck-1"]] and set(store.states) == {"truck-1"}
    assert store.states["truck-1"].analyzer.config.vehicle_class == "truck"
    assert store.states["truck-1"].profile_ms == NOW_MS - 5_000


def test_a_known_vehicle_takes_a_class_set_after_the_one_it_has_and_keeps_what_it_measured() -> None:
    store = DictShardStore()
    deadlines: dict[str, int] = {}
    drive = [("fleet.van-1.telemetry", imu_message(seq, vehicle="van-1")) for seq in range(4)]
    on_bundle(store, deadlines, drive[:2], now_ms=NOW_MS, settings=SETTINGS, profiles_of=no_profiles)
    assert store.states["van-1"].analyzer.config.vehicle_class == "van"

    changed = {"van-1": Profile("truck", updated_ms=NOW_MS + 1_000), "other": Profile("car", updated_ms=NOW_MS)}
    result = on_bundle(
        store, deadlines, drive[2:3], now_ms=NOW_MS + 2_000, settings=SETTINGS, profiles_of=no_profiles,
        known_profiles=changed,
    )  # fmt: skip
    state = store.states["van-1"]
    assert result.counts["accepted"] == 1 and set(store.states) == {"van-1"}
    assert state.analyzer.config.vehicle_class == "truck" and state.profile_ms == NOW_MS + 1_000
    assert state.sequencer.next_seq == 3  # the same state carried on: only its class changed

    # A reading of all profiles older than the one applied (here: the same one again) changes nothing.
    state.analyzer.set_vehicle_class("car")
    on_bundle(
        store, deadlines, drive[3:], now_ms=NOW_MS + 3_000, settings=SETTINGS, profiles_of=no_profiles,
        known_profiles=changed,
    )  # fmt: skip
    assert store.states["van-1"].analyzer.config.vehicle_class == "car"


def test_the_shard_timer_skips_a_gap_and_flushes_only_the_vehicles_that_are_due() -> None:
    store = DictShardStore()
    deadlines: dict[str, int] = {}
    first = [("fleet.van-1.telemetry", imu_message(seq, vehicle="van-1")) for seq in (0, 2)]
    on_bundle(store, deadlines, first, now_ms=NOW_MS, settings=SETTINGS, profiles_of=no_profiles)
    on_bundle(
        store,
        deadlines,
        [("fleet.van-2.telemetry", imu_message(0, vehicle="van-2"))],
        now_ms=NOW_MS + 10_000,
        settings=SETTINGS,
        profiles_of=no_profiles,
    )
    assert list(store.waiting("van-1")) == [2] and deadlines["van-1"] == -(-(NOW_MS + 1000) // 1000) * 1000
    result = on_shard_timer(store, deadlines, now_ms=NOW_MS + 2000)
    assert result.counts.get("gaps_skipped") == 1
    assert ("gap", ("van-1", 0, 1, 1, NOW_MS + 2000)) in result.writes and list(store.waiting("van-1")) == []
    flushed = on_shard_timer(store, deadlines, now_ms=NOW_MS + 20_000)
    assert flushed.counts.get("idle_flushes") == 1  # van-1 only: van-2 was last heard at +10 s
    assert set(deadlines) == {"van-2"} and flushed.timer_ms == deadlines["van-2"]


def test_bundles_in_random_cuts_give_the_same_result_as_one_bundle() -> None:
    rng = random.Random(5)
    messages = [(f"fleet.v{v}.telemetry", imu_message(seq, vehicle=f"v{v}")) for seq in range(5) for v in range(6)]
    whole_store, whole_deadlines, cut_deadlines = DictShardStore(), dict[str, int](), dict[str, int]()
    whole = on_bundle(whole_store, whole_deadlines, messages, now_ms=NOW_MS, settings=SETTINGS, profiles_of=no_profiles)
    cut_store, writes = DictShardStore(), []
    at = 0
    while at < len(messages):
        size = rng.randint(1, 7)
        part = on_bundle(
            cut_store,
            cut_deadlines,
            messages[at : at + size],
            now_ms=NOW_MS,
            settings=SETTINGS,
            profiles_of=no_profiles,
        )
        writes += part.writes
        at += size
    assert sorted(map(repr, writes)) == sorted(map(repr, whole.writes)) and cut_deadlines == whole_deadlines


def test_two_gaps_from_one_vehicle_at_rest_release_everything_without_spinning_the_shard_timer() -> None:
    """Issue 12's first bug: seqs 0, 1, 3, 5 and then only timers. The shard's timer spun at one timestamp for
    ever (a deadline at or before now); now each batch is released within the gap wait of its arrival, the vehicle
    is flushed, and the timer fires a handful of times."""
    from tests.unit.stream_sim import START_MS, Delivery, Fleet, Simulation

    bodies = {seq: imu_message(seq) for seq in (0, 1, 3, 5)}
    deliveries = [Delivery(START_MS + 1000 * i, i, "van-7", seq, body) for i, (seq, body) in enumerate(bodies.items())]
    run = Simulation(Fleet(deliveries, {"van-7": bodies}, START_MS + 4000), spin_limit=3).run()
    assert [seq for _, _, seq, _ in run.analysed] == [0, 1, 3, 5]
    assert sorted(first for _, _, first in run.db.named("gap")) == [2, 4]
    assert run.firings <= 4
    assert run.state.stores[0].states["van-7"].flushed or run.state.stores[1].states["van-7"].flushed


def test_after_a_restore_the_time_the_job_was_down_does_not_count_as_waiting_or_idle() -> None:
    """Found by the TaskManager-kill integration test: batch 2 waited for batch 1 (delivered after the checkpoint,
    so redelivered after the restore) and the vehicle was mid-manoeuvre. The restored job's overdue timer gave up
    the gap and flushed the idle vehicle before the redelivery came: batch 1 went late and a cornering event
    split in two."""
    store, deadlines = DictShardStore(), {}
    key = "fleet.van-1.telemetry"
    on_bundle(store, deadlines, [(key, imu_message(0, vehicle="van-1"))], now_ms=NOW_MS, settings=SETTINGS,
              profiles_of=no_profiles)  # fmt: skip
    on_bundle(store, deadlines, [(key, imu_message(2, vehicle="van-1"))], now_ms=NOW_MS + 10, settings=SETTINGS,
              profiles_of=no_profiles)  # fmt: skip
    restored = pickle.loads(pickle.dumps((store, deadlines)))  # the checkpoint
    resumed = NOW_MS + 60_000  # the job comes back a minute later
    store, deadlines = restored
    timer = on_shard_timer(store, deadlines, now_ms=resumed + 5, resumed_ms=resumed)
    assert timer.analysed == [] and "gaps_skipped" not in timer.counts and "idle_flushes" not in timer.counts
    redelivered = on_bundle(store, deadlines, [(key, imu_message(1, vehicle="van-1"))], now_ms=resumed + 50,
                            settings=SETTINGS, profiles_of=no_profiles, resumed_ms=resumed)  # fmt: skip
    assert redelivered.analysed == [("van-1", 0, 1), ("van-1", 0, 2)] and "late" not in redelivered.counts
