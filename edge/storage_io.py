"""The one seam between the outbox and the disk: every file operation of the segment log, the ack file and the
sequence reservation goes through a `Disk`, and the SQLite side store asks `Disk.check` before each statement,
so a test can make any single storage call fail (ENOSPC, EROFS, EIO) and check that nothing escapes."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class Disk:
    """Thin wrappers over os.*; names follow the system calls. Subclass and override `check` to inject faults."""

    def check(self, op: str) -> None:
        """Called before every storage call, with the call's name (e.g. "pwrite", "sqlite")."""

    def open(self, path: Path, flags: int) -> int:
        self.check("open")
        return os.open(path, flags | os.O_CLOEXEC, 0o600)

    def close(self, fd: int) -> None:
        os.close(fd)  # never fails in a way that loses data we still count on (fdatasync came first)

    def pwrite(self, fd: int, data: bytes, offset: int) -> None:
        self.check("pwrite")
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        self.check("pread")
        return os.pread(fd, size, offset)

    def fdatasync(self, fd: int) -> None:
        self.check("fdatasync")
        os.fdatasync(fd)

    def fsync_dir(self, directory: Path) -> None:
        """Make a file's creation, rename or removal durable (its directory entry)."""
        self.check("fsync_dir")
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def unlink(self, path: Path) -> None:
        self.check("unlink")
        path.unlink(missing_ok=True)

    def replace(self, source: Path, target: Path) -> None:
        self.check("replace")
        os.replace(source, target)

    def write_file_durably(self, path: Path, text: str) -> None:
        """Write-to-temporary, fsync, rename, fsync the directory: the file has the old or the new text."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = self.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            self.pwrite(fd, text.encode(), 0)
            self.check("fsync")
            os.fsync(fd)
        finally:
            self.close(fd)
        self.replace(tmp, path)
        self.fsync_dir(path.parent)

    def free_bytes(self, directory: Path) -> int:
        self.check("statvfs")
        stat = os.statvfs(directory)
        return stat.f_bavail * stat.f_frsize


def is_storage_fault(exc: BaseException) -> bool:
    """An OSError from a failing disk, or SQLite's word for one ("database or disk is full", "disk I/O error",
    "attempt to write a readonly database", a corrupt page)."""
    import sqlite3

    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return False  # our bug, not the disk's
    return isinstance(exc, OSError | sqlite3.DatabaseError)


def describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror or exc}"
    return str(exc)
