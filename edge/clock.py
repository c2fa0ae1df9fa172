"""Time on a device without a real-time clock: samples are timed on the monotonic clock, and mapped to UTC
through an anchor that is re-taken when the wall clock is stepped (NTP sync after boot) or its sync state changes.

Whether the wall clock is synchronised comes from the kernel (adjtimex(2)); where a sandbox forbids even reading
it (systemd's ProtectClock=yes: EPERM), from systemd-timesyncd's flag file, then from chrony. A clock whose state
no source can tell is "unknown" (None), never "unsynchronised for ever" (docs/edge-agent.md, "Time").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

TIME_ERROR = 5  # adjtimex(2): the kernel's clock is not synchronised
RE_ANCHOR_AFTER_NS = 20_000_000  # 20 ms of disagreement between the anchor and the wall clock: a step
# adjtimex failing with these means "not allowed to ask here" (a sandbox, a seccomp filter), not "unsynchronised".
ADJTIMEX_DENIED = frozenset({errno.EPERM, errno.EACCES, errno.ENOSYS})
# systemd-timesyncd creates this after each successful sync; /run is empty at boot, so it is this boot's.
TIMESYNCD_DIR = Path("/run/systemd/timesync")
CHRONY_ASK_EVERY_NS = 60_000_000_000  # `chronyc` is a process spawn: at most once a minute
CHRONY_TIMEOUT_S = 2.0
# Nothing this agent stores can be older than its own release: a wall clock before this is certainly wrong
# (a Pi without an RTC boots at 1970 or at its last saved time), whatever the sync sources say or fail to say.
EARLIEST_PLAUSIBLE_UTC_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


class Clock(Protocol):
    def monotonic_ns(self) -> int: ...

    def wall_ns(self) -> int: ...

    def synced(self) -> bool | None:
        """True: the wall clock is synchronised; False: it is not; None: no source can tell."""
        ...


# -- deciding the sync state (pure) -------------------------------------------------------------------------


def kernel_says(adjtimex_result: int | OSError) -> bool | None:
    """adjtimex(2)'s clock state, or None when the call was not allowed (a sandbox) or failed."""
    if isinstance(adjtimex_result, OSError):
        return None
    return adjtimex_result >= 0 and adjtimex_result != TIME_ERROR


def timesyncd_says(*, running: bool, flag_present: bool) -> bool | None:
    """systemd-timesyncd: synchronised once it has written its flag; None when it does not run here."""
    if flag_present:
        return True
    return False if running else None


def chrony_says(tracking_csv: str | None) -> bool | None:
    """`chronyc -n -c tracking`: its last field is the leap status, "Not synchronised" until chrony has a source."""
    if not tracking_csv or "," not in tracking_csv:
        return None
    leap = tracking_csv.strip().splitlines()[-1].rsplit(",", 1)[-1].strip()
    return leap != "Not synchronised"


def sync_state(answers: list[bool | None], *, wall_ns: int) -> bool | None:
    """The first source that knows; a wall clock before this release's date is unsynchronised whatever they say."""
    if wall_ns < EARLIEST_PLAUSIBLE_UTC_NS:
        return False
    return next((answer for answer in answers if answer is not None), None)


# -- the real clocks ---------------------------------------------------------------------------------------------


def adjtimex_reader() -> Callable[[], int | OSError]:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    def read() -> int | OSError:
        timex = ctypes.create_string_buffer(512)  # struct timex with modes = 0: read only
        state = int(libc.adjtimex(timex))
        if state < 0:
            code = ctypes.get_errno()
            return OSError(code, errno.errorcode.get(code, str(code)))
        return state

    return read


def _run_chronyc(chronyc: str) -> str | None:
    try:
        done = subprocess.run(
            [chronyc, "-n", "-c", "tracking"], capture_output=True, text=True, timeout=CHRONY_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _chronyc_reader(path: str | None) -> Callable[[], str | None]:
    def read() -> str | None:
        return _run_chronyc(path) if path else None

    return read


class SystemClock:
    """The real clocks. Each source is injectable so the decision is tested with the answers a sandbox gives."""

    def __init__(
        self,
        *,
        assume_synced: bool = False,
        adjtimex: Callable[[], int | OSError] | None = None,
        timesyncd_dir: Path = TIMESYNCD_DIR,
        chronyc: Callable[[], str | None] | None = None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.assume_synced = assume_synced
        self._adjtimex = adjtimex or adjtimex_reader()
        self._kernel_denied: OSError | None = None
        self._timesyncd_dir = timesyncd_dir
        self._chronyc: Callable[[], str | None] = chronyc or _chronyc_reader(shutil.which("chronyc"))
        self._chrony_answer: bool | None = None
        self._chrony_asked_ns: int | None = None
        self._monotonic_ns = monotonic_ns
        self._wall_ns = wall_ns
        self.source = ""  # which source answered last ("adjtimex", "systemd-timesyncd", "chrony", "none")

    def monotonic_ns(self) -> int:
        return self._monotonic_ns()

    def wall_ns(self) -> int:
        return self._wall_ns()

    def synced(self) -> bool | None:
        if self.assume_synced:
            return True
        kernel = self._ask_kernel()
        if kernel is not None:
            return self._answered("adjtimex", sync_state([kernel], wall_ns=self.wall_ns()))
        # The kernel would not say (a sandbox): the time daemons' own state.
        timesyncd = timesyncd_says(
            running=self._timesyncd_dir.is_dir(), flag_present=(self._timesyncd_dir / "synchronized").exists()
        )
        if timesyncd is not None:
            return self._answered("systemd-timesyncd", sync_state([timesyncd], wall_ns=self.wall_ns()))
        chrony = self._ask_chrony()
        source = "chrony" if chrony is not None else "none"
        return self._answered(source, sync_state([chrony], wall_ns=self.wall_ns()))

    def _ask_kernel(self) -> bool | None:
        if self._kernel_denied is not None:
            return None  # denied once, denied for the life of the process: do not ask 10 times a second
        result = self._adjtimex()
        if isinstance(result, OSError):
            self._kernel_denied = result
            if result.errno not in ADJTIMEX_DENIED:
                log.warning("adjtimex(2) failed unexpectedly (%s): asking the time daemons instead", result)
        return kernel_says(result)

    def _ask_chrony(self) -> bool | None:
        now = self._monotonic_ns()
        if self._chrony_asked_ns is None or now - self._chrony_asked_ns >= CHRONY_ASK_EVERY_NS:
            self._chrony_asked_ns = now
            self._chrony_answer = chrony_says(self._chronyc())
        return self._chrony_answer

    def _answered(self, source: str, state: bool | None) -> bool | None:
        if source != self.source:
            denied = f"adjtimex(2) is not allowed here ({self._kernel_denied}); " if self._kernel_denied else ""
            if source == "none":
                log.warning(
                    "%sneither systemd-timesyncd nor chrony answers: clock sync state UNKNOWN. Batches are flagged "
                    "CLOCK_UNSYNCED and sent without waiting for a sync (run chrony or systemd-timesyncd, allow "
                    "adjtimex reads, or set [clock] assume_synced = true if the clock is kept right otherwise)",
                    denied,
                )
            elif source != "adjtimex":
                log.info("%sclock sync state from %s", denied, source)
            self.source = source
        return state


def read_boot_id(path: Path = BOOT_ID_PATH) -> str:
    """The kernel's id of this boot: monotonic times compare only within one. Unreadable: an id for this run only,
    so batches are re-timed only within the run that took them."""
    try:
        return path.read_text().strip()
    except OSError as exc:
        log.warning("cannot read the boot id (%s): unsynchronised batches of this run can be re-timed only by it", exc)
        return f"run-{uuid.uuid4()}"


@dataclass(frozen=True)
class UtcAnchor:
    """utc_ns = wall_at_anchor + (mono - mono_at_anchor)."""

    mono_ns: int
    wall_ns: int
    synced: bool | None

    @classmethod
    def take(cls, clock: Clock) -> UtcAnchor:
        return cls(clock.monotonic_ns(), clock.wall_ns(), clock.synced())

    @property
    def utc_minus_mono_ns(self) -> int:
        """The mapping itself: UTC = monotonic + this (monotonic time is never stepped within a boot)."""
        return self.wall_ns - self.mono_ns

    def utc_ns(self, mono_ns: int) -> int:
        return self.wall_ns + (mono_ns - self.mono_ns)

    def refreshed(self, clock: Clock) -> UtcAnchor:
        """A new anchor when the sync state changed or the wall clock moved away from this one."""
        mono, wall, synced = clock.monotonic_ns(), clock.wall_ns(), clock.synced()
        if synced != self.synced or abs(wall - self.utc_ns(mono)) > RE_ANCHOR_AFTER_NS:
            return UtcAnchor(mono, wall, synced)
        return self

    def stepped_from(self, earlier: UtcAnchor) -> bool:
        """This anchor maps monotonic time to UTC differently from `earlier`: the wall clock was stepped."""
        return abs(self.utc_minus_mono_ns - earlier.utc_minus_mono_ns) > RE_ANCHOR_AFTER_NS
