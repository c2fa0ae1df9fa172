"""The agent's time logic alone: the clock's sync state under a sandbox, the hold/re-time rule, restart bookkeeping."""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from fleetsense.edge.clock import (
    EARLIEST_PLAUSIBLE_UTC_NS,
    TIME_ERROR,
    SystemClock,
    adjtimex_reader,
    chrony_says,
    kernel_says,
    read_boot_id,
    sync_state,
    timesyncd_says,
)
from fleetsense.edge.outbox import Entry
from fleetsense.edge.restarts import (
    BOOTS_KEPT,
    RunBook,
    RunRecord,
    begin_run,
    load_offsets,
    load_run,
    lost_ms,
    save_offsets,
)
from fleetsense.edge.retime import Action, BootOffset, HoldPolicy, batch_time, decide, retime_payload

from fleetsense import wire

NOW_NS = 1_796_000_000 * 10**9  # 2026-12
S = 10**9
# `chronyc -n -c tracking` as chrony 4.3 prints it, synchronised and not.
CHRONY_SYNCED = (
    "C0A80001,192.168.0.1,3,1796000000.1,0.000012,0.000003,0.000020,-3.2,0.001,0.02,0.01,0.002,64.5,Normal\n"
)
CHRONY_UNSYNCED = "00000000,,0,0.000000000,0.0,0.0,0.0,0.0,0.0,0.0,1.0,1.0,0.0,Not synchronised\n"


# -- sync state --------------------------------------------------------------------------------------------------


def test_the_kernel_answer_is_unknown_when_a_sandbox_forbids_asking() -> None:
    assert kernel_says(0) is True  # TIME_OK
    assert kernel_says(1) is True  # TIME_INS: a leap second pending, still synchronised
    assert kernel_says(TIME_ERROR) is False
    assert kernel_says(OSError(errno.EPERM, "Operation not permitted")) is None  # ProtectClock=yes


def test_timesyncd_and_chrony_answers() -> None:
    assert timesyncd_says(running=True, flag_present=True) is True
    assert timesyncd_says(running=True, flag_present=False) is False  # running, not synchronised yet
    assert timesyncd_says(running=False, flag_present=False) is None  # not this machine's time daemon
    assert chrony_says(CHRONY_SYNCED) is True
    assert chrony_says(CHRONY_UNSYNCED) is False
    assert chrony_says(None) is None and chrony_says("506 Cannot talk to daemon") is None


def test_the_first_source_that_knows_decides_and_a_clock_before_this_release_is_never_synced() -> None:
    assert sync_state([None, False, True], wall_ns=NOW_NS) is False
    assert sync_state([None, None], wall_ns=NOW_NS) is None
    assert sync_state([True], wall_ns=EARLIEST_PLAUSIBLE_UTC_NS - 1) is False
    assert sync_state([None], wall_ns=60 * S) is False  # 1970: certainly wrong, even when no source can tell


def clock_with(
    tmp_path: Path, adjtimex: int | OSError, *, chrony: str | None = None, flag: bool | None = None
) -> SystemClock:
    timesyncd = tmp_path / "timesync"
    if flag is not None:
        timesyncd.mkdir()
        if flag:
            (timesyncd / "synchronized").touch()
    return SystemClock(
        adjtimex=lambda: adjtimex, timesyncd_dir=timesyncd, chronyc=lambda: chrony, wall_ns=lambda: NOW_NS
    )


def test_under_protect_clock_the_state_comes_from_timesyncd_then_chrony(tmp_path: Path) -> None:
    denied = OSError(errno.EPERM, "Operation not permitted")
    assert clock_with(tmp_path / "a", 0).synced() is True
    assert clock_with(tmp_path / "b", TIME_ERROR).synced() is False
    (tmp_path / "c").mkdir()
    timesyncd = clock_with(tmp_path / "c", denied, flag=True)
    assert (timesyncd.synced(), timesyncd.source) == (True, "systemd-timesyncd")
    (tmp_path / "d").mkdir()
    assert clock_with(tmp_path / "d", denied, flag=False).synced() is False
    chrony = clock_with(tmp_path / "e", denied, chrony=CHRONY_SYNCED)
    assert (chrony.synced(), chrony.source) == (True, "chrony")


def test_a_clock_no_source_can_tell_about_is_unknown_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[int] = []

    def adjtimex() -> OSError:
        asked.append(1)
        return OSError(errno.EPERM, "Operation not permitted")

    clock = SystemClock(
        adjtimex=adjtimex, timesyncd_dir=tmp_path / "none", chronyc=lambda: None, wall_ns=lambda: NOW_NS
    )
    with caplog.at_level(logging.INFO):
        assert [clock.synced() for _ in range(50)] == [None] * 50
    warnings = [r for r in caplog.records if "UNKNOWN" in r.getMessage()]
    assert len(warnings) == 1 and "adjtimex(2) is not allowed" in warnings[0].getMessage()
    assert len(asked) == 1  # denied once: not asked again ten times a second


def test_chronyc_is_asked_at_most_once_a_minute(tmp_path: Path) -> None:
    calls: list[int] = []
    mono = [0]

    def chronyc() -> str:
        calls.append(1)
        return CHRONY_UNSYNCED if len(calls) == 1 else CHRONY_SYNCED

    clock = SystemClock(
        adjtimex=lambda: OSError(errno.EPERM, "denied"),
        timesyncd_dir=tmp_path / "none",
        chronyc=chronyc,
        monotonic_ns=lambda: mono[0],
        wall_ns=lambda: NOW_NS,
    )
    assert clock.synced() is False
    mono[0] = 59 * S
    assert clock.synced() is False and len(calls) == 1
    mono[0] = 60 * S
    assert clock.synced() is True and len(calls) == 2


def test_the_boot_id_is_read_from_the_kernel_or_made_up_for_this_run(tmp_path: Path) -> None:
    path = tmp_path / "boot_id"
    path.write_text("3f1c2b8e-0000-4000-8000-000000000001\n")
    assert read_boot_id(path) == "3f1c2b8e-0000-4000-8000-000000000001"
    made_up = read_boot_id(tmp_path / "missing")
    assert made_up.startswith("run-") and made_up != read_boot_id(tmp_path / "missing")


# -- holding and re-timing ---------------------------------------------------------------------------------------

OFFSET = BootOffset(NOW_NS - 100 * S, verified=True)


@pytest.mark.parametrize(
    ("boot", "mono", "offsets", "expired", "action"),
    [
        ("b2", None, {}, False, Action.SEND),  # taken on a synchronised clock
        ("b2", 5 * S, {}, False, Action.HOLD),  # this boot, not synchronised yet
        ("b2", 5 * S, {}, True, Action.SEND),  # ... and this boot waited long enough
        ("b2", 5 * S, {"b2": OFFSET}, False, Action.RETIME),
        ("b1", 5 * S, {}, False, Action.SEND),  # an earlier boot that never synchronised: cannot be re-timed
        ("b1", 5 * S, {"b1": OFFSET}, False, Action.RETIME),  # an earlier boot that did (kept in boot-clock.json)
        ("", 5 * S, {}, False, Action.SEND),  # no boot id: never compared across boots
    ],
)
def test_decide(boot: str, mono: int | None, offsets: dict[str, BootOffset], expired: bool, action: Action) -> None:
    assert decide(boot, mono, offsets=offsets, boot_id="b2", hold_expired=expired) is action


def imu_payload(start_us: int, flags: wire.Flags = wire.Flags.CLOCK_UNSYNCED) -> bytes:
    batch = wire.Batch(
        vehicle_id="van-1",
        seq=3,
        start_time_us=start_us,
        sample_period_us=10_000,
        kind=wire.Kind.IMU,
        scales=(0.001,) * 6,
        samples=((0, 0, 1000, 0, 0, 0),) * 100,
        flags=flags,
        epoch=9,
    )
    return wire.encode(batch)


def test_a_re_timed_batch_starts_at_its_boots_synchronised_mapping_and_loses_the_unsynced_flag() -> None:
    payload = imu_payload(60_000_000, wire.Flags.CLOCK_UNSYNCED | wire.Flags.RESTARTED)  # taken "at 1970"
    again = wire.decode(retime_payload(payload, 7 * S, OFFSET))
    assert again.start_time_us == (NOW_NS - 93 * S) // 1000
    assert again.flags == wire.Flags.RESTARTED
    assert again.samples == wire.decode(payload).samples
    unverified = wire.decode(retime_payload(payload, 7 * S, BootOffset(OFFSET.utc_minus_mono_ns, verified=False)))
    assert unverified.flags == wire.Flags.CLOCK_UNSYNCED | wire.Flags.RESTARTED


def entry(entry_id: int, mono_ns: int | None, boot_id: str = "b2", start_us: int = 60_000_000) -> Entry:
    return Entry(entry_id, entry_id, "fleet/van-1/telemetry", imu_payload(start_us), boot_id, mono_ns)


def test_the_policy_holds_until_the_boot_is_synchronised_then_releases_re_timed() -> None:
    policy = HoldPolicy("b2", hold_until_mono_ns=3600 * S)
    assert not policy.observe(None, 10 * S)
    assert [policy.prepare(entry(i, i * S)) for i in (1, 2)] == [None, None]
    assert policy.held == 2
    assert policy.prepare(entry(3, 1 * S, boot_id="b1")) == entry(3, 1 * S, "b1").payload  # earlier boot: as is
    assert policy.observe(OFFSET, 20 * S)  # sync: the link looks again
    assert policy.held == 0
    again = policy.prepare(entry(1, 1 * S))
    assert again is not None and wire.decode_header(again).start_time_us == (NOW_NS - 99 * S) // 1000
    assert not policy.observe(OFFSET, 21 * S)  # nothing new
    assert policy.observe(None, 22 * S) is False  # lost sync again: the mapping of this boot stands
    assert policy.prepare(entry(4, 21 * S)) is not None


def test_after_hold_unsynced_s_of_a_boot_without_sync_batches_go_as_they_are() -> None:
    policy = HoldPolicy("b2", hold_until_mono_ns=60 * S)
    assert policy.prepare(entry(1, 5 * S)) is None
    assert not policy.observe(None, 59 * S)
    assert policy.observe(None, 60 * S)
    assert policy.prepare(entry(1, 5 * S)) == entry(1, 5 * S).payload and policy.held == 0
    # A sync later in the boot still re-times what is left.
    assert policy.observe(OFFSET, 70 * S)
    sent = policy.prepare(entry(2, 65 * S))
    assert sent is not None and wire.decode_header(sent).start_time_us == (NOW_NS - 35 * S) // 1000


def test_an_unverified_mapping_never_replaces_a_verified_one() -> None:
    policy = HoldPolicy("b2", hold_until_mono_ns=3600 * S)
    policy.observe(BootOffset(5 * S, verified=False), 1 * S)
    assert policy.observe(OFFSET, 2 * S)
    assert not policy.observe(BootOffset(7 * S, verified=False), 3 * S)
    assert policy.offsets() == {"b2": OFFSET}


# -- restarts ----------------------------------------------------------------------------------------------------


def test_starts_and_unclean_starts_are_counted() -> None:
    first = begin_run(None)
    assert (first.restarts, first.unclean_starts) == (0, 0)
    after_crash = begin_run(first)  # `running` still set: no clean stop recorded
    assert (after_crash.restarts, after_crash.unclean_starts) == (1, 1)
    after_clean = begin_run(RunRecord(after_crash.starts, after_crash.unclean_starts, running=False))
    assert (after_clean.restarts, after_clean.unclean_starts) == (2, 1)


def test_the_run_book_writes_at_start_and_at_a_clean_stop(tmp_path: Path) -> None:
    book = RunBook(tmp_path)
    assert load_run(tmp_path / "run.json") == RunRecord(1, 0, running=True)
    book.clean_stop()
    assert load_run(tmp_path / "run.json") == RunRecord(1, 0, running=False)
    RunBook(tmp_path)  # ... and then crashes
    crashed = RunBook(tmp_path)
    assert (crashed.record.restarts, crashed.record.unclean_starts, crashed.last_stop_clean) == (2, 1, False)
    (tmp_path / "run.json").write_text("{not json")
    assert RunBook(tmp_path).record == RunRecord(1, 0, running=True)  # unreadable: counted again, not a crash
    assert not list(tmp_path.glob("*.tmp"))


def test_boot_offsets_survive_a_restart_and_only_recent_boots_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "boot-clock.json"
    offsets = {f"boot-{i}": BootOffset(i * S, verified=i % 2 == 0) for i in range(BOOTS_KEPT + 3)}
    save_offsets(path, offsets)
    kept = load_offsets(path)
    assert list(kept) == list(offsets)[-BOOTS_KEPT:] and kept["boot-10"] == BootOffset(10 * S, verified=True)
    path.write_text(json.dumps({"x": {"utc_minus_mono_ns": "?"}}))
    assert load_offsets(path) == {}


def test_time_lost_across_a_restart() -> None:
    assert lost_ms(1_000_000, 1_850_000) == 850
    assert lost_ms(None, 1_850_000) is None and lost_ms(1_000_000, None) is None
    synced = batch_time(imu_payload(5_000_000, wire.Flags.NONE), "b1", None)
    assert synced is not None and (synced.start_us, synced.span_us) == (5_000_000, 1_000_000)
    unsynced = batch_time(imu_payload(5_000_000), "b1", 3 * S)
    assert unsynced is not None and unsynced.start_us is None and unsynced.mono_ns == 3 * S
    assert batch_time(b"garbage", "b1", None) is None


# The filter systemd installs for ProtectClock=yes (its @clock set, answered with EPERM), loaded with libseccomp
# in a child process; glibc's adjtimex() is the clock_adjtime system call on current kernels, so both are in it.
PROTECT_CLOCK = """
import ctypes, errno, sys
from pathlib import Path
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ctx = lib.seccomp_init(0x7FFF0000)  # SCMP_ACT_ALLOW
for name in (b"adjtimex", b"clock_adjtime", b"clock_settime", b"settimeofday"):
    assert lib.seccomp_rule_add(ctx, 0x00050000 | errno.EPERM, lib.seccomp_syscall_resolve_name(name), 0) == 0
assert lib.seccomp_load(ctx) == 0
from fleetsense.edge.clock import SystemClock
clock = SystemClock(timesyncd_dir=Path(sys.argv[1]), chronyc=lambda: None)
print(clock.synced(), clock.source)
"""


def test_under_systemds_protect_clock_filter_the_state_is_unknown_or_from_timesyncd(tmp_path: Path) -> None:
    def under_filter(timesyncd_dir: Path) -> tuple[str, str]:
        done = subprocess.run(
            [sys.executable, "-c", PROTECT_CLOCK, str(timesyncd_dir)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip(), done.stderr

    assert kernel_says(adjtimex_reader()()) is not None  # outside the filter the kernel answers
    unknown, log_text = under_filter(tmp_path / "no-timesyncd")
    assert unknown == "None none" and "EPERM" in log_text and "UNKNOWN" in log_text
    (tmp_path / "timesync").mkdir()
    (tmp_path / "timesync" / "synchronized").touch()
    assert under_filter(tmp_path / "timesync")[0] == "True systemd-timesyncd"
