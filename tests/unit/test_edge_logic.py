"""Pure edge logic: windowing, backoff, clock anchoring, status messages, sd_notify."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from fleetsense.edge.backoff import Backoff, TokenBucket
from fleetsense.edge.clock import UtcAnchor
from fleetsense.edge.systemd import Notifier
from fleetsense.edge.windowing import Windower

from fleetsense.status import SensorReport, VehicleStatus, parse_status

MS = 1_000_000


def test_windows_are_cut_by_sample_count_across_drains() -> None:
    w: Windower[int] = Windower(samples_per_window=4, period_ns=10 * MS)
    assert w.add(0, [0, 1, 2]) == []
    done = w.add(30 * MS, [3, 4, 5, 6, 7, 8])
    assert [x.samples for x in done] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert [x.first_time_ns for x in done] == [0, 40 * MS]
    assert not any(x.gap_before for x in done)
    assert [x.samples for x in w.flush()] == [(8,)]


def test_a_discontinuity_closes_the_window_and_flags_the_next() -> None:
    w: Windower[int] = Windower(samples_per_window=4, period_ns=10 * MS)
    w.add(0, [0, 1])
    done = w.add(500 * MS, [50, 51, 52, 53])  # 48 samples missing (a FIFO overflow)
    assert [(x.samples, x.gap_before, x.first_time_ns) for x in done] == [
        ((0, 1), False, 0),
        ((50, 51, 52, 53), True, 500 * MS),
    ]


def test_backoff_grows_with_full_jitter_and_is_capped() -> None:
    b = Backoff(base_s=1, cap_s=8, rng=random.Random(1))
    ceilings = [1, 2, 4, 8, 8, 8]
    delays = [b.next_delay_s() for _ in ceilings]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, so a fleet does not reconnect in lockstep
    b.reset()
    assert b.next_delay_s() <= 1


def test_token_bucket_limits_the_replay_rate() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=2)
    sent = sum(bucket.take(t / 100) for t in range(100))  # one second, tried every 10 ms
    assert 10 <= sent <= 12


@dataclass
class FakeClock:
    mono: int = 0
    wall: int = 1_000_000 * 10**9
    is_synced: bool = False

    def monotonic_ns(self) -> int:
        return self.mono

    def wall_ns(self) -> int:
        return self.wall

    def synced(self) -> bool:
        return self.is_synced


def test_anchor_follows_an_ntp_step_and_the_sync_state() -> None:
    clock = FakeClock()
    anchor = UtcAnchor.take(clock)
    clock.mono += 5 * 10**9
    clock.wall += 5 * 10**9
    assert anchor.refreshed(clock) is anchor
    assert anchor.utc_ns(clock.mono) == clock.wall
    clock.wall += 3600 * 10**9  # NTP sets the clock an hour forward
    clock.is_synced = True
    new = anchor.refreshed(clock)
    assert new.synced and new.utc_ns(clock.mono) == clock.wall


def test_status_round_trip() -> None:
    status = VehicleStatus(
        vehicle_id="van-1",
        online=True,
        reason="heartbeat",
        sensors={"imu": SensorReport(health="ok", fifo_overflows=2)},
        dropped_ranges=[(3, 9)],
        outbox_depth=4,
    )
    assert parse_status(status.to_json()) == status
    with pytest.raises(ValueError, match="version"):
        parse_status(b'{"vehicle_id": "x"}')


def test_notifier_speaks_sd_notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "30000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        notifier = Notifier(str(path))
        notifier.ready("sampling")
        notifier.watchdog()
        assert server.recv(100) == b"READY=1\nSTATUS=sampling"
        assert server.recv(100) == b"WATCHDOG=1"
        assert notifier.watchdog_interval_s() == 15.0
    assert not Notifier("").enabled
