"""Cutting a sensor's sample stream into batch windows by sample count, so every sample lands in exactly one
batch and each batch's times follow from its first sample and the period (pure logic, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Window(Generic[T]):
    first_time_ns: int  # monotonic time of sample 0
    period_ns: int
    samples: tuple[T, ...]
    gap_before: bool  # samples were lost between the previous window and this one


@dataclass
class Windower(Generic[T]):
    samples_per_window: int
    period_ns: int
    _first_time_ns: int = 0
    _buffer: list[T] = field(default_factory=list)
    _gap_pending: bool = False
    _next_expected_ns: int | None = None

    def add(self, first_time_ns: int, samples: Sequence[T]) -> list[Window[T]]:
        """Add contiguous samples starting at first_time_ns; return the windows completed by them."""
        done: list[Window[T]] = []
        if not samples:
            return done
        expected = self._next_expected_ns
        if expected is not None and abs(first_time_ns - expected) > self.period_ns // 2:
            # Not where the stream should continue (an overflow or a sensor outage): close what we have.
            done += self.flush()
            self._gap_pending = True
        if not self._buffer:
            self._first_time_ns = first_time_ns
        for sample in samples:
            if not self._buffer:
                self._first_time_ns = first_time_ns
            self._buffer.append(sample)
            first_time_ns += self.period_ns
            if len(self._buffer) == self.samples_per_window:
                done.append(self._emit())
        self._next_expected_ns = first_time_ns
        return done

    def flush(self) -> list[Window[T]]:
        """Emit a partial window (on shutdown or before a gap)."""
        return [self._emit()] if self._buffer else []

    def _emit(self) -> Window[T]:
        window = Window(self._first_time_ns, self.period_ns, tuple(self._buffer), self._gap_pending)
        self._first_time_ns += len(self._buffer) * self.period_ns
        self._buffer = []
        self._gap_pending = False
        return window
