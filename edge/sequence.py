"""Per-vehicle batch sequence numbers that survive restarts: a number is never handed out twice."""

from __future__ import annotations

import os
from pathlib import Path


class SequenceCounter:
    """Persists the next number *before* returning the current one, so a crash can skip a number (a gap the
    cloud can see) but never reuse one (which would make the cloud drop real data as a duplicate)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._next = int(path.read_text().strip() or 0)
        except FileNotFoundError:
            self._next = 0

    def allocate(self) -> int:
        current = self._next
        self._store(current + 1)
        self._next = current + 1
        return current

    def _store(self, value: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as out:
            out.write(f"{value}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        # fsync the directory so the rename itself survives a power cut
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
