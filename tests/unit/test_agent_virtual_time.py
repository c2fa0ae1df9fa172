"""The whole edge agent (drivers on simulated chips, windowing, wire format, outbox) in virtual time."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest
from fleetsense.edge.agent import Agent
from fleetsense.edge.outbox import Entry, Outbox
from fleetsense.edge.restarts import BOOT_CLOCK_FILE, RunBook, load_offsets, save_offsets
from fleetsense.edge.runtime import open_sensors_for
from fleetsense.sim.bus import VirtualClock

from fleetsense import wire
from fleetsense.device_config import BrokerConfig, ClockConfig, EdgeConfig, OutboxConfig, StorageConfig
from fleetsense.load.virtual_drive import record_drive


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


# -- time: holding, re-timing and flags (issue 13) --------------------------------------------------------------

S = 10**9
TRUE_START_NS = 1_796_000_000 * S  # 2026-12: the true UTC of the first tick


@dataclass
class ScriptedClock:
    """The agent's clock in virtual time: true UTC = monotonic + true_minus_mono_ns; the wall clock is off by
    `error_ns` and reports `is_synced` until the test changes them."""

    virtual: VirtualClock
    true_minus_mono_ns: int
    error_ns: int = 0
    is_synced: bool | None = True

    def monotonic_ns(self) -> int:
        return self.virtual.now_ns()

    def wall_ns(self) -> int:
        return self.virtual.now_ns() + self.true_minus_mono_ns + self.error_ns

    def synced(self) -> bool | None:
        return self.is_synced

    def true_us(self, mono_ns: int) -> int:
        return (mono_ns + self.true_minus_mono_ns) // 1000

    def step_right(self) -> None:
        self.error_ns, self.is_synced = 0, True


def scripted_clock(error_s: float, *, synced: bool) -> ScriptedClock:
    virtual = VirtualClock(start_ns=7 * S)  # seven seconds into the boot
    return ScriptedClock(virtual, TRUE_START_NS - virtual.now_ns(), round(error_s * 1e9), synced)


class Drive:
    """One run of the agent on simulated chips in virtual time, over the vehicle's real outbox."""

    def __init__(self, tmp_path: Path, clock: ScriptedClock, *, boot_id: str = "boot-1", **clock_config: float) -> None:
        self.config = dataclasses.replace(config_for(tmp_path), clock=ClockConfig(**clock_config))
        self.clock = clock
        self.sensors = open_sensors_for(self.config, clock.virtual.now_ns, simulate=True, sleep_s=clock.virtual.sleep)
        self.outbox = Outbox(tmp_path / "outbox", max_bytes=1 << 30)
        self.runs = RunBook(tmp_path)
        offsets = load_offsets(tmp_path / BOOT_CLOCK_FILE)
        self.agent = Agent(
            self.config, self.sensors, self.outbox, clock, boot_id=boot_id, run=self.runs.record, boot_offsets=offsets
        )
        self.agent.on_time_change = lambda: save_offsets(tmp_path / BOOT_CLOCK_FILE, self.agent.time.offsets())
        self.agent.start()

    def drive(self, seconds: float) -> None:
        end_ns = self.clock.virtual.now_ns() + round(seconds * 1e9)
        while (wake := self.agent.tick(self.clock.virtual.now_ns())) <= end_ns:
            self.clock.virtual.advance(ns=wake - self.clock.virtual.now_ns())
        self.clock.virtual.advance(ns=end_ns - self.clock.virtual.now_ns())

    def publish(self) -> list[tuple[Entry, wire.Batch]]:
        """What the link would publish now (through the hold policy), acknowledged: everything stored so far, so
        the group commit is flushed first (the link sees a batch once its group is on disk)."""
        self.outbox.flush()
        sent = []
        for entry in self.outbox.pending(limit=100_000):
            data = self.agent.time.prepare(entry)
            if data is not None:
                sent.append((entry, wire.decode(data)))
                self.outbox.acknowledge(entry.id)
        return sent

    def stop(self, *, clean: bool) -> None:
        if clean:
            self.agent.flush()
        self.outbox.close()
        self.sensors.close()
        if clean:
            self.runs.clean_stop()


def kind_of(sent: list[tuple[Entry, wire.Batch]], kind: wire.Kind) -> list[tuple[Entry, wire.Batch]]:
    return [(e, b) for e, b in sent if b.kind == kind]


def assert_seamless_and_true(sent: list[tuple[Entry, wire.Batch]], clock: ScriptedClock) -> None:
    """Every batch at its true time: held ones exactly where their monotonic time lies, and each IMU batch starting
    where the previous ended (so the synchronised ones are right too)."""
    assert sent
    for entry, batch in sent:
        assert not batch.flags & wire.Flags.CLOCK_UNSYNCED
        if entry.mono_ns is not None:
            assert batch.start_time_us == clock.true_us(entry.mono_ns)
    imu = [b.start_time_us for _, b in kind_of(sent, wire.Kind.IMU)]
    assert all(later - earlier == 1_000_000 for earlier, later in itertools.pairwise(imu))
    assert abs(imu[0] - TRUE_START_NS // 1000) < 200_000  # the first sample within one drain of the start


@pytest.mark.parametrize(
    "error_s", [-TRUE_START_NS / 1e9 + 60, 3600.0, -2 * 86_400.0], ids=["1970", "1h-ahead", "2d-behind"]
)
def test_batches_taken_on_a_wrong_unsynced_clock_are_held_then_re_timed_when_it_syncs(
    tmp_path: Path, error_s: float
) -> None:
    clock = scripted_clock(error_s, synced=False)
    run = Drive(tmp_path, clock)
    run.drive(20)
    assert run.publish() == []  # nothing leaves the device with a wrong time
    status = run.agent.status("heartbeat", [])
    assert status.held_unsynced == run.outbox.stats().depth >= 38 and status.clock_synced is False
    clock.step_right()
    run.drive(10)
    sent = run.publish()
    held_after_sync = run.agent.status("heartbeat", []).held_unsynced
    run.stop(clean=True)
    assert_seamless_and_true(sent, clock)
    assert sum(e.mono_ns is not None for e, _ in sent) >= 38  # the held ones were re-timed, none lost
    assert sorted(b.seq for _, b in sent) == list(range(len(sent)))
    restarted = [b.seq for _, b in sent if b.flags & wire.Flags.RESTARTED]
    assert restarted == sorted(min(b.seq for _, b in kind_of(sent, k)) for k in (wire.Kind.IMU, wire.Kind.BARO))
    assert not any(b.flags & wire.Flags.CLOCK_STEPPED for _, b in sent)  # re-timed: no jump to announce
    assert held_after_sync == 0


def test_a_synchronised_clock_that_steps_flags_the_next_batch_of_each_kind_once(tmp_path: Path) -> None:
    clock = scripted_clock(0, synced=True)
    run = Drive(tmp_path, clock)
    run.drive(5)
    before = run.publish()
    clock.error_ns = 1_500_000_000  # NTP steps a synchronised clock 1.5 s (a bad source corrected, say)
    run.drive(5)
    after = run.publish()
    run.stop(clean=True)
    assert not any(b.flags & (wire.Flags.CLOCK_STEPPED | wire.Flags.CLOCK_UNSYNCED) for _, b in before)
    for kind in (wire.Kind.IMU, wire.Kind.BARO):
        stepped = [b.flags & wire.Flags.CLOCK_STEPPED for _, b in kind_of(after, kind)]
        assert stepped[0] and not any(stepped[1:])
    last_before, first_after = kind_of(before, wire.Kind.IMU)[-1][1], kind_of(after, wire.Kind.IMU)[0][1]
    assert first_after.start_time_us - last_before.start_time_us == 1_000_000 + 1_500_000  # the jump it announces


def test_after_hold_unsynced_s_without_sync_batches_go_flagged_as_they_are(tmp_path: Path) -> None:
    clock = scripted_clock(-2 * 86_400, synced=False)
    run = Drive(tmp_path, clock, hold_unsynced_s=30)
    run.drive(20)
    assert run.publish() == []
    run.drive(15)  # 42 s into the boot: past the hold
    sent = run.publish()
    run.stop(clean=True)
    assert len(sent) >= 60 and all(b.flags & wire.Flags.CLOCK_UNSYNCED for _, b in sent)
    assert all(b.start_time_us == clock.true_us(e.mono_ns or 0) - 2 * 86_400_000_000 for e, b in sent)


@pytest.mark.parametrize("clean", [True, False], ids=["clean-stop", "crash"])
def test_a_restart_is_counted_and_the_time_it_lost_measured(tmp_path: Path, clean: bool) -> None:
    clock = scripted_clock(0, synced=True)
    first = Drive(tmp_path, clock)
    first.drive(10.05)
    first.stop(clean=clean)
    clock.virtual.advance(2.0)  # the agent is down for 2 s
    second = Drive(tmp_path, clock)
    second.drive(3)
    status = second.agent.status("connected", [])
    sent = second.publish()
    second.stop(clean=True)
    assert (status.restarts, status.unclean_restarts) == (1, 0 if clean else 1)
    # A crash also loses the window in memory (up to a second); a clean stop stored it.
    assert status.last_restart_lost_ms is not None
    assert 2000 <= status.last_restart_lost_ms <= (2150 if clean else 3150)
    restarted = [b for _, b in sent if b.flags & wire.Flags.RESTARTED]
    assert len(restarted) == 4  # the first batch of each kind of each run


def test_the_time_lost_across_a_restart_is_known_once_the_boot_syncs(tmp_path: Path) -> None:
    clock = scripted_clock(3600, synced=False)
    first = Drive(tmp_path, clock)
    first.drive(5.05)
    first.stop(clean=False)
    clock.virtual.advance(1.0)
    second = Drive(tmp_path, clock)
    second.drive(3)
    assert second.agent.status("heartbeat", []).last_restart_lost_ms is None  # not on true time yet
    clock.step_right()
    second.drive(1)
    lost = second.agent.status("heartbeat", []).last_restart_lost_ms
    assert lost is not None and 1000 <= lost <= 2150
    sent = second.publish()
    second.stop(clean=True)
    # Both runs' batches were taken in this boot: all re-timed by its mapping, the crashed run's too.
    held = [(e, b) for e, b in sent if e.mono_ns is not None]
    assert len(held) >= 14 and {e.seq for e, _ in held} == set(range(len(held)))
    assert all(b.start_time_us == clock.true_us(e.mono_ns or 0) for e, b in held)
    assert not any(b.flags & wire.Flags.CLOCK_UNSYNCED for _, b in sent)


def test_batches_of_an_earlier_boot_that_never_synced_go_as_they_are(tmp_path: Path) -> None:
    clock = scripted_clock(-86_400, synced=False)
    first = Drive(tmp_path, clock, boot_id="boot-1")
    first.drive(5)
    first.stop(clean=False)  # a power cut
    rebooted = scripted_clock(-3 * 86_400, synced=False)  # monotonic time starts again
    second = Drive(tmp_path, rebooted, boot_id="boot-2")
    second.drive(2)
    sent = second.publish()
    second.stop(clean=True)
    assert sent and {e.boot_id for e, _ in sent} == {"boot-1"}  # boot-2's are held, boot-1's cannot improve
    assert all(b.flags & wire.Flags.CLOCK_UNSYNCED for _, b in sent)
    assert all(b.start_time_us == clock.true_us(e.mono_ns or 0) - 86_400_000_000 for e, b in sent)
