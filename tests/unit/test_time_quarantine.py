"""The time quarantine without a server (issue 13): what the job keeps of a message rejected for its sample times,
what the rejection limiter may not drop, and how `fleetsense quarantine` re-times, re-admits and deletes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from fleetsense.cloud import quarantine as q
from fleetsense.cloud.decode import decode_batch
from fleetsense.cloud.rejections import RejectionLimiter, limit
from fleetsense.cloud.shard_stream import DictShardStore, on_bundle
from fleetsense.cloud.vehicle_stream import StreamSettings, on_message

from fleetsense import wire
from fleetsense.errors import ConfigError
from tests.unit.cql_binding import bind

NOW_MS = 1_790_000_000_000
DAY_US = 86_400_000_000
KEY = "fleet.van-7.telemetry"
SETTINGS = StreamSettings(gap_wait_ms=1000)


def imu_message(seq: int, start_us: int, *, period_us: int = 10_000, epoch: int = 0) -> bytes:
    return wire.encode(
        wire.Batch(
            vehicle_id="van-7",
            seq=seq,
            epoch=epoch,
            start_time_us=start_us,
            sample_period_us=period_us,
            kind=wire.Kind.IMU,
            scales=(0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001),
            offsets=(0.0,) * 6,
            samples=[(0, 0, 9807, 0, 0, 0)] * 100,
        )
    )


TRUE_START_US = NOW_MS * 1000 - 60_000_000
OLD = imu_message(0, TRUE_START_US - 40 * DAY_US, epoch=77)  # a clock 40 days behind
AHEAD = imu_message(1, TRUE_START_US + 3_600_000_000, epoch=77)  # a clock an hour ahead


def writes_of(body: bytes) -> list[tuple[str, Any]]:
    _, result = on_message(None, {}, KEY, body, now_ms=NOW_MS, settings=SETTINGS)
    return result.writes


@pytest.mark.parametrize(("body", "rule"), [(OLD, "more than 30 days old"), (AHEAD, "in the future")])
def test_a_message_rejected_for_its_time_is_quarantined_whole_besides_its_rejection_row(body: bytes, rule: str) -> None:
    writes = writes_of(body)
    assert [name for name, _ in writes] == ["rejected", "quarantine", "quarantine_day"]
    values = dict(writes)["quarantine"]
    header = wire.decode_header(body)
    assert values[0:2] == ("van-7", date(2026, 9, 21))  # vehicle and the UTC day it arrived
    assert values[2] == dict(writes)["rejected"][2]  # the rejection's message id
    assert rule in values[5]
    assert values[6:10] == (77, header.seq, int(wire.Kind.IMU), header.start_time_us)
    assert values[10] == header.end_time_us
    assert values[11] == body  # whole, not an excerpt
    for name, row in writes:
        bind(name, row)


@pytest.mark.parametrize(
    "body",
    [
        imu_message(0, TRUE_START_US, period_us=20_000_000),  # a period no clock fix can mend
        imu_message(0, TRUE_START_US)[:-1],  # undecodable
        b"",
    ],
)
def test_messages_rejected_for_anything_but_their_clock_are_not_quarantined(body: bytes) -> None:
    assert [name for name, _ in writes_of(body)] == ["rejected"]


def test_the_rejection_limiter_drops_excerpts_but_never_a_quarantined_message() -> None:
    bundle = [(KEY, imu_message(seq, TRUE_START_US - 40 * DAY_US + seq * 1_000_000)) for seq in range(50)]
    result = on_bundle(DictShardStore(), {}, bundle, now_ms=NOW_MS, settings=SETTINGS, profiles_of=lambda v: {})
    kept, unrecorded = limit(result.writes, RejectionLimiter(), now_ms=NOW_MS)
    names = [name for name, _ in kept]
    assert names.count("rejected") == 10 and unrecorded == 40  # the limiter's burst
    assert names.count("quarantine") == 50 and result.counts["quarantined"] == 50


def test_a_message_ending_beyond_int64_still_binds() -> None:
    body = imu_message(0, 2**63 - 1 - 50 * 10_000)  # its last sample is beyond 2^63 - 1 µs
    writes = writes_of(body)
    assert "quarantine" in dict(writes)
    for name, row in writes:
        bind(name, row)


def test_a_shifted_readmission_is_re_timed_flagged_clock_stepped_and_accepted_with_its_true_times() -> None:
    body = q.readmission(OLD, 40 * DAY_US)
    header = wire.decode_header(body)
    assert header.start_time_us == TRUE_START_US
    assert header.flags & wire.Flags.CLOCK_STEPPED
    assert (header.seq, header.epoch) == (0, 77)
    assert decode_batch(body).values_si.tolist() == decode_batch(OLD).values_si.tolist()
    state, result = on_message(None, {}, KEY, body, now_ms=NOW_MS, settings=SETTINGS)
    assert result.counts.get("accepted") == 1
    stored = dict(result.writes)["block"]
    assert stored[5] == TRUE_START_US // 1000 and stored[9] == body
    # A second readmission of the same batch (a command cut off before its delete) is a duplicate: nothing written.
    _, again = on_message(state, {}, KEY, body, now_ms=NOW_MS + 1, settings=SETTINGS)
    assert again.counts == {"duplicate": 1} and again.writes == []


def test_an_as_is_readmission_is_the_message_unchanged() -> None:
    assert q.readmission(AHEAD, None) == AHEAD


def test_a_v1_message_is_re_timed_without_the_flag_its_version_lacks() -> None:
    batch = wire.decode(OLD)
    v1 = wire.encode_v1(
        wire.Batch(
            vehicle_id="van-7",
            seq=0,
            start_time_us=batch.start_time_us,
            sample_period_us=10_000,
            kind=wire.Kind.IMU,
            scales=batch.scales,
            samples=batch.samples,
        )
    )
    header = wire.decode_header(q.readmission(v1, 40 * DAY_US))
    assert header.start_time_us == TRUE_START_US and header.flags == wire.Flags.NONE


class RecordingSession:
    """Records the CQL it is given: the readmit's deletes, in order with the publishes."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log

    def prepare(self, cql: str) -> str:
        return cql

    def execute_async(self, cql: str, values: Any = ()) -> Any:
        self.log.append(("cql", (cql.split()[0], values)))
        return self

    def result(self) -> None:
        """The write's future: it has already finished."""


def held(seq: int, body: bytes, *, written_us: int = 123) -> q.Quarantined:
    header = wire.decode_header(body)
    return q.Quarantined(
        vehicle_id="van-7",
        day="2026-09-21",
        message_id=f"id{seq}",
        received_at=datetime(2026, 9, 21, 12, tzinfo=UTC),
        routing_key=KEY,
        reason="sample times from ... are more than 30 days old",
        epoch=header.epoch,
        seq=header.seq,
        kind=int(header.kind),
        start_time_us=header.start_time_us,
        end_time_us=header.end_time_us,
        message=body,
        written_us=written_us,
    )


def test_readmit_deletes_each_message_only_after_its_confirm_at_the_rows_own_write_time() -> None:
    log: list[tuple[str, Any]] = []

    def publish(routing_key: str, body: bytes) -> None:
        if wire.decode_header(body).seq == 1:
            raise RuntimeError("nacked: queue full")
        log.append(("publish", (routing_key, body)))

    rows = [held(0, OLD, written_us=111), held(1, AHEAD, written_us=222)]
    result = q.readmit(RecordingSession(log), "ks", rows, shift_us=40 * DAY_US, publish=publish)
    assert result.published == 1
    assert [(m.seq, why.split(":")[0]) for m, why in result.failed] == [(1, "not confirmed by the broker")]
    assert [what for what, _ in log] == ["publish", "cql"]  # the one confirmed, then its delete; the other stays
    assert log[1][1] == ("DELETE", (111, "van-7", "2026-09-21", "id0"))
    assert log[0][1] == (KEY, q.readmission(OLD, 40 * DAY_US))


def test_a_shift_that_leaves_the_int64_range_keeps_the_message_with_the_reason() -> None:
    log: list[tuple[str, Any]] = []
    result = q.readmit(RecordingSession(log), "ks", [held(0, OLD)], shift_us=2**63 - 1, publish=lambda k, b: None)
    assert result.published == 0 and "cannot be re-timed" in result.failed[0][1] and log == []


def test_a_days_summary_counts_its_messages_their_time_ranges_and_reasons() -> None:
    ahead = held(1, AHEAD)
    ahead = q.Quarantined(**{**ahead.__dict__, "reason": "sample times up to ... are in the future"})
    (summary,) = q.summarise([held(0, OLD), ahead])
    assert (summary.vehicle_id, summary.day, summary.count) == ("van-7", "2026-09-21", 2)
    assert summary.first_start_us == TRUE_START_US - 40 * DAY_US
    assert summary.last_end_us == wire.decode_header(AHEAD).end_time_us
    assert summary.reasons == {"more than 30 days old": 1, "in the future": 1}


def test_a_day_that_is_not_a_utc_day_is_refused_with_the_format() -> None:
    assert q.check_day("2026-12-06") == "2026-12-06"
    for wrong in ("6.12.2026", "2026-12-6", "2026-13-01"):
        with pytest.raises(ConfigError, match="is not a UTC day") as refused:
            q.check_day(wrong)
        assert "YYYY-MM-DD" in refused.value.render()


def test_the_listing_looks_back_over_the_quarantines_ttl() -> None:
    days = q.recent_days(NOW_MS * 1000, 90 * 86_400)
    assert len(days) == 91 and days[0] == "2026-09-21" and days[-1] == "2026-06-23"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["quarantine", "readmit", "--shift-s", "60"], "quarantine readmit needs --vehicle"),
        (["quarantine", "readmit", "--vehicle", "van-7"], "needs --shift-s SECONDS"),
        (["quarantine", "list", "--day", "yesterday"], "--day 'yesterday' is not a UTC day"),
    ],
)
def test_the_quarantine_command_refuses_incomplete_arguments_with_what_to_do(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    from fleetsense.cli import main

    assert main(["--data-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "what to do" in err
