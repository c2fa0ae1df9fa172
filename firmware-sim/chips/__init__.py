"""Register-level simulated chips: a register file behind an I2C register pointer, whose state advances with an
injected clock (like gpiozero's mock devices model behaviour, not canned values). SimulatedBus (../bus.py)
delivers raw I2C messages to them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

ClockNs = Callable[[], int]


class SimulatedChip(Protocol):
    def i2c_write(self, data: bytes) -> None:
        """One I2C write message addressed to this chip (empty for a probe)."""

    def i2c_read(self, length: int) -> bytes:
        """One I2C read message of `length` bytes."""
        ...


class RegisterChip:
    """256 8-bit registers. A write message is [register, data...] and a read continues from the register
    pointer; both auto-increment. Subclasses override the hooks for registers with behaviour."""

    def __init__(self, clock_ns: ClockNs) -> None:
        self.clock_ns = clock_ns
        self.registers = bytearray(256)
        self.pointer = 0

    # Hooks.
    def advance(self, now_ns: int) -> None:
        """Bring the chip's state (sampling, conversions) up to `now_ns`."""

    def read_register(self, register: int) -> int:
        return self.registers[register]

    def write_register(self, register: int, value: int) -> None:
        self.registers[register] = value

    def next_pointer(self, register: int) -> int:
        return (register + 1) & 0xFF

    # I2C.
    def i2c_write(self, data: bytes) -> None:
        self.advance(self.clock_ns())
        if not data:
            return
        self.pointer = data[0]
        for value in data[1:]:
            self.write_register(self.pointer, value)
            self.pointer = self.next_pointer(self.pointer)

    def i2c_read(self, length: int) -> bytes:
        self.advance(self.clock_ns())
        out = bytearray()
        for _ in range(length):
            out.append(self.read_register(self.pointer))
            self.pointer = self.next_pointer(self.pointer)
        return bytes(out)
