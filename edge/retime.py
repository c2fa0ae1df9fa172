"""Holding and re-timing batches taken before the wall clock was known good (issue 13, Contract B).

A batch taken while the clock is not synchronised is stored with its boot id and the monotonic time of its first
sample (Entry.boot_id, Entry.mono_ns) and flagged CLOCK_UNSYNCED. Monotonic time never steps within a boot, so once
the boot's clock is synchronised, `UTC = mono + offset` (one number per boot) gives the batch's true start time.
Until then the link holds it on the device; after `hold_unsynced_s` of a boot without sync it goes as it is.

`decide` is the whole rule (pure); `HoldPolicy` keeps the per-boot offsets and is the link's `prepare`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from fleetsense import wire
from fleetsense.errors import WireFormatError

log = logging.getLogger(__name__)


class EntryLike(Protocol):
    """What the policy reads of an outbox entry (Contract A's Entry)."""

    @property
    def id(self) -> int: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def boot_id(self) -> str: ...
    @property
    def mono_ns(self) -> int | None: ...


@dataclass(frozen=True)
class BootOffset:
    """UTC = monotonic + utc_minus_mono_ns for every instant of one boot; `verified`: taken from a synchronised
    clock (False: from a plausible clock whose sync state no source could tell)."""

    utc_minus_mono_ns: int
    verified: bool


@dataclass(frozen=True)
class BatchTime:
    """When a batch's samples were, as far as known: `start_us` on a synchronised clock, else (boot_id, mono_ns)
    to be mapped once that boot's offset is known."""

    kind: int
    start_us: int | None
    boot_id: str
    mono_ns: int | None
    span_us: int  # from the first sample to the end of the last (samples x period)


def batch_time(payload: bytes, boot_id: str, mono_ns: int | None) -> BatchTime | None:
    """A stored batch's time (None if it no longer decodes)."""
    try:
        header = wire.decode_header(payload)
    except WireFormatError:
        return None
    synced = mono_ns is None and not header.flags & wire.Flags.CLOCK_UNSYNCED
    span_us = header.sample_count * header.sample_period_us
    return BatchTime(int(header.kind), header.start_time_us if synced else None, boot_id, mono_ns, span_us)


class Action(Enum):
    SEND = "send as it is"  # timed on a synchronised clock, or nothing better will ever be known
    RETIME = "re-time, then send"
    HOLD = "hold"


def decide(
    entry_boot_id: str,
    entry_mono_ns: int | None,
    *,
    offsets: Mapping[str, BootOffset],
    boot_id: str,
    hold_expired: bool,
) -> Action:
    """What to do with a stored batch now."""
    if entry_mono_ns is None:
        return Action.SEND  # taken on a synchronised clock
    if entry_boot_id in offsets:
        return Action.RETIME
    if entry_boot_id != boot_id or not entry_boot_id:
        # An earlier boot that never synchronised: its monotonic clock is gone, nothing will ever re-time it.
        return Action.SEND
    return Action.SEND if hold_expired else Action.HOLD


def true_start_us(mono_ns: int, offset: BootOffset) -> int:
    return (mono_ns + offset.utc_minus_mono_ns) // 1000


def retime_payload(payload: bytes, mono_ns: int, offset: BootOffset) -> bytes:
    """The batch with its start time on the boot's synchronised mapping (and CLOCK_UNSYNCED cleared if verified)."""
    header = wire.decode_header(payload)
    shift_us = true_start_us(mono_ns, offset) - header.start_time_us
    clear = wire.Flags.CLOCK_UNSYNCED if offset.verified else wire.Flags.NONE
    if shift_us == 0 and not header.flags & clear:
        return payload
    return wire.retimed(payload, shift_us, clear_flags=clear)


class HoldPolicy:
    """Contract B's `prepare`, called by the link's thread; the agent's thread tells it about the clock."""

    def __init__(
        self, boot_id: str, *, hold_until_mono_ns: int, offsets: Mapping[str, BootOffset] | None = None
    ) -> None:
        self.boot_id = boot_id
        # Monotonic time counts from boot: a boot this old without a sync is not going to be helped by waiting.
        self.hold_until_mono_ns = hold_until_mono_ns
        self._offsets: dict[str, BootOffset] = dict(offsets or {})
        self._hold_expired = False
        self._held: set[int] = set()  # ids the link was last told to hold
        self._lock = threading.Lock()

    # -- from the agent -------------------------------------------------------------------------------------

    def observe(self, offset: BootOffset | None, now_mono_ns: int) -> bool:
        """This boot's clock as the agent sees it now (None: not good). True when held batches may now go."""
        with self._lock:
            changed = False
            current = self._offsets.get(self.boot_id)
            # A verified offset is never replaced by an unverified one (the clock lost sync: its mapping stands).
            if offset is not None and offset != current and (offset.verified or not (current and current.verified)):
                self._offsets[self.boot_id] = offset
                changed = True
            if not self._hold_expired and self.boot_id not in self._offsets and now_mono_ns >= self.hold_until_mono_ns:
                self._hold_expired = True
                changed = True
                log.warning(
                    "no clock sync %.0f s into this boot: sending the batches held for it as they are (CLOCK_UNSYNCED)",
                    self.hold_until_mono_ns / 1e9,
                )
            if changed:
                self._held.clear()  # the link looks at them again
            return changed

    def offset(self, boot_id: str) -> BootOffset | None:
        with self._lock:
            return self._offsets.get(boot_id)

    def offsets(self) -> dict[str, BootOffset]:
        with self._lock:
            return dict(self._offsets)

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def true_time_us(self, batch: BatchTime) -> int | None:
        """A batch's start in true UTC: as taken on a synchronised clock, or mapped by its boot's verified offset."""
        if batch.start_us is not None or batch.mono_ns is None:
            return batch.start_us
        with self._lock:
            offset = self._offsets.get(batch.boot_id)
        return true_start_us(batch.mono_ns, offset) if offset is not None and offset.verified else None

    # -- from the link ----------------------------------------------------------------------------------------

    def prepare(self, entry: EntryLike) -> bytes | None:
        """The bytes to publish for `entry` now, or None to hold it."""
        with self._lock:
            action = decide(
                entry.boot_id,
                entry.mono_ns,
                offsets=self._offsets,
                boot_id=self.boot_id,
                hold_expired=self._hold_expired,
            )
            if action is Action.HOLD:
                self._held.add(entry.id)
                return None
            self._held.discard(entry.id)
            offset = self._offsets.get(entry.boot_id)
        if action is Action.SEND or entry.mono_ns is None or offset is None:
            return entry.payload
        try:
            return retime_payload(entry.payload, entry.mono_ns, offset)
        except WireFormatError:
            return entry.payload  # a row that no longer decodes: the link sets it aside
