"""The I2C bus seam: the backend registry (a spec, else FLEETSENSE_I2C_BUS, else smbus:1, names an entry point of
fleetsense.i2c_buses), the smbus2 backend's transactions (against a fake SMBus: there is no /dev/i2c-* here), the
busio adapter's semantics, and open_sensors on each backend."""

from __future__ import annotations

import ctypes
import errno
import sys
from importlib import metadata
from typing import Any

import pytest
from fleetsense.edge import i2c
from fleetsense.edge.hardware_factory import open_sensors
from fleetsense.edge.i2c import (
    ENV_VAR,
    BusioI2C,
    SMBusBackend,
    backend,
    bus_spec,
    open_bus,
    open_smbus_bus,
)
from fleetsense.edge.sensors.bmp280 import Bmp280Source
from fleetsense.edge.sensors.bus import BusNotFoundError, BusRequest, I2CError, TransactionBus
from fleetsense.edge.sensors.mpu6050 import Mpu6050Source
from fleetsense.sim.bus import SimulatedBus, VirtualClock, open_simulated_bus
from fleetsense.sim.fleet import ClockShifted
from fleetsense.sim.physics import AtRest

from fleetsense.errors import ConfigError

# Choosing the backend: one registry, like gpiozero's pin factories.


def test_the_installed_backends_are_the_real_bus_and_the_simulator() -> None:
    # pyproject.toml's [project.entry-points."fleetsense.i2c_buses"], as the editable or wheel install registered it.
    assert backend("smbus") is open_smbus_bus
    assert backend("sim") is open_simulated_bus


def test_the_spec_in_force_is_the_configured_one_else_the_environment_s_else_smbus_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert bus_spec() == bus_spec("") == bus_spec("  ") == "smbus:1"
    monkeypatch.setenv(ENV_VAR, "sim")
    assert bus_spec() == bus_spec("") == "sim"
    assert bus_spec(" smbus:3 ") == "smbus:3"
    assert isinstance(open_bus(), SimulatedBus)
    assert sorted(open_bus().devices) == [0x68, 0x76]  # type: ignore[attr-defined]
    assert isinstance(open_bus(" SIM "), SimulatedBus)


@pytest.mark.parametrize("spec", ["i2c-1", "real:1", "smbus", "smbus:one"])
def test_an_unknown_bus_says_which_specs_exist(spec: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_bus(spec)
    assert caught.value.hint is not None and ENV_VAR in caught.value.hint and "smbus:1" in caught.value.hint


def test_the_simulated_bus_takes_no_argument() -> None:
    with pytest.raises(ConfigError, match="unknown I2C bus 'sim:2'") as caught:
        open_bus("sim:2")
    assert caught.value.hint == "the simulated bus takes no argument: write sim"


def test_an_unknown_backend_lists_the_installed_ones() -> None:
    with pytest.raises(ConfigError, match="unknown I2C bus backend 'i2c-1'") as caught:
        open_bus("i2c-1")
    assert caught.value.hint is not None and "installed here: sim, smbus" in caught.value.hint


def test_a_backend_whose_package_is_not_installed_says_so() -> None:
    # The simulator on a Pi's install looks like this: registered, but its module is not there.
    ghost = metadata.EntryPoint(name="sim", value="fleetsense_not_installed.bus:open_bus", group=i2c.BACKEND_GROUP)
    with pytest.raises(I2CError) as caught:
        backend("sim", {"sim": ghost})
    assert "registered (fleetsense_not_installed.bus:open_bus) but cannot be imported" in caught.value.message
    assert caught.value.hint is not None and "not installed" in caught.value.hint


def test_the_real_backend_without_smbus2_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "smbus2", None)  # how Python marks a module as absent
    with pytest.raises(I2CError, match="needs the smbus2 package") as caught:
        open_smbus_bus(BusRequest(argument="1"))
    assert caught.value.hint is not None and "fleetsense[edge]" in caught.value.hint


def test_the_simulated_backend_drives_the_given_physics_or_the_vehicle_s_own_drive() -> None:
    clock = VirtualClock()
    parked = open_simulated_bus(BusRequest(clock_ns=clock.now_ns))
    assert sorted(parked.devices) == [0x68, 0x76]
    own = open_simulated_bus(BusRequest(clock_ns=clock.now_ns, vehicle_id="van-042", baro_address=None))
    assert sorted(own.devices) == [0x68]
    physics = own.devices[0x68].physics  # type: ignore[attr-defined]
    assert isinstance(physics, ClockShifted) and physics.start_ns == clock.now_ns()
    given = AtRest(pressure_pa=90_000.0)
    assert open_simulated_bus(BusRequest(physics=given)).devices[0x76].physics is given  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="imu_at and environment_at"):
        open_simulated_bus(BusRequest(physics="a drive"))


def test_a_missing_bus_says_to_enable_i2c() -> None:
    def absent(number: int) -> Any:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    with pytest.raises(BusNotFoundError) as caught:
        SMBusBackend(1, open_smbus=absent)
    assert caught.value.message.startswith("I2C bus 1 not found: /dev/i2c-1")
    assert caught.value.hint is not None and "raspi-config" in caught.value.hint and "sim" in caught.value.hint
    with pytest.raises(BusNotFoundError, match="I2C bus 99 not found"):
        open_bus("smbus:99")  # the real smbus2 path: no /dev/i2c-99 anywhere we run


def test_a_bus_we_may_not_open_says_which_group_to_join() -> None:
    def forbidden(number: int) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(I2CError) as caught:
        SMBusBackend(1, open_smbus=forbidden)
    assert caught.value.hint is not None and "i2c group" in caught.value.hint


# The smbus2 backend's transactions.


class FakeSMBus:
    """Answers i2c_rdwr like the kernel: read messages are filled from `replies`; errors as OSError."""

    def __init__(self) -> None:
        self.transfers: list[list[tuple[int, str, bytes | int]]] = []
        self.quick: list[int] = []
        self.replies: list[bytes] = []
        self.error: OSError | None = None
        self.closed = False

    def i2c_rdwr(self, *messages: Any) -> None:
        if self.error is not None:
            raise self.error
        record: list[tuple[int, str, bytes | int]] = []
        for message in messages:
            if message.flags & 1:  # I2C_M_RD
                reply = self.replies.pop(0)
                ctypes.memmove(message.buf, reply, message.len)
                record.append((message.addr, "read", message.len))
            else:
                record.append((message.addr, "write", bytes(message)))
        self.transfers.append(record)

    def write_quick(self, i2c_addr: int) -> None:
        self.quick.append(i2c_addr)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def smbus() -> tuple[SMBusBackend, FakeSMBus]:
    fake = FakeSMBus()
    return SMBusBackend(1, open_smbus=lambda number: fake), fake


def test_register_reads_are_one_combined_write_then_read(smbus: tuple[SMBusBackend, FakeSMBus]) -> None:
    bus, fake = smbus
    fake.replies = [b"\x68", b"\x01\x02\x03"]
    assert bus.read_byte_data(0x68, 0x75) == 0x68
    assert bus.read_i2c_block_data(0x68, 0x3B, 3) == b"\x01\x02\x03"
    assert fake.transfers == [
        [(0x68, "write", b"\x75"), (0x68, "read", 1)],
        [(0x68, "write", b"\x3b"), (0x68, "read", 3)],
    ]


def test_writes_and_long_reads_have_no_smbus_32_byte_limit(smbus: tuple[SMBusBackend, FakeSMBus]) -> None:
    bus, fake = smbus
    bus.write_byte_data(0x76, 0xE0, 0xB6)
    bus.write_i2c_block_data(0x68, 0x19, b"\x09\x03")
    fake.replies = [bytes(range(256)) * 4]
    assert bus.write_then_read(0x68, b"\x74", 1020) == (bytes(range(256)) * 4)[:1020]
    fake.replies = [b"\xaa"]
    assert bus.read(0x68, 1) == b"\xaa"
    assert fake.transfers == [
        [(0x76, "write", b"\xe0\xb6")],
        [(0x68, "write", b"\x19\x09\x03")],
        [(0x68, "write", b"\x74"), (0x68, "read", 1020)],
        [(0x68, "read", 1)],
    ]


def test_a_zero_length_write_is_an_smbus_quick_write(smbus: tuple[SMBusBackend, FakeSMBus]) -> None:
    bus, fake = smbus
    bus.write(0x68, b"")  # how busio (and i2cdetect) probe an address
    assert fake.quick == [0x68] and fake.transfers == []


def test_errors_keep_their_errno_and_name_bus_and_address(smbus: tuple[SMBusBackend, FakeSMBus]) -> None:
    bus, fake = smbus
    fake.error = OSError(errno.EREMOTEIO, "Remote I/O error")
    with pytest.raises(OSError) as caught:
        bus.read_byte_data(0x69, 0x75)
    assert caught.value.errno == errno.EREMOTEIO and "smbus:1 address 0x69" in str(caught.value)
    bus.close()
    assert fake.closed


# The busio adapter.


class RecordingBus(TransactionBus):
    name = "recording"

    def __init__(self, reply: bytes = b"", error: OSError | None = None) -> None:
        self.calls: list[tuple[int, bytes, int]] = []
        self.reply, self.error = reply, error

    def transfer(self, address: int, write: bytes, read_length: int) -> bytes:
        self.calls.append((address, write, read_length))
        if self.error is not None:
            raise self.error
        return self.reply[:read_length]


def test_busio_operations_require_the_lock_and_the_lock_is_exclusive() -> None:
    i2c = BusioI2C(RecordingBus())
    with pytest.raises(RuntimeError, match="requires lock"):
        i2c.writeto(0x68, b"\x75")
    assert i2c.try_lock() and not i2c.try_lock()
    i2c.unlock()
    assert i2c.try_lock()


def test_busio_buffers_are_sliced_start_to_end() -> None:
    bus = RecordingBus(reply=b"\xaa\xbb\xcc")
    i2c = BusioI2C(bus)
    i2c.try_lock()
    i2c.writeto(0x68, bytearray(b"\x00\x6b\x01\xff"), start=1, end=3)
    buffer = bytearray(5)
    i2c.readfrom_into(0x68, buffer, start=1, end=3)
    assert buffer == bytearray(b"\x00\xaa\xbb\x00\x00")
    assert bus.calls == [(0x68, b"\x6b\x01", 0), (0x68, b"", 2)]


def test_busio_write_then_read_into_the_same_buffer_like_adafruit_register() -> None:
    bus = RecordingBus(reply=b"\x01\x02\x03\x04\x05\x06")
    i2c = BusioI2C(bus)
    i2c.try_lock()
    buffer = bytearray([0x3B, 0, 0, 0, 0, 0, 0])  # adafruit_register: register in [0], data read into [1:]
    i2c.writeto_then_readfrom(0x68, buffer, buffer, out_end=1, in_start=1)
    assert buffer == bytearray([0x3B, 1, 2, 3, 4, 5, 6]) and bus.calls == [(0x68, b"\x3b", 6)]


def test_busio_lets_oserror_through_for_adafruit_s_probe() -> None:
    i2c = BusioI2C(RecordingBus(error=OSError(errno.EREMOTEIO, "nack")))
    i2c.try_lock()
    with pytest.raises(OSError):
        i2c.writeto(0x68, b"")


def test_busio_scan_lists_who_answers() -> None:
    i2c = BusioI2C(open_bus("sim"))
    with i2c:
        assert i2c.try_lock()
        assert i2c.scan() == [0x68, 0x76]


# open_sensors on each backend.


def test_open_sensors_on_the_sim_gives_started_able_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    import adafruit_mpu6050

    clock = VirtualClock()
    monkeypatch.setattr(adafruit_mpu6050, "sleep", clock.sleep)
    monkeypatch.setenv(ENV_VAR, "sim")
    sensors = open_sensors(imu_rate_hz=200, clock_ns=clock.now_ns, sleep_s=clock.sleep)
    assert isinstance(sensors.imu, Mpu6050Source) and isinstance(sensors.environment, Bmp280Source)
    sensors.imu.start(clock.now_ns())
    sensors.environment.start(clock.now_ns())
    clock.advance(0.25)  # at 200 Hz the 1024-byte FIFO holds 425 ms
    assert sum(len(b.counts) for b in sensors.imu.drain(clock.now_ns())) == 50
    sample = sensors.environment.read(clock.now_ns())
    assert sample is not None and sample.pressure_pa == pytest.approx(101_325.0, abs=0.5)
    assert sensors.imu.period_ns == 5_000_000
    (bus,) = sensors.closers
    assert isinstance(bus, SimulatedBus)


def test_open_sensors_without_a_barometer_and_at_the_other_address(monkeypatch: pytest.MonkeyPatch) -> None:
    sensors = open_sensors("sim", imu_address=0x69, baro_address=None)
    assert sensors.environment is None
    assert sensors.imu.config.address == 0x69  # type: ignore[attr-defined]


def test_open_sensors_on_a_missing_bus_fails_clearly() -> None:
    with pytest.raises(BusNotFoundError, match="I2C bus 99 not found"):
        open_sensors("smbus:99")
