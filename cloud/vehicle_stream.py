"""What the job does with one vehicle's messages, without Flink: validate, store the raw batch, deduplicate and
order by sequence number, analyse in order, and turn the results into Cassandra writes.

The Flink operator (cloud/jobs/telemetry_ingest.py) keeps a `VehicleState` per vehicle in keyed state and the
bytes of batches waiting for their turn in a map state; this module is the whole decision, so it is tested with
plain dicts (tests/unit/test_vehicle_stream.py) and the operator is only glue.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fleetsense.cloud import result_rows as rows
from fleetsense.cloud.analytics.aggregates import MinuteAggregate
from fleetsense.cloud.analytics.vehicle_analyzer import AnalysisOutput, AnalyzerConfig, VehicleAnalyzer
from fleetsense.cloud.decode import DecodedBatch, decode_batch
from fleetsense.cloud.sequencer import Decision, Released, Sequencer, Verdict
from fleetsense.cloud.store import Write, hour_bucket_ms
from fleetsense.cloud.stream_settings import StreamSettings as StreamSettings  # its callers name it here too
from fleetsense.cloud.validate import check_message
from fleetsense.cloud.vehicle_state_versions import VehicleLayout

from fleetsense import wire

# The job's counters (Flink metrics of the analysis operator), as StepResult.counts names them.
COUNTERS = (
    "accepted",
    "samples",
    "rejected",
    "rejections_unrecorded",  # rejections beyond a source's rate of rejection rows (cloud/rejections.py)
    "quarantined",  # rejected for their sample times only: kept whole in quarantined_messages (never rate-limited)
    "errors",  # messages whose processing raised (a fault of ours): rejected, kept whole
    "duplicate",
    "conflicts",  # a seq that came again with other content
    "sequence_restarts",  # a device that started its sequence again (reflashed, replaced)
    "late",
    "gaps_skipped",
    "events",
    "idle_flushes",
)
# A jump in sample time of more than this many periods between consecutive batches of one kind is a gap.
GAP_PERIODS = 1.5
# The open trip and the day's score change with every batch; they are rewritten at most this often (sample
# time), and at once whenever an event, a stop or a finished trip changes them.
SUMMARY_EVERY_US = 10_000_000
MINUTE_US = 60_000_000
PAST_EPOCHS = 8  # earlier sequences remembered per vehicle
RECENT_CRCS = 32  # seqs whose content is remembered (about 16 s of IMU and barometer batches)


@dataclass
class VehicleState:
    """Everything per vehicle except the waiting batches' bytes: small, pickled into one keyed state value."""

    sequencer: Sequencer
    analyzer: VehicleAnalyzer
    last_hour_ms: int = -1
    last_end_us: dict[int, int] = field(default_factory=dict)  # per wire kind: end of the last analysed batch
    last_summary_us: int = -1  # sample time when the open trip and day score were last written
    last_latest_us: int = -(2**62)  # sample time of the last write of the vehicle's latest-seen row
    pending_latest: tuple[int, int] | None = None  # (seq, end us) not yet written to the latest-seen row
    last_message_ms: int = 0  # processing time of the last accepted message
    flushed: bool = True  # nothing analysed since the last idle flush
    # Minute rows not yet written, by minute start (us): the running minute changes with every batch but is
    # written with the other summaries (every 10 s of samples, or at once on an event); a closed one at once.
    pending_minutes: dict[int, MinuteAggregate] = field(default_factory=dict)
    idle_flush_ms: int = StreamSettings.idle_flush_ms  # the setting's default (a state older than the field)
    profile_ms: int = -1  # when the vehicle profile last applied was set (profiles.Profile.updated_ms)
    # CRC-32 of each of the last RECENT_CRCS accepted messages, by seq: a seq that comes again with other content
    # is a conflict (recorded), not a duplicate (dropped).
    recent_crcs: dict[int, int] = field(default_factory=dict)
    newest_start_us: int = -(2**62)  # the latest start time of an accepted batch
    # The current sequence's epoch (v3: the device's; v1/v2: 0, then +1 at each restart the cloud recognises), and
    # when it began; earlier sequences (epoch, began us), newest last, so their late batches keep their own key.
    epoch: int = 0
    epoch_start_us: int = -(2**62)
    past_epochs: list[tuple[int, int]] = field(default_factory=list)
    resumed_ms: int = 0  # when the operator instance that last loaded this state started (see `resume`)

    # Pickled as a versioned tuple of the fields' values; older versions are migrated (vehicle_state_versions.py).
    def __getstate__(self) -> tuple[Any, ...]:
        return _LAYOUT.pack(self)

    def __setstate__(self, packed: tuple[Any, ...] | dict[str, Any]) -> None:
        _LAYOUT.restore(self, packed)

    @classmethod
    def new(cls, settings: StreamSettings) -> VehicleState:
        return cls(
            sequencer=Sequencer(gap_wait_ms=settings.gap_wait_ms, max_waiting=settings.max_waiting),
            analyzer=VehicleAnalyzer(analyzer_config(settings)),
            idle_flush_ms=settings.idle_flush_ms,
        )

    def resume(self, at_ms: int) -> None:
        """The job (re)started at `at_ms`, restoring this state from a checkpoint: the time it was down must not
        count as waiting. A batch waiting behind a gap waits for the missing one, which the broker redelivers
        after the restore (it was not acknowledged); a vehicle is not idle because the job was down. So waits
        and the idle time start again from `at_ms` (once per operator instance)."""
        if at_ms <= self.resumed_ms:
            return
        self.resumed_ms = at_ms
        self.sequencer.arrived_ms = {seq: max(t, at_ms) for seq, t in self.sequencer.arrived_ms.items()}
        if not self.flushed:
            self.last_message_ms = max(self.last_message_ms, at_ms)

    def next_timer_ms(self, now_ms: int) -> int | None:
        """When on_timer is next due, always after `now_ms`, rounded up to a whole second so a busy vehicle
        registers at most one timer per second. While batches wait behind a gap, the gap's deadline: the idle
        flush waits for them (on_timer flushes once they are released, if the vehicle is still silent)."""
        if self.sequencer.waiting:
            due = self.sequencer.deadline_ms()
        elif not self.flushed:
            due = self.last_message_ms + self.idle_flush_ms
        else:
            return None
        assert due is not None
        return -(-max(due, now_ms + 1) // 1000) * 1000


_LAYOUT = VehicleLayout(VehicleState)


def analyzer_config(settings: StreamSettings) -> AnalyzerConfig:
    """A new vehicle's analysis configuration: the settings' class (its profile's, or the job's default) and the
    job's thresholds of every class it changes (so that a change of class later finds the new class's)."""
    return AnalyzerConfig(vehicle_class=settings.vehicle_class, class_thresholds=settings.class_thresholds())


@dataclass
class StepResult:
    writes: list[Write] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # accepted, rejected, duplicate, late, gaps_skipped ...
    analysed: list[tuple[str, int, int]] = field(default_factory=list)  # (vehicle, epoch, seq), in the order analysed
    timer_ms: int | None = None  # when to call on_timer next

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


def on_message(
    state: VehicleState | None,
    waiting: MutableMapping[int, bytes],
    routing_key: str,
    body: bytes,
    *,
    now_ms: int,
    settings: StreamSettings,
) -> tuple[VehicleState | None, StepResult]:
    result = StepResult()
    verdict = check_message(routing_key, body, now_us=now_ms * 1000)
    if verdict.batch is None:
        reason = verdict.reason or "rejected"
        result.count("rejected")
        result.writes.append(rows.rejected_write(routing_key, body, reason, now_ms=now_ms))
        if verdict.mistimed is not None:
            result.count("quarantined")
            result.writes += rows.quarantine_writes(routing_key, verdict.mistimed, body, reason, now_ms=now_ms)
        return state, result
    batch = verdict.batch
    header = batch.header
    if state is None:
        state = VehicleState.new(settings)
        state.epoch = header.epoch
    else:
        # The job's thresholds also for a state written under other settings (an upgrade that changed them): the
        # settings decide, from this batch on. A comparison when nothing changed.
        state.analyzer.set_class_thresholds(settings.class_thresholds())
    crc = zlib.crc32(body)
    which, epoch = _sequence_of(state, header, crc)
    if which == "new":
        _restart_sequence(state, waiting, header, result, epoch=epoch, now_ms=now_ms)
    if which == "past":
        # From a sequence the device has left: stored under its own epoch and recorded late, never analysed, and
        # never taken for the current sequence (whose numbers it may share).
        decision = Decision(Verdict.LATE)
    else:
        gap_before = bool(header.flags & wire.Flags.GAP_BEFORE)
        decision = state.sequencer.offer(header.seq, gap_before=gap_before, now_ms=now_ms)
    if decision.verdict is Verdict.DUPLICATE:
        first_crc = state.recent_crcs.get(header.seq)
        # A copy of an accepted batch is never newer than every accepted batch; one that is, or whose content
        # differs from the remembered first copy, reuses the seq for other data: never dropped silently.
        if first_crc == crc or (first_crc is None and header.start_time_us <= state.newest_start_us):
            result.count("duplicate")
        else:
            result.count("conflicts")
            result.writes.append(
                rows.conflict_write(
                    header.vehicle_id, header.seq, epoch=epoch, first_crc=first_crc or 0, other_crc=crc,
                    message=body, now_ms=now_ms,
                )
            )  # fmt: skip
        return state, result
    state.recent_crcs[header.seq] = crc
    if len(state.recent_crcs) > RECENT_CRCS:
        del state.recent_crcs[next(iter(state.recent_crcs))]  # the oldest remembered
    state.newest_start_us = max(state.newest_start_us, header.start_time_us)
    result.count("accepted")
    result.count("samples", header.sample_count)
    state.last_message_ms = now_ms
    hour = hour_bucket_ms(header.start_time_us)
    # The vehicle's latest-seen row at most every 10 s of sample time (and at an idle flush): a row per batch
    # was a third of all writes.
    latest = header.start_time_us - state.last_latest_us >= SUMMARY_EVERY_US
    if latest:
        state.last_latest_us = header.start_time_us
    end_us = header.end_time_us
    if latest:
        state.pending_latest = None
    elif state.pending_latest is None or end_us > state.pending_latest[1]:
        state.pending_latest = (header.seq, end_us)
    result.writes += rows.block_writes(header, body, epoch=epoch, new_hour=hour != state.last_hour_ms, latest=latest)
    state.last_hour_ms = max(state.last_hour_ms, hour)
    if decision.verdict is Verdict.LATE:
        result.count("late")
        result.writes.append(rows.late_write(header.vehicle_id, epoch, header.seq, now_ms=now_ms))
    elif state.sequencer.is_waiting(header.seq):
        # It waits: told so (WAIT), or it made too many wait and the run released in front of it stops short.
        waiting[header.seq] = body
    _apply(state, waiting, header.vehicle_id, decision, result, now_ms=now_ms, current=(header.seq, batch))
    return state, result


def _sequence_of(state: VehicleState, header: wire.Header, crc: int) -> tuple[str, int]:
    """Which of the vehicle's sequences a batch belongs to, and its epoch: "current", "past" (one the device has
    left) or "new" (the device started its sequence again: reflashed, replaced, its outbox lost)."""
    if header.epoch:  # v3 names its sequence
        if header.epoch == state.epoch:
            return "current", state.epoch
        if any(epoch == header.epoch for epoch, _ in state.past_epochs) or header.start_time_us < state.epoch_start_us:
            return "past", header.epoch  # an epoch older than those remembered is older than the current one
        return "new", header.epoch
    # v1/v2 cannot say: a RESTARTED batch below the next expected seq, newer than every batch accepted so far and
    # not a copy of one remembered begins a new sequence (a redelivered old batch is older than what followed it).
    next_seq = state.sequencer.next_seq
    if (
        header.flags & wire.Flags.RESTARTED
        and next_seq is not None
        and header.seq < next_seq
        and header.start_time_us > state.newest_start_us
        and state.recent_crcs.get(header.seq) != crc
    ):
        return "new", (state.epoch + 1) % wire.EPOCH_LIMIT
    if header.start_time_us < state.epoch_start_us:
        began = [epoch for epoch, start_us in state.past_epochs if start_us <= header.start_time_us]
        return "past", began[-1] if began else (state.past_epochs[0][0] if state.past_epochs else state.epoch)
    return "current", state.epoch


def _restart_sequence(
    state: VehicleState,
    waiting: MutableMapping[int, bytes],
    header: wire.Header,
    result: StepResult,
    *,
    epoch: int,
    now_ms: int,
) -> None:
    """Close the old sequence (what waits in it is released now, its gaps recorded) and start a new one at this
    batch, recorded in sequence_restarts."""
    old = state.sequencer
    _apply(state, waiting, header.vehicle_id, old.expire(2**62), result, now_ms=now_ms, current=None)
    state.past_epochs = [*state.past_epochs, (state.epoch, state.epoch_start_us)][-PAST_EPOCHS:]
    state.sequencer = Sequencer(gap_wait_ms=old.gap_wait_ms, max_waiting=old.max_waiting)
    state.recent_crcs.clear()
    state.epoch = epoch
    state.epoch_start_us = header.start_time_us
    result.count("sequence_restarts")
    result.writes.append(
        rows.restart_write(
            header.vehicle_id, epoch=epoch, previous_next_seq=old.next_seq, first_seq=header.seq, now_ms=now_ms
        )
    )


def on_timer(state: VehicleState, waiting: MutableMapping[int, bytes], vehicle_id: str, *, now_ms: int) -> StepResult:
    result = StepResult()
    _apply(state, waiting, vehicle_id, state.sequencer.expire(now_ms), result, now_ms=now_ms, current=None)
    if not state.flushed and now_ms >= state.last_message_ms + state.idle_flush_ms and not state.sequencer.waiting:
        state.flushed = True
        result.count("idle_flushes")
        # Provisional: a copy of the analyser is flushed (its held-back samples processed, open events and the
        # open stop closed, rows written) and the analyser itself is left as it was. Silence in processing time
        # says nothing about sample time: a vehicle cut off from every broker (a partitioned node, reconnect
        # backoff) sends the missing seconds later, in order, and they must continue the open event, not start a
        # second one (issue 16: one hard stop became two events). A real gap in sample time ends the segment
        # when the next batch comes (`_analyse`), closing the same events at the same samples, so the rows
        # written now are rewritten with the same keys.
        result.writes += analysis_writes(
            vehicle_id, copy.deepcopy(state.analyzer).flush(), now_ms=now_ms, pending=state.pending_minutes
        )
        if state.pending_latest:
            result.writes.append(rows.vehicle_write(vehicle_id, *state.pending_latest))
            state.pending_latest = None
    result.timer_ms = state.next_timer_ms(now_ms)
    return result


def _apply(
    state: VehicleState,
    waiting: MutableMapping[int, bytes],
    vehicle_id: str,
    decision: Decision,
    result: StepResult,
    *,
    now_ms: int,
    current: tuple[int, DecodedBatch] | None,
) -> None:
    for first, last in decision.skipped:
        result.count("gaps_skipped")
        result.writes.append(rows.gap_write(vehicle_id, state.epoch, first, last, now_ms=now_ms))
    for released in decision.released:
        batch = current[1] if current and current[0] == released.seq else _take_waiting(waiting, released)
        result.analysed.append((vehicle_id, state.epoch, released.seq))
        _analyse(state, vehicle_id, batch, result, now_ms=now_ms)
    result.timer_ms = state.next_timer_ms(now_ms)


def _take_waiting(waiting: MutableMapping[int, bytes], released: Released) -> DecodedBatch:
    body = waiting.pop(released.seq)
    return decode_batch(body)  # it passed validation when it arrived


def _analyse(state: VehicleState, vehicle_id: str, batch: DecodedBatch, result: StepResult, *, now_ms: int) -> None:
    header = batch.header
    times = batch.sample_time_us
    if times.size == 0:
        return
    previous_end = state.last_end_us.get(int(header.kind))
    # A jump in time, or the device saying it lost data, restarted or stepped its clock: no filter state or open
    # event may be carried across.
    discontinuity = wire.Flags.GAP_BEFORE | wire.Flags.RESTARTED | wire.Flags.CLOCK_STEPPED
    gap = bool(header.flags & discontinuity) or (
        previous_end is not None and times[0] - previous_end > GAP_PERIODS * header.sample_period_us
    )
    state.last_end_us[int(header.kind)] = int(times[-1])
    state.flushed = False
    values = batch.values_si
    if header.kind is wire.Kind.BARO:
        output = state.analyzer.on_environment(times, values[:, 0], values[:, 1], gap_before=gap)
    else:
        gyro = values[:, 3:6] if header.kind is wire.Kind.IMU else np.zeros_like(values[:, :3])
        output = state.analyzer.on_imu(times, values[:, :3], gyro, gap_before=gap)
    changed = bool(output.events or output.environment_events or output.stops or output.trips)
    summaries = changed or int(times[-1]) - state.last_summary_us >= SUMMARY_EVERY_US
    if summaries:
        state.last_summary_us = int(times[-1])
    result.writes += analysis_writes(
        vehicle_id, output, now_ms=now_ms, summaries=summaries, pending=state.pending_minutes, now_us=int(times[-1])
    )
    result.count("events", len(output.events) + len(output.environment_events))


def analysis_writes(
    vehicle_id: str,
    output: AnalysisOutput,
    *,
    now_ms: int,
    summaries: bool = True,
    pending: dict[int, MinuteAggregate] | None = None,
    now_us: int | None = None,
) -> list[Write]:
    """Rows for events, stops and finished trips; the open trip, day scores and every touched minute if
    `summaries`, else only the minutes that ended by `now_us` (sample time), the others kept in `pending`."""
    writes: list[Write] = []
    pending = {} if pending is None else pending
    for minute in output.minutes:
        pending[minute.minute_start_us] = minute
    due = [start for start in pending if summaries or now_us is None or start + MINUTE_US <= now_us]
    writes += [rows.minute_write(vehicle_id, pending.pop(start), now_ms=now_ms) for start in sorted(due)]
    for event in [*output.events, *output.environment_events]:
        writes += rows.event_writes(vehicle_id, event, detected_at_ms=now_ms)
    for stop in output.stops:
        writes += rows.stop_writes(vehicle_id, stop, detected_at_ms=now_ms)
    open_trip = [output.open_trip] if output.open_trip and summaries else []
    writes += [rows.trip_write(vehicle_id, trip) for trip in [*output.trips, *open_trip]]
    if summaries:
        writes += [rows.score_write(vehicle_id, day, now_ms=now_ms) for day in output.days]
    return writes
