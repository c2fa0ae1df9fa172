"""Thousands of random clock histories through the real agent and its hold policy, in virtual time: wrong clocks,
steps, sync gained and lost, "unknown" sync state, agent restarts (clean and crashed), reboots with a new boot id,
the link coming and going. Whatever happens, every batch is published exactly once, at its true time whenever its
boot's clock was synchronised while the agent ran (before the hold expired), and flagged as the spec says."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from fleetsense.edge.agent import Agent
from fleetsense.edge.outbox import Entry, OutboxStats
from fleetsense.edge.restarts import RunRecord, begin_run
from fleetsense.edge.retime import BootOffset
from fleetsense.edge.sources import EnvironmentSample, SampleBlock, Sensors, SourceStatus

from fleetsense import wire
from fleetsense.device_config import BrokerConfig, ClockConfig, EdgeConfig, SamplingConfig, StorageConfig

S = 10**9
CASES = 2000
TRUE_EPOCH_NS = 1_796_000_000 * S  # 2026-12
IMU_PERIOD_NS = 100_000_000  # 10 Hz and 1 Hz: small batches keep thousands of histories fast
TOLERANCE_US = 2_000


class FakeImu:
    scales = (0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001)
    period_ns = IMU_PERIOD_NS

    def __init__(self) -> None:
        self.status = SourceStatus()
        self._next_ns = 0

    def start(self, now_ns: int) -> None:
        self._next_ns = now_ns

    def drain(self, now_ns: int) -> list[SampleBlock]:
        count = (now_ns - self._next_ns) // self.period_ns + 1 if now_ns >= self._next_ns else 0
        if count <= 0:
            return []
        block = SampleBlock(
            first_time_ns=self._next_ns, period_ns=self.period_ns, counts=((0, 0, 981, 0, 0, 0),) * count
        )
        self._next_ns += count * self.period_ns
        return [block]

    def close(self) -> None:
        pass


class FakeBarometer:
    def __init__(self) -> None:
        self.status = SourceStatus()

    def start(self, now_ns: int) -> None:
        pass

    def read(self, now_ns: int) -> EnvironmentSample:
        return EnvironmentSample(time_ns=now_ns, pressure_pa=101_325.0, temperature_c=20.0)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Taken:
    run: int
    kind: wire.Kind
    true_start_us: int


class MemoryOutbox:
    """Contract A's outbox, in memory; remembers when each batch was really taken."""

    epoch = 7

    def __init__(self, world: World) -> None:
        self.world = world
        self.rows: dict[int, Entry] = {}
        self.taken: dict[int, Taken] = {}
        self.next_seq = 0
        self.last: Entry | None = None

    def append(self, topic: str, make_payload: object, *, boot_id: str = "", mono_ns: int | None = None) -> Entry:
        assert callable(make_payload)
        seq = self.next_seq
        self.next_seq += 1
        entry = Entry(seq + 1, seq, topic, make_payload(seq), boot_id, mono_ns)
        self.rows[entry.id] = entry
        self.last = entry
        header = wire.decode_header(entry.payload)
        agent = self.world.agent
        assert agent is not None
        # The first sample's monotonic time: kept when unsynchronised, else the inverse of the agent's own mapping.
        first_mono = mono_ns if mono_ns is not None else header.start_time_us * 1000 - agent.anchor.utc_minus_mono_ns
        true_us = (first_mono + self.world.boot_true_start_ns) // 1000
        self.taken[entry.id] = Taken(self.world.run, header.kind, true_us)
        return entry

    def stats(self) -> OutboxStats:
        return OutboxStats(depth=len(self.rows), next_seq=self.next_seq)

    def last_appended(self) -> Entry | None:
        return self.last


@dataclass
class World:
    """True time, the boot, the wall clock's error and what it reports; the running agent and the link."""

    rng: random.Random
    hold_s: int
    true_ns: int = TRUE_EPOCH_NS
    boot: int = 0
    boot_true_start_ns: int = TRUE_EPOCH_NS - 5 * S
    error_ns: int = 0
    is_synced: bool | None = False
    online: bool = True
    run: int = 0
    agent: Agent | None = None
    record: RunRecord | None = None
    disk_offsets: dict[str, BootOffset] = field(default_factory=dict)  # boot-clock.json
    synced_boots: set[str] = field(default_factory=set)  # boots whose sync a running agent saw
    unknown_boots: set[str] = field(default_factory=set)  # boots that had an "unknown" sync state
    history: list[str] = field(default_factory=list)
    published: dict[int, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.outbox = MemoryOutbox(self)
        self.error_ns = self.wrong_error_ns()

    @property
    def boot_id(self) -> str:
        return f"boot-{self.boot}"

    # The agent's Clock.
    def monotonic_ns(self) -> int:
        return self.true_ns - self.boot_true_start_ns

    def wall_ns(self) -> int:
        return self.true_ns + self.error_ns

    def synced(self) -> bool | None:
        return self.is_synced

    def wrong_error_ns(self) -> int:
        return self.rng.choice(
            [
                -self.true_ns + self.rng.randrange(0, 10**6) * S,  # 1970 (no RTC)
                3600 * S,  # an hour ahead (a time zone taken for UTC)
                -2 * 86_400 * S,  # the last saved time (fake-hwclock)
                self.rng.randrange(-10 * 86_400, 10 * 86_400) * S + self.rng.randrange(S),
                0,  # right, but nobody says so yet
            ]
        )

    # -- the agent's life --------------------------------------------------------------------------------------

    def start_agent(self) -> None:
        self.run += 1
        self.record = begin_run(self.record)
        config = EdgeConfig(
            vehicle_id="van-7",
            broker=BrokerConfig(host="127.0.0.1", username="van-7", password="unused"),
            storage=StorageConfig(state_dir="/nonexistent"),
            sampling=SamplingConfig(imu_rate_hz=10, baro_rate_hz=1, batch_window_s=1.0, drain_interval_ms=500),
            clock=ClockConfig(hold_unsynced_s=self.hold_s),
        )
        sensors = Sensors(FakeImu(), FakeBarometer())
        self.agent = agent = Agent(
            config, sensors, self.outbox, self, boot_id=self.boot_id, run=self.record, boot_offsets=self.disk_offsets
        )
        agent.on_time_change = lambda: self.disk_offsets.update(agent.time.offsets())
        agent.start()

    def stop_agent(self, *, clean: bool) -> None:
        assert self.agent is not None and self.record is not None
        if clean:
            self.agent.flush()
            self.record = RunRecord(self.record.starts, self.record.unclean_starts, running=False)
        self.agent = None

    def advance(self, seconds: float) -> None:
        end_ns = self.true_ns + round(seconds * 1e9)
        next_link_ns = self.true_ns
        while self.agent is not None:
            wake_mono = self.agent.tick(self.monotonic_ns())
            if self.is_synced is True:
                self.synced_boots.add(self.boot_id)
            if self.is_synced is None:
                self.unknown_boots.add(self.boot_id)
            if self.online and self.true_ns >= next_link_ns:
                self.link_pass()
                next_link_ns = self.true_ns + 2 * S
            wake_true = wake_mono + self.boot_true_start_ns
            if wake_true > end_ns:
                break
            self.true_ns = wake_true
        self.true_ns = end_ns

    def link_pass(self) -> None:
        """The link: every stored batch through the agent's prepare, oldest first; held ones stay."""
        agent = self.agent
        assert agent is not None
        for entry in sorted(self.outbox.rows.values(), key=lambda e: e.id):
            data = agent.time.prepare(entry)
            if data is None:
                assert entry.boot_id == self.boot_id and entry.mono_ns is not None, self.history
                assert entry.boot_id not in self.synced_boots, self.history
                continue
            self.check_published(entry, data)
            del self.outbox.rows[entry.id]
        assert agent.time.held == len(self.outbox.rows), self.history  # held_unsynced counts exactly these

    def check_published(self, entry: Entry, data: bytes) -> None:
        assert entry.seq not in self.published, self.history
        self.published[entry.seq] = data
        header = wire.decode_header(data)
        taken = self.outbox.taken[entry.id]
        unsynced = bool(header.flags & wire.Flags.CLOCK_UNSYNCED)
        if entry.mono_ns is None or entry.boot_id in self.synced_boots:
            # Taken on a synchronised clock, or its boot's clock was known good before it left: it must be at its
            # true time, and say so.
            assert abs(header.start_time_us - taken.true_start_us) <= TOLERANCE_US, (entry, self.history)
            assert not unsynced, self.history
        else:
            # Sent without a synchronised mapping: an earlier boot that never synced, or the hold expired.
            assert unsynced, self.history
            assert (
                entry.boot_id != self.boot_id
                or self.monotonic_ns() >= self.hold_s * S
                or entry.boot_id in self.unknown_boots
            ), self.history
            if entry.boot_id not in self.unknown_boots:
                assert header.start_time_us == wire.decode_header(entry.payload).start_time_us, self.history
        assert not header.flags & (wire.Flags.GAP_BEFORE | wire.Flags.CLOCK_STEPPED), self.history

    # -- what can happen -----------------------------------------------------------------------------------------

    def step(self) -> None:
        event = self.rng.choice(
            [
                "drive",
                "drive",
                "drive",
                "sync",
                "lose sync",
                "wrong step",
                "unknown",
                "restart",
                "crash",
                "reboot",
                "link",
            ]
        )
        self.history.append(f"{event} at boot {self.boot} mono {self.monotonic_ns() / S:.1f}s")
        if event == "drive":
            self.advance(self.rng.uniform(0.5, 15))
        elif event == "sync":
            self.error_ns, self.is_synced = 0, True
        elif event == "lose sync":
            self.is_synced = False
        elif event == "wrong step" and self.is_synced is not True:
            self.error_ns = self.wrong_error_ns()
        elif event == "unknown" and self.is_synced is not True:
            self.is_synced = None
        elif event in ("restart", "crash"):
            self.stop_agent(clean=event == "restart")
            self.true_ns += self.rng.randrange(0, 5 * S)
            self.start_agent()
        elif event == "reboot":
            self.stop_agent(clean=False)
            self.true_ns += self.rng.randrange(S, 60 * S)
            self.boot += 1
            self.boot_true_start_ns = self.true_ns - self.rng.randrange(3 * S, 30 * S)
            self.error_ns, self.is_synced = self.wrong_error_ns(), False
            self.start_agent()
        elif event == "link":
            self.online = not self.online


def check_history(seed: int) -> None:
    rng = random.Random(seed)
    world = World(rng, hold_s=rng.choice([20, 60, 600]))
    world.start_agent()
    for _ in range(rng.randrange(3, 12)):
        world.step()
    # In the end the clock syncs and the link comes back: everything stored leaves, once.
    world.history.append("final sync")
    world.error_ns, world.is_synced, world.online = 0, True, True
    world.advance(5)
    world.link_pass()
    assert world.outbox.rows == {}, world.history
    assert sorted(world.published) == list(range(world.outbox.next_seq)), world.history
    # RESTARTED exactly on the first batch of each kind of each run of the agent.
    firsts: dict[tuple[int, wire.Kind], int] = {}
    for entry_id in sorted(world.outbox.taken):
        taken = world.outbox.taken[entry_id]
        firsts.setdefault((taken.run, taken.kind), entry_id - 1)
    restarted = {seq for seq, data in world.published.items() if wire.decode_header(data).flags & wire.Flags.RESTARTED}
    assert restarted == set(firsts.values()), world.history


def test_random_clock_histories_never_lose_a_batch_and_time_every_one_they_can() -> None:
    for seed in range(CASES):
        try:
            check_history(seed)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}: {exc}") from exc
