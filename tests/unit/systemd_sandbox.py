"""The seccomp sandbox systemd builds for a unit, rebuilt here so a test can run a process under it without
systemd as PID 1: the same filters, from the same syscall sets (`systemd-analyze syscall-filter`), loaded with
the same libseccomp, with the same actions systemd 252 uses (src/core/execute.c):

- SystemCallFilter=<allow-list>: default action SystemCallErrorNumber= (EPERM, ...) or, when unset, kill the
  process (SIGSYS); the listed calls allowed. systemd adds @default to every allow-list.
- ProtectClock=yes: a second filter, default allow, @clock answered with EPERM.
- ProtectKernelModules=yes: a third, @module answered with EPERM.
- RestrictAddressFamilies=<allow-list>: a fourth, socket(2) for any other family answered with EAFNOSUPPORT.
- CapabilityBoundingSet= (empty) and NoNewPrivileges=yes: every capability dropped before the exec.

The kernel runs every loaded filter and keeps the strongest verdict (kill > errno > allow), as under systemd.
Run as `python systemd_sandbox.py '<spec json>' -- command ...`: applies the spec, then execs the command."""

from __future__ import annotations

import configparser
import ctypes
import ctypes.util
import errno
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name: no such call on any architecture libseccomp knows
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
CAP_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"


@dataclass(frozen=True)
class Sandbox:
    allow: list[str] | None  # SystemCallFilter= names (calls and @groups); None: no allow-list
    errno_name: str | None  # SystemCallErrorNumber=; None: a denied call kills the process
    protect_clock: bool
    protect_kernel_modules: bool
    drop_capabilities: bool  # CapabilityBoundingSet= empty
    no_new_privileges: bool
    address_families: list[str] | None = None  # RestrictAddressFamilies= (AF_INET, ...); None: any


def yes(value: str | None) -> bool:
    return (value or "").strip().lower() in ("yes", "true", "1", "on")


def sandbox_of(unit_text: str) -> Sandbox:
    """The seccomp-relevant settings of a unit's [Service] section (several SystemCallFilter= lines add up)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    allow: list[str] = []
    for line in unit_text.splitlines():  # configparser keeps only the last of repeated keys
        key, _, value = line.partition("=")
        if key.strip() == "SystemCallFilter":
            assert not value.strip().startswith("~"), "deny-list filters are not modelled here"
            allow += value.split()
    parser.read_string(unit_text)
    service = parser["Service"]
    return Sandbox(
        allow=allow or None,
        errno_name=service.get("SystemCallErrorNumber") or None,
        protect_clock=yes(service.get("ProtectClock")),
        protect_kernel_modules=yes(service.get("ProtectKernelModules")),
        drop_capabilities="CapabilityBoundingSet" in service and not service["CapabilityBoundingSet"].strip(),
        no_new_privileges=yes(service.get("NoNewPrivileges")),
        address_families=service["RestrictAddressFamilies"].split() if "RestrictAddressFamilies" in service else None,
    )


@functools.cache
def syscalls_in(name: str) -> frozenset[str]:
    """A call, or every call in a @group (nested groups expanded), as this machine's systemd defines it."""
    if not name.startswith("@"):
        return frozenset([name])
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install the `systemd` package (scripts/dev.sh does)"
    listing = subprocess.run([analyze, "syscall-filter", name], capture_output=True, text=True, check=True).stdout
    calls: set[str] = set()
    for line in listing.splitlines()[1:]:  # the first line is the group's name
        item = line.strip()
        if item and not item.startswith("#"):
            calls |= syscalls_in(item)
    return frozenset(calls)


def expanded(sandbox: Sandbox) -> dict[str, list[str]]:
    """The spec with every group expanded (done by the test, where systemd-analyze runs unconfined)."""
    names = set(syscalls_in("@default"))  # systemd adds it to every allow-list
    for item in sandbox.allow or []:
        names |= syscalls_in(item)
    return {
        "allow": sorted(names) if sandbox.allow else [],
        "clock": sorted(syscalls_in("@clock")) if sandbox.protect_clock else [],
        "module": sorted(syscalls_in("@module")) if sandbox.protect_kernel_modules else [],
    }


def command(sandbox: Sandbox, *argv: str) -> list[str]:
    spec = {"sandbox": asdict(sandbox), "calls": expanded(sandbox)}
    return [sys.executable, os.path.abspath(__file__), json.dumps(spec), "--", *argv]


# -- the launcher (runs in the child, before the exec) ---------------------------------------------------------


def load_filter(libseccomp: ctypes.CDLL, default_action: int, action: int, calls: list[str]) -> None:
    ctx = libseccomp.seccomp_init(ctypes.c_uint32(default_action))
    assert ctx, "seccomp_init failed"
    try:
        for name in calls:
            number = libseccomp.seccomp_syscall_resolve_name(name.encode())
            if number == NR_SCMP_ERROR:
                continue  # unknown to libseccomp: systemd skips it too
            rc = libseccomp.seccomp_rule_add_array(
                ctypes.c_void_p(ctx), ctypes.c_uint32(action), ctypes.c_int(number), ctypes.c_uint(0), None
            )
            if rc < 0 and rc != -errno.EDOM:  # EDOM: not a call on this architecture (systemd ignores it)
                raise OSError(-rc, f"seccomp_rule_add({name}): {os.strerror(-rc)}")
        rc = libseccomp.seccomp_load(ctypes.c_void_p(ctx))
        if rc < 0:
            raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")
    finally:
        libseccomp.seccomp_release(ctypes.c_void_p(ctx))


class ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


SCMP_CMP_EQ = 4
SCMP_CMP_GE = 5
AF_MAX = 46  # linux/socket.h (6.x): families are 0..45


def load_family_filter(libseccomp: ctypes.CDLL, families: list[str]) -> None:
    """socket(2) with a family outside the list fails with EAFNOSUPPORT, as RestrictAddressFamilies= does."""
    allowed = {int(getattr(socket, name)) for name in families}
    ctx = libseccomp.seccomp_init(ctypes.c_uint32(SCMP_ACT_ALLOW))
    number = libseccomp.seccomp_syscall_resolve_name(b"socket")
    refuse = ctypes.c_uint32(SCMP_ACT_ERRNO | errno.EAFNOSUPPORT)
    try:
        rules = [ArgCmp(0, SCMP_CMP_EQ, family, 0) for family in range(AF_MAX) if family not in allowed]
        rules.append(ArgCmp(0, SCMP_CMP_GE, AF_MAX, 0))
        for rule in rules:
            rc = libseccomp.seccomp_rule_add_array(
                ctypes.c_void_p(ctx), refuse, ctypes.c_int(number), ctypes.c_uint(1), ctypes.byref(rule)
            )
            if rc < 0:
                raise OSError(-rc, f"seccomp_rule_add(socket): {os.strerror(-rc)}")
        rc = libseccomp.seccomp_load(ctypes.c_void_p(ctx))
        if rc < 0:
            raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")
    finally:
        libseccomp.seccomp_release(ctypes.c_void_p(ctx))


def apply(spec: dict[str, object]) -> None:
    sandbox = Sandbox(**spec["sandbox"])  # type: ignore[arg-type]
    calls: dict[str, list[str]] = spec["calls"]  # type: ignore[assignment]
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if sandbox.drop_capabilities:
        with open(CAP_LAST_CAP_FILE) as f:
            last = int(f.read())
        for capability in range(last + 1):
            if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EPERM:
                raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")  # EPERM: not root, nothing to drop
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:  # needed to load a filter unprivileged, as systemd does
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    libseccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    libseccomp.seccomp_init.restype = ctypes.c_void_p
    denied = SCMP_ACT_KILL_PROCESS
    if sandbox.errno_name:
        denied = SCMP_ACT_ERRNO | getattr(errno, sandbox.errno_name)
    if sandbox.address_families:
        load_family_filter(libseccomp, sandbox.address_families)
    if calls["module"]:
        load_filter(libseccomp, SCMP_ACT_ALLOW, SCMP_ACT_ERRNO | errno.EPERM, calls["module"])
    if calls["clock"]:
        load_filter(libseccomp, SCMP_ACT_ALLOW, SCMP_ACT_ERRNO | errno.EPERM, calls["clock"])
    if calls["allow"]:  # last, as systemd does: the allow-list has no seccomp(2), so no filter could follow it
        load_filter(libseccomp, denied, SCMP_ACT_ALLOW, calls["allow"])


if __name__ == "__main__":
    separator = sys.argv.index("--")
    apply(json.loads(sys.argv[1]))
    argv = sys.argv[separator + 1 :]
    os.execv(argv[0], argv)
