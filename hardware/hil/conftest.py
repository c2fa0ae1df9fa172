"""Hardware-in-the-loop session checks, loaded by naming this folder on the pytest command line (README.md).
The driver tests themselves live in tests/unit and are parametrised by backend; this adds what a bench run
needs around them: a pre-flight probe that stops early with the fix when the bus or a chip is missing, a header
saying what answered, and a summary that says loudly if no test actually ran on the hardware."""

from __future__ import annotations

import os

import pytest
from fleetsense.edge.i2c import ENV_VAR, open_bus
from fleetsense.edge.sensors.bmp280 import Bmp280Source
from fleetsense.edge.sensors.mpu6050 import Mpu6050Source

from fleetsense.errors import FleetsenseError

HIL_ID = "[hil-"  # the parametrisation id of the hardware backend (tests/unit/test_sensor_rig.py)
_found: list[str] = []


def _spec() -> str:
    return os.environ.get(ENV_VAR, "")


def pytest_configure(config: pytest.Config) -> None:
    spec = _spec()
    if not (spec.startswith("smbus:") or spec == "sim"):
        raise pytest.UsageError(
            f"hardware/hil runs the driver tests against a real bus: set {ENV_VAR}=smbus:1 "
            f"(or {ENV_VAR}=sim to rehearse on the simulated board in real time)"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    spec = _spec()
    try:
        bus = open_bus(spec)
        try:
            Mpu6050Source(bus).probe()
            _found.append("MPU-6050 at 0x68")
            Bmp280Source(bus).probe()
            _found.append("BMP280 at 0x76")
        finally:
            bus.close()
    except FleetsenseError as exc:
        pytest.exit(f"hardware-in-the-loop pre-flight on {spec} failed:\n{exc.render()}", returncode=2)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"hardware-in-the-loop on I2C bus {_spec()}: {', '.join(_found) or 'nothing probed'}"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts = {
        outcome: sum(1 for report in terminalreporter.stats.get(outcome, []) if HIL_ID in report.nodeid)
        for outcome in ("passed", "failed", "skipped")
    }
    terminalreporter.section("hardware-in-the-loop")
    terminalreporter.write_line(
        f"on {_spec()}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    )
    if not counts["passed"] and not counts["failed"]:
        terminalreporter.write_line("NO TEST RAN ON THE HARDWARE: name the driver test files (README.md)", red=True)
