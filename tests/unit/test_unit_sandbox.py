"""The shipped unit's seccomp sandbox, rebuilt from the unit file and this machine's systemd syscall sets
(tests/unit/systemd_sandbox.py): under it the agent can read the kernel's clock state but not set the clock,
and it runs; ProtectClock=yes would make even the read fail with EPERM; and the unit as shipped before
issue 13 killed the agent with SIGSYS on its first clock query."""

from __future__ import annotations

import errno
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fleetsense.device_config import BrokerConfig, EdgeConfig, StorageConfig, render

from . import systemd_sandbox

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "hardware" / "systemd" / "fleetsense-edge.service"
TIME_ERROR = 5  # adjtimex(2)'s highest clock state: anything 0..5 means the query worked

# Read the clock state as the agent does (adjtimex(3), modes = 0), then try to change it (ADJ_MAXERROR with the
# value just read, harmless if it ever succeeded). glibc 2.36 makes adjtimex(3) a clock_adjtime(2) call.
PROBE = """
import ctypes, ctypes.util, json
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
timex = ctypes.create_string_buffer(512)
read = libc.adjtimex(timex)
read_errno = ctypes.get_errno()
ctypes.c_uint.from_buffer(timex).value = 0x0004  # modes = ADJ_MAXERROR
ctypes.set_errno(0)
write = libc.adjtimex(timex)
print(json.dumps({"read": read, "read_errno": read_errno, "write": write, "write_errno": ctypes.get_errno()}))
"""


def shipped() -> str:
    return UNIT.read_text()


def with_settings(unit_text: str, *settings: str) -> str:
    return unit_text.replace("[Service]\n", "[Service]\n" + "".join(f"{s}\n" for s in settings), 1)


def without_error_number(unit_text: str) -> str:
    return re.sub(r"^SystemCallErrorNumber=.*\n", "", unit_text, flags=re.M)


def before_issue_13(unit_text: str) -> str:
    """The unit as it was: @system-service only, no SystemCallErrorNumber=, ProtectClock=yes."""
    text = re.sub(r"^SystemCallFilter=(?!@system-service$).*\n", "", unit_text, flags=re.M)
    return with_settings(without_error_number(text), "ProtectClock=yes")


def probe(unit_text: str) -> subprocess.CompletedProcess[str]:
    sandbox = systemd_sandbox.sandbox_of(unit_text)
    return subprocess.run(
        systemd_sandbox.command(sandbox, sys.executable, "-c", PROBE), capture_output=True, text=True, timeout=60
    )


def test_the_shipped_unit_lets_the_agent_read_the_clock_state_but_not_set_the_clock() -> None:
    sandbox = systemd_sandbox.sandbox_of(shipped())
    assert not sandbox.protect_clock and sandbox.drop_capabilities and sandbox.no_new_privileges
    done = probe(shipped())
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert 0 <= result["read"] <= TIME_ERROR, result
    # Setting needs CAP_SYS_TIME, which the empty capability bounding set removed (the probe runs as root here).
    assert result["write"] == -1 and result["write_errno"] == 1, result  # EPERM


def test_protect_clock_makes_even_the_read_only_clock_query_fail_with_eperm() -> None:
    done = probe(with_settings(shipped(), "ProtectClock=yes"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["read"] == -1 and result["read_errno"] == 1, result  # EPERM: "never synchronised", always


def test_the_unit_before_issue_13_killed_the_agent_at_its_first_clock_query() -> None:
    # @system-service has no adjtimex/clock_adjtime and a denied call killed the process (no error number set):
    # the kernel keeps the strongest verdict of the two filters, SIGSYS over ProtectClock's EPERM.
    done = probe(before_issue_13(shipped()))
    assert done.returncode == -signal.SIGSYS, (done.returncode, done.stdout, done.stderr)


# Also with a refused call killing the process: proves the agent makes no call outside the list (with EPERM a
# refused call could go unnoticed in a library that handles the error).
@pytest.mark.parametrize("unit_text", [shipped(), without_error_number(shipped())], ids=["shipped", "sigsys"])
def test_the_agent_samples_stores_and_tries_the_broker_under_the_shipped_sandbox(
    tmp_path: Path, unit_text: str
) -> None:
    duration_s = 3
    config = EdgeConfig(
        vehicle_id="van-sandbox",
        # A name, resolved under RestrictAddressFamilies=; port 9 refuses the connection.
        broker=BrokerConfig(host="localhost", port=9, username="van-sandbox", password="unused"),
        storage=StorageConfig(state_dir=str(tmp_path / "state")),
    )
    path = tmp_path / "edge.toml"
    path.write_text(render(config))
    path.chmod(0o600)
    agent = [sys.executable, "-m", "fleetsense.cli", "edge", "run", "--config", str(path), "--simulate"]
    sandbox = systemd_sandbox.sandbox_of(unit_text)
    done = subprocess.run(
        systemd_sandbox.command(sandbox, *agent, "--duration", str(duration_s)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    stored = re.search(r"stored (\d+) IMU batches", done.stdout)
    assert stored and int(stored.group(1)) >= duration_s - 1, done.stdout
    assert "Operation not permitted" not in done.stderr, done.stderr  # no call the sandbox refused
    assert "cannot reach localhost:9: [Errno 111] Connection refused" in done.stderr, done.stderr  # tried for real


def test_the_rebuilt_sandbox_refuses_an_address_family_the_unit_does_not_list() -> None:
    # The model of RestrictAddressFamilies= itself, checked: a packet socket (AF_PACKET) is refused.
    code = "import socket\ntry: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)\nexcept OSError as e: print(e.errno)"
    sandbox = systemd_sandbox.sandbox_of(shipped())
    done = subprocess.run(systemd_sandbox.command(sandbox, sys.executable, "-c", code), capture_output=True, text=True)
    assert done.stdout.strip() == str(errno.EAFNOSUPPORT), (done.stdout, done.stderr)
