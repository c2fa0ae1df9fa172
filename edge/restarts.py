"""The agent's memory across its own restarts, in small files of the state directory: how often it was started and
how often without a clean stop before (`run.json`, written at start and at a clean stop: two fsynced writes per
run), and the UTC offset of the monotonic clock of recent boots that were synchronised (`boot-clock.json`, written
when a boot's clock becomes known good), so batches held for a boot are re-timed even after the agent restarts."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fleetsense.edge.retime import BootOffset

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
BOOT_CLOCK_FILE = "boot-clock.json"
BOOTS_KEPT = 8  # offsets of this many recent boots: held batches older than that are long gone or sent


@dataclass(frozen=True)
class RunRecord:
    starts: int = 0  # starts since the state directory was made
    unclean_starts: int = 0  # starts that found no clean stop of the run before
    running: bool = False  # set at start, cleared at a clean stop: still set at the next start means a crash

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)


def begin_run(previous: RunRecord | None) -> RunRecord:
    if previous is None:
        return RunRecord(starts=1, running=True)
    return RunRecord(previous.starts + 1, previous.unclean_starts + previous.running, running=True)


def lost_ms(previous_end_us: int | None, first_start_us: int | None) -> int | None:
    """Time without samples between the end of the previous run's last batch (its last sample plus one period) and
    this run's first sample; None when either is not known in true UTC."""
    if previous_end_us is None or first_start_us is None:
        return None
    return (first_start_us - previous_end_us) // 1000


# -- files ---------------------------------------------------------------------------------------------------


def write_atomically(path: Path, text: str) -> None:
    """The whole new content or the whole old one, after a power cut too (fsync, rename, fsync the directory)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s is unreadable (%s): starting it again", path, exc)
        return None


def load_run(path: Path) -> RunRecord | None:
    data = _read_json(path)
    try:
        return RunRecord(int(data["starts"]), int(data["unclean_starts"]), bool(data["running"]))
    except (TypeError, KeyError, ValueError):
        if data is not None:
            log.warning("%s does not hold a run record: counting restarts from zero", path)
        return None


def load_offsets(path: Path) -> dict[str, BootOffset]:
    data = _read_json(path)
    if not isinstance(data, dict):
        return {}
    offsets: dict[str, BootOffset] = {}
    for boot_id, value in data.items():
        try:
            offsets[str(boot_id)] = BootOffset(int(value["utc_minus_mono_ns"]), bool(value["verified"]))
        except (TypeError, KeyError, ValueError):
            continue
    return offsets


def save_offsets(path: Path, offsets: dict[str, BootOffset]) -> None:
    """Insertion order is age: the newest boots are kept."""
    newest = list(offsets.items())[-BOOTS_KEPT:]
    write_atomically(path, json.dumps({boot: asdict(offset) for boot, offset in newest}) + "\n")


class RunBook:
    """Opened at start (records the start), closed at a clean stop (records that)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / RUN_FILE
        state_dir.mkdir(parents=True, exist_ok=True)
        previous = load_run(self.path)
        self.record = begin_run(previous)
        self.last_stop_clean = previous is None or not previous.running
        self._store()

    def clean_stop(self) -> None:
        self.record = RunRecord(self.record.starts, self.record.unclean_starts, running=False)
        self._store()

    def _store(self) -> None:
        try:
            write_atomically(self.path, json.dumps(asdict(self.record)) + "\n")
        except OSError as exc:
            # Bookkeeping must never stop sampling (a full disk is reported by the outbox).
            log.warning("cannot record the run in %s: %s", self.path, exc)
