"""The job's per-vehicle decisions without Flink (cloud/vehicle_stream.py): what gets written for each message."""

from __future__ import annotations

import dataclasses
import pickle
import zlib

from fleetsense.cloud.store import STATEMENTS
from fleetsense.cloud.vehicle_stream import StreamSettings, VehicleState, on_message, on_timer

from fleetsense import wire

NOW_MS = 1_790_000_000_000
SETTINGS = StreamSettings(gap_wait_ms=1000)
KEY = "fleet.van-7.telemetry"


def imu_message(seq: int, *, vehicle: str = "van-7", flags: wire.Flags = wire.Flags(0)) -> bytes:  # noqa: B008
    start_us = (NOW_MS - 60_000) * 1000 + seq * 1_000_000
    return wire.encode(
        wire.Batch(
            vehicle_id=vehicle,
            seq=seq,
            start_time_us=start_us,
            sample_period_us=10_000,
            kind=wire.Kind.IMU,
            scales=(0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001),
            offsets=(0.0,) * 6,
            samples=[(0, 0, 9807 + (i % 3), 0, 0, 0) for i in range(100)],
            flags=flags,
        )
    )


def names(writes: list[tuple[str, object]]) -> list[str]:
    return [name for name, _ in writes]


def test_every_write_names_a_known_statement_with_the_right_number_of_values() -> None:
    _, result = on_message(None, {}, KEY, imu_message(0), now_ms=NOW_MS, settings=SETTINGS)
    assert result.writes
    for name, values in result.writes:
        assert STATEMENTS[name].count("?") == len(values)


def test_a_batch_is_stored_once_and_a_duplicate_writes_nothing() -> None:
    waiting: dict[int, bytes] = {}
    state, first = on_message(None, waiting, KEY, imu_message(0), now_ms=NOW_MS, settings=SETTINGS)
    assert names(first.writes)[:3] == ["block", "vehicle", "hour"] and first.counts["accepted"] == 1
    state, again = on_message(state, waiting, KEY, imu_message(0), now_ms=NOW_MS + 5, settings=SETTINGS)
    assert again.writes == [] and again.counts == {"duplicate": 1}
    state, second = on_message(state, waiting, KEY, imu_message(1), now_ms=NOW_MS + 10, settings=SETTINGS)
    assert "hour" not in names(second.writes)  # the hour index is written once per hour, not per batch


def test_a_reordered_batch_waits_and_both_are_analysed_in_order() -> None:
    waiting: dict[int, bytes] = {}
    state, _ = on_message(None, waiting, KEY, imu_message(0), now_ms=NOW_MS, settings=SETTINGS)
    state, r2 = on_message(state, waiting, KEY, imu_message(2), now_ms=NOW_MS + 1, settings=SETTINGS)
    assert list(waiting) == [2] and names(r2.writes) == ["block"] and r2.timer_ms == NOW_MS + 2000
    state, r1 = on_message(state, waiting, KEY, imu_message(1), now_ms=NOW_MS + 2, settings=SETTINGS)
    assert waiting == {} and r1.timer_ms == NOW_MS + 16_000  # only the idle flush is due
    assert state is not None and state.last_end_us[int(wire.Kind.IMU)] == (NOW_MS - 60_000) * 1000 + 2_990_000


def test_a_gap_is_recorded_after_the_wait_and_the_late_batch_is_still_stored() -> None:
    waiting: dict[int, bytes] = {}
    state, _ = on_message(None, waiting, KEY, imu_message(0), now_ms=NOW_MS, settings=SETTINGS)
    state, _ = on_message(state, waiting, KEY, imu_message(2), now_ms=NOW_MS + 1, settings=SETTINGS)
    assert state is not None
    timer = on_timer(state, waiting, "van-7", now_ms=NOW_MS + 1001)
    assert ("gap", ("van-7", 0, 1, 1, NOW_MS + 1001)) in timer.writes and waiting == {}
    state, late = on_message(state, waiting, KEY, imu_message(1), now_ms=NOW_MS + 2000, settings=SETTINGS)
    assert names(late.writes) == ["block", "late"] and late.counts["late"] == 1


def test_bad_input_is_rejected_with_a_deterministic_row_and_leaves_the_state_alone() -> None:
    state, _ = on_message(None, {}, KEY, imu_message(0), now_ms=NOW_MS, settings=SETTINGS)
    before = pickle.dumps(state)
    forged = imu_message(1, vehicle="van-8")
    after, first = on_message(state, {}, KEY, forged, now_ms=NOW_MS + 1, settings=SETTINGS)
    _, second = on_message(after, {}, KEY, forged, now_ms=NOW_MS + 2, settings=SETTINGS)
    assert first.counts == {"rejected": 1} and names(first.writes) == ["rejected"]
    assert first.writes[0][1][:3] == second.writes[0][1][:3]  # same source, day, message id: redelivery is one row
    assert first.writes[0][1][0] == "van-7"  # the source is the authenticated topic's vehicle
    assert "payload names vehicle 'van-8'" in str(first.writes[0][1][5])
    assert pickle.dumps(after) == before


def test_the_vehicle_state_stays_small_over_an_hour_of_batches() -> None:
    waiting: dict[int, bytes] = {}
    state: VehicleState | None = None
    for seq in range(0, 600):
        state, _ = on_message(state, waiting, KEY, imu_message(seq), now_ms=NOW_MS + seq, settings=SETTINGS)
    assert len(pickle.dumps(state)) < 40_000


def test_a_silent_vehicle_is_flushed_so_held_back_samples_are_counted() -> None:
    waiting: dict[int, bytes] = {}
    state, result = on_message(None, waiting, KEY, imu_message(0), now_ms=NOW_MS, settings=SETTINGS)
    assert state is not None and result.timer_ms == NOW_MS + 15_000
    minutes = [values for name, values in result.writes if name == "minute"]
    assert minutes and minutes[-1][3] < 100  # the low-pass filter holds the last samples back
    assert on_timer(state, waiting, "van-7", now_ms=NOW_MS + 14_000).writes == []
    flushed = on_timer(state, waiting, "van-7", now_ms=NOW_MS + 15_000)
    assert flushed.counts == {"idle_flushes": 1} and flushed.timer_ms is None
    assert "vehicle" not in names(flushed.writes)  # batch 0 wrote it already
    assert [values[3] for name, values in flushed.writes if name == "minute"] == [100]


def test_the_latest_seen_row_is_written_every_10_s_of_samples_and_at_the_idle_flush() -> None:
    waiting: dict[int, bytes] = {}
    state: VehicleState | None = None
    latest_rows = []
    for seq in range(25):
        state, result = on_message(state, waiting, KEY, imu_message(seq), now_ms=NOW_MS + seq, settings=SETTINGS)
        latest_rows += [values[1] for name, values in result.writes if name == "vehicle"]
    assert latest_rows == [0, 10, 20]
    assert state is not None
    flushed = on_timer(state, waiting, "van-7", now_ms=NOW_MS + 60_000)
    assert [values[1] for name, values in flushed.writes if name == "vehicle"] == [24]


def test_the_running_minute_is_written_every_10_s_a_closed_one_at_once_and_all_at_the_idle_flush() -> None:
    waiting: dict[int, bytes] = {}
    state: VehicleState | None = None
    minute_rows: list[tuple[int, int, int]] = []  # (batch seq, minute start ms, samples counted)
    for seq in range(130):
        state, result = on_message(state, waiting, KEY, imu_message(seq), now_ms=NOW_MS + seq, settings=SETTINGS)
        minute_rows += [(seq, values[2], values[3]) for name, values in result.writes if name == "minute"]
    assert state is not None
    per_batch = len(minute_rows) / 130
    assert per_batch < 0.2, minute_rows  # not a row per batch
    written_minutes = sorted({minute for _, minute, _ in minute_rows})
    assert len(written_minutes) >= 2  # two minutes closed within 130 s, each written when it closed
    flushed = on_timer(state, waiting, "van-7", now_ms=NOW_MS + 200_000)
    final = {values[2]: values[3] for name, values in flushed.writes if name == "minute"}
    last = {minute: count for _, minute, count in minute_rows} | final
    assert sum(last.values()) == 130 * 100  # every sample counted once the pending rows are flushed


def test_a_batch_that_overflows_the_wait_and_is_not_released_with_the_front_is_kept_for_later() -> None:
    """More than max_waiting batches wait: the gap in front of the lowest is skipped, and the batch that caused it
    (behind a second gap) still waits; its bytes must be kept, or its release raises KeyError and the job fails
    (found by tests/unit/test_stream_simulation.py, seed 35)."""
    settings = StreamSettings(gap_wait_ms=1000, max_waiting=2)
    waiting: dict[int, bytes] = {}
    state, _ = on_message(None, waiting, KEY, imu_message(0), now_ms=NOW_MS, settings=settings)
    for seq in (2, 3):
        state, _ = on_message(state, waiting, KEY, imu_message(seq), now_ms=NOW_MS + seq, settings=settings)
    state, overflow = on_message(state, waiting, KEY, imu_message(5), now_ms=NOW_MS + 5, settings=settings)
    assert state is not None and overflow.analysed == [("van-7", 0, 2), ("van-7", 0, 3)]
    assert list(waiting) == [5]
    released = on_timer(state, waiting, "van-7", now_ms=NOW_MS + 5 + 1000)
    assert released.analysed == [("van-7", 0, 5)] and waiting == {}


def test_a_seq_that_comes_again_with_other_content_is_recorded_as_a_conflict_not_dropped() -> None:
    waiting: dict[int, bytes] = {}
    state, _ = on_message(None, waiting, KEY, imu_message(0), now_ms=NOW_MS, settings=SETTINGS)
    other = imu_message(0, flags=wire.Flags.CLOCK_UNSYNCED)  # same seq, other bytes
    state, again = on_message(state, waiting, KEY, imu_message(0), now_ms=NOW_MS + 1, settings=SETTINGS)
    assert again.counts == {"duplicate": 1} and again.writes == []
    state, conflict = on_message(state, waiting, KEY, other, now_ms=NOW_MS + 2, settings=SETTINGS)
    assert conflict.counts == {"conflicts": 1} and names(conflict.writes) == ["conflict"]
    values = conflict.writes[0][1]
    assert values[:2] == ("van-7", 0) and values[2] == zlib.crc32(other) and values[4] == zlib.crc32(imu_message(0))
    assert values[6] == other  # the other copy is kept whole


def test_a_reflashed_device_that_starts_again_at_seq_0_is_stored_and_analysed_as_a_new_sequence() -> None:
    """Issue 12: a replaced Pi restarting at seq 0 (RESTARTED | GAP_BEFORE) was dropped as duplicates until its
    seq passed the old maximum. Its batches are newer than anything seen: a new sequence starts."""
    waiting: dict[int, bytes] = {}
    state: VehicleState | None = None
    for seq in range(10):
        state, _ = on_message(state, waiting, KEY, imu_message(seq), now_ms=NOW_MS + seq, settings=SETTINGS)
    state, _ = on_message(state, waiting, KEY, imu_message(12), now_ms=NOW_MS + 12, settings=SETTINGS)  # waits
    reflashed = wire.Flags.RESTARTED | wire.Flags.GAP_BEFORE

    def later(seq: int, flags: wire.Flags = wire.Flags(0)) -> bytes:  # noqa: B008
        body = wire.decode(imu_message(seq, flags=flags))
        return wire.encode(dataclasses.replace(body, start_time_us=body.start_time_us + 60_000_000))

    state, first = on_message(state, waiting, KEY, later(0, reflashed), now_ms=NOW_MS + 20, settings=SETTINGS)
    assert state is not None and state.epoch == 1
    assert first.counts["sequence_restarts"] == 1 and first.counts["accepted"] == 1
    assert first.analysed == [("van-7", 0, 12), ("van-7", 1, 0)]  # the old sequence's waiting batch first
    assert ("restart", ("van-7", 1, NOW_MS + 20, 13, 0)) in first.writes  # the old one ended at 12
    assert ("gap", ("van-7", 0, 10, 11, NOW_MS + 20)) in first.writes
    state, second = on_message(state, waiting, KEY, later(1), now_ms=NOW_MS + 21, settings=SETTINGS)
    assert second.analysed == [("van-7", 1, 1)]
    # A batch of the old sequence still in flight is stored and recorded late, not taken for the new one.
    state, old = on_message(state, waiting, KEY, imu_message(13), now_ms=NOW_MS + 22, settings=SETTINGS)
    assert old.counts["late"] == 1 and old.analysed == [] and "late" in names(old.writes)
    # The same RESTARTED batch redelivered is a duplicate, not a third sequence.
    state, again = on_message(state, waiting, KEY, later(0, reflashed), now_ms=NOW_MS + 23, settings=SETTINGS)
    assert again.counts == {"duplicate": 1} and state is not None and state.epoch == 1


def test_a_state_pickled_before_version_2_loads_with_the_new_fields_at_their_defaults() -> None:
    state, _ = on_message(None, {}, KEY, imu_message(0), now_ms=NOW_MS, settings=SETTINGS)
    assert state is not None
    old = dict(vars(state))
    for name in ("recent_crcs", "newest_start_us", "epoch", "epoch_start_us"):  # and no version field
        del old[name]
    restored = VehicleState.__new__(VehicleState)
    restored.__setstate__(old)
    assert restored.recent_crcs == {} and restored.epoch == 0
    restored, step = on_message(restored, {}, KEY, imu_message(1), now_ms=NOW_MS + 1, settings=SETTINGS)
    assert step.analysed == [("van-7", 0, 1)]
