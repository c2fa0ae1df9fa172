"""Time on a device without a real-time clock: samples are timed on the monotonic clock, and mapped to UTC
through an anchor that is re-taken when the wall clock is stepped (NTP sync after boot) or slews away."""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from dataclasses import dataclass
from typing import Protocol

TIME_ERROR = 5  # adjtimex(2): the kernel's clock is not synchronised
RE_ANCHOR_AFTER_NS = 20_000_000  # 20 ms of disagreement between the anchor and the wall clock


class Clock(Protocol):
    def monotonic_ns(self) -> int: ...

    def wall_ns(self) -> int: ...

    def synced(self) -> bool: ...


class SystemClock:
    """The real clocks; sync state from adjtimex(2), which chrony, ntpd and systemd-timesyncd all maintain."""

    def __init__(self, *, assume_synced: bool = False) -> None:
        self.assume_synced = assume_synced
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def wall_ns(self) -> int:
        return time.time_ns()

    def synced(self) -> bool:
        if self.assume_synced:
            return True
        timex = ctypes.create_string_buffer(512)  # struct timex with modes = 0: read only
        state = self._libc.adjtimex(timex)
        return bool(state >= 0 and state != TIME_ERROR)


@dataclass
class UtcAnchor:
    """utc_ns = wall_at_anchor + (mono - mono_at_anchor)."""

    mono_ns: int
    wall_ns: int
    synced: bool

    @classmethod
    def take(cls, clock: Clock) -> UtcAnchor:
        return cls(clock.monotonic_ns(), clock.wall_ns(), clock.synced())

    def utc_ns(self, mono_ns: int) -> int:
        return self.wall_ns + (mono_ns - self.mono_ns)

    def refreshed(self, clock: Clock) -> UtcAnchor:
        """A new anchor when the sync state changed or the wall clock moved away from this one."""
        mono, wall, synced = clock.monotonic_ns(), clock.wall_ns(), clock.synced()
        if synced != self.synced or abs(wall - self.utc_ns(mono)) > RE_ANCHOR_AFTER_NS:
            return UtcAnchor(mono, wall, synced)
        return self
