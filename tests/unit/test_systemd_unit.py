"""The edge agent's systemd unit: accepted by `systemd-analyze verify`, and the settings the agent relies on."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "hardware" / "systemd" / "fleetsense-edge.service"


def unit_settings() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install the `systemd` package (scripts/dev.sh does)"
    # verify insists that ExecStart exists: point it at this checkout's installed command.
    fleetsense = Path(sys.executable).parent / "fleetsense"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/fleetsense/venv/bin/fleetsense", str(fleetsense)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_unit_runs_unprivileged_with_notify_watchdog_and_restart() -> None:
    service = unit_settings()["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "always"
    assert service["User"] not in ("root", "0")
    assert "i2c" in service["SupplementaryGroups"]
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"


def test_a_crash_costs_about_a_second_and_a_crash_loop_never_leaves_the_agent_dead() -> None:
    settings = unit_settings()
    assert float(settings["Service"]["RestartSec"]) <= 1  # was 5: 6 s or more of samples lost per crash
    assert settings["Unit"]["StartLimitIntervalSec"] == "0"  # no start limit: systemd never gives up


def test_the_clock_state_is_readable_and_setting_the_clock_still_impossible() -> None:
    service = unit_settings()["Service"]
    assert "ProtectClock" not in service  # it denies even the read-only query (tests/unit/test_unit_sandbox.py)
    assert service["CapabilityBoundingSet"] == ""  # no CAP_SYS_TIME: the clock calls can only read
    assert service["SystemCallErrorNumber"] == "EPERM"
