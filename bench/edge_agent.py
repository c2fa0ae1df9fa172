"""Edge agent benchmark: CPU per vehicle-hour, flash writes per telemetry byte and store latency, for the outbox
before issue 13 (SQLite, one fsynced transaction per batch; loaded from git) and the current one side by side.

    python bench/edge_agent.py [--seconds 300] [--wear-seconds 90] [--latency-count 2000] [--old-rev REV]
                               [--real-agent --seconds-real 120]

Prints one JSON object (progress on stderr).

- **CPU** (`cpu`): the agent (drivers, FIFO draining, windowing, wire encoding, outbox) on firmware-sim's chips in
  virtual time, in-process, without the MQTT link; the simulator's physics is measured alone and subtracted.
  With `--real-agent` (root or not): the real `fleetsense edge run --simulate` process against a private RabbitMQ
  node (`.fleetsense-bench/edge-agent`, ports offset 700), its CPU from the kernel (children's rusage), the
  physics share subtracted the same way.
- **Flash writes** (`wear`): bytes the filesystem sent to the block device per byte of telemetry, for a connected
  vehicle in real time (one IMU + one barometer batch per second, real payloads, each acknowledged ~0.2 s after
  it became sendable). As root: a fresh ext4 image on a loop device per store, sectors written from
  /sys/block/loopN/stat (journal, metadata and writeback included, after a final sync). Otherwise:
  /proc/self/io write_bytes of the process (data only, no journal: a lower bound).
- **Store latency** (`store_latency_ms`): time of `append` (p50/p99/max) with an empty outbox and a full one
  (max_bytes 64 MiB reached, so every group may drop the oldest), on the same kind of filesystem.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from fleetsense.edge.outbox import Outbox
from fleetsense.edge.storage_io import Disk
from fleetsense.sim.fleet import vehicle_physics

from fleetsense import wire
from fleetsense.device_config import BrokerConfig, EdgeConfig, StorageConfig
from fleetsense.load import virtual_drive
from fleetsense.load.virtual_drive import record_drive

ROOT = Path(__file__).resolve().parents[1]
OLD_REV = "7a9a72a"  # the last commit with the SQLite outbox (issue 13 replaced it)
FULL_BYTES = 64 * 1024 * 1024


class Store(Protocol):
    def append(self, topic: str, make_payload: Callable[[int], bytes]) -> Any: ...
    def pending(self, *, after_id: int = 0, limit: int = 100) -> list[Any]: ...
    def acknowledge(self, entry_id: int) -> None: ...
    def close(self) -> None: ...


def say(message: str) -> None:
    print(f"[edge_agent] {message}", file=sys.stderr, flush=True)


def old_outbox_module(rev: str) -> ModuleType:
    """The SQLite outbox as it was at `rev`, imported from git into a temporary module."""
    source = subprocess.run(
        ["git", "show", f"{rev}:edge/outbox.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="old-outbox-")) / "old_outbox.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_outbox", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_outbox"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def old_store(old: ModuleType) -> type:
    """The old SQLite outbox behind today's Outbox API (boot id and monotonic time taken and dropped, stats and
    entries in today's types), so today's agent runs on it unchanged: only the store differs."""
    from fleetsense.edge import outbox as new

    class OldStore(old.Outbox):  # type: ignore[misc,name-defined]
        def __init__(self, directory: Path, *, max_bytes: int, **_: Any) -> None:
            super().__init__(directory, max_bytes=max_bytes)

        def append(self, topic: str, make_payload: Any, *, boot_id: str = "", mono_ns: int | None = None) -> Any:
            entry = super().append(topic, make_payload)
            return new.Entry(entry.id, entry.seq, entry.topic, entry.payload, boot_id, mono_ns)

        def pending(self, *, after_id: int = 0, limit: int = 100) -> list[Any]:
            return [new.Entry(e.id, e.seq, e.topic, e.payload) for e in super().pending(after_id=after_id, limit=limit)]

        def stats(self) -> Any:
            s = super().stats()
            return new.OutboxStats(
                depth=s.depth,
                bytes=s.bytes,
                oldest_seq=s.oldest_seq,
                next_seq=s.next_seq,
                dropped_total=s.dropped_total,
                set_aside=s.set_aside,
                quarantined=s.quarantined,
            )

        def flush(self) -> bool:
            return True  # every append was committed on its own

        def last_appended(self) -> None:
            return None

    return OldStore


class TunedSqlite:
    """The alternative measured against the segment log (flash writes only): SQLite in WAL mode tuned as far as
    it goes without a rewrite: the seq is the rowid (no index, no AUTOINCREMENT table, no meta row), groups of
    `group` batches per transaction, acknowledged rows deleted in ranges every 10 s, the WAL capped at 1 MiB."""

    def __init__(self, directory: Path, *, synchronous: str, group: int = 4) -> None:
        import sqlite3

        directory.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(directory / "outbox.sqlite", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.execute("PRAGMA journal_size_limit=1048576")
        self.db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, topic TEXT, payload BLOB)")
        self.group, self.buffer, self.acked = group, list[tuple[int, str, bytes]](), list[int]()
        self.next_seq, self.last_delete = 0, time.monotonic()

    def append(self, topic: str, make_payload: Callable[[int], bytes]) -> None:
        self.buffer.append((self.next_seq, topic, make_payload(self.next_seq)))
        self.next_seq += 1
        if len(self.buffer) >= self.group:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO outbox VALUES (?, ?, ?)", self.buffer)
            self.db.execute("COMMIT")
            self.buffer = []

    def pending(self, *, after_id: int = 0, limit: int = 100) -> list[Any]:
        from fleetsense.edge.outbox import Entry

        rows = self.db.execute("SELECT seq, topic, payload FROM outbox WHERE seq >= ? LIMIT ?", (after_id, limit))
        return [Entry(seq + 1, seq, topic, payload) for seq, topic, payload in rows if seq + 1 not in self.acked]

    def acknowledge(self, entry_id: int) -> None:
        self.acked.append(entry_id)
        if time.monotonic() - self.last_delete >= 10:
            self.db.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (min(self.acked) - 1, max(self.acked) - 1))
            self.acked, self.last_delete = [], time.monotonic()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.db.close()


def open_store(kind: str, old: ModuleType, directory: Path, max_bytes: int, disk: Disk | None = None) -> Store:
    if kind == "old":
        return old.Outbox(directory, max_bytes=max_bytes)  # type: ignore[no-any-return]
    if kind.startswith("sqlite_tuned_"):
        return TunedSqlite(directory, synchronous=kind.removeprefix("sqlite_tuned_").upper())
    return Outbox(directory, max_bytes=max_bytes, disk=disk)


# -- real batches ----------------------------------------------------------------------------------------------


def bench_config(state_dir: str) -> EdgeConfig:
    return EdgeConfig(
        vehicle_id="bench-van",
        broker=BrokerConfig(host="127.0.0.1", username="bench-van", password="unused"),
        storage=StorageConfig(state_dir=state_dir),
    )


def real_payloads(seconds: int = 60) -> tuple[list[bytes], list[bytes]]:
    """The agent's own IMU and barometer batches from a simulated drive."""
    with tempfile.TemporaryDirectory() as tmp:
        record_drive(bench_config(tmp), seconds=seconds)
        box = Outbox(Path(tmp) / "outbox", max_bytes=1 << 30)
        entries = box.pending(limit=100_000)
        box.close()
    kinds = [(wire.decode_header(e.payload).kind, e.payload) for e in entries]
    return [p for k, p in kinds if k == wire.Kind.IMU], [p for k, p in kinds if k == wire.Kind.BARO]


# -- CPU -------------------------------------------------------------------------------------------------------


def physics_cpu_s(seconds: float) -> float:
    """The simulator's physics alone, sampled as the simulated chips sample it (IMU 100 Hz, barometer 26 Hz)."""
    physics = vehicle_physics("bench-van", start_ns=0)
    start = time.process_time()
    for i in range(int(seconds * 100)):
        physics.imu_at(i / 100)
    for i in range(int(seconds * 26)):
        physics.environment_at(i / 26)
    return time.process_time() - start


def agent_cpu_in_process(seconds: float, old: ModuleType) -> dict[str, Any]:
    scale = 3600.0 / seconds
    physics = physics_cpu_s(seconds)
    result: dict[str, Any] = {"simulated_seconds": seconds, "physics_cpu_s_per_vehicle_hour": round(physics * scale, 2)}
    for kind in ("old", "new"):
        with tempfile.TemporaryDirectory() as tmp:
            original = virtual_drive.Outbox
            if kind == "old":
                virtual_drive.Outbox = old_store(old)  # type: ignore[misc]
            try:
                start = time.process_time()
                drive = record_drive(bench_config(tmp), seconds=seconds)
                total = time.process_time() - start
            finally:
                virtual_drive.Outbox = original  # type: ignore[misc]
        result[kind] = {
            "batches": drive.imu_batches + drive.baro_batches,
            "cpu_s_per_vehicle_hour_total": round(total * scale, 2),
            "cpu_s_per_vehicle_hour_agent": round((total - physics) * scale, 2),
        }
    return result


# -- flash writes ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def flash(size_mib: int = 256) -> Iterator[tuple[Path, Callable[[], int], str]]:
    """A directory on a fresh ext4 image on a loop device and a reader of the device's bytes written (root);
    otherwise a temporary directory and this process's write_bytes."""
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        image, mount = Path(tmp) / "flash.img", Path(tmp) / "mnt"
        mount.mkdir()
        if os.geteuid() == 0:
            subprocess.run(["truncate", "-s", f"{size_mib}M", str(image)], check=True)
            # No lazy init: the kernel would zero inode tables in the background, inside the measurement.
            mkfs = ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image)]
            subprocess.run(mkfs, check=True)
            subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
            try:
                source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mount)], capture_output=True, text=True)
                stat = Path("/sys/block") / Path(source.stdout.strip()).name / "stat"
                yield mount, lambda: int(stat.read_text().split()[6]) * 512, "loop-device sectors written (ext4)"
            finally:
                subprocess.run(["umount", str(mount)], check=True)
        else:
            yield mount, proc_write_bytes, "/proc/self/io write_bytes (no journal: a lower bound)"


def proc_write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def wear(kind: str, old: ModuleType, seconds: float, imu: list[bytes], baro: list[bytes]) -> dict[str, Any]:
    """A connected vehicle in real time: one IMU and one barometer batch a second, each acknowledged about 0.2 s
    after the store lets the link have it."""
    with flash() as (mount, written, method):
        store = open_store(kind, old, mount / "outbox", FULL_BYTES)
        for payload in (imu[0], baro[0]) * 2:  # warm-up: the database or the first segment exists
            store.append("fleet/bench-van/telemetry", lambda seq, p=payload: p)  # type: ignore[misc]
        if isinstance(store, Outbox):
            store.flush()
        os.sync()
        start, telemetry, second = written(), 0, 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            for payload in (imu[second % len(imu)], baro[second % len(baro)]):
                store.append("fleet/bench-van/telemetry", lambda seq, p=payload: p)  # type: ignore[misc]
                telemetry += len(payload)
            time.sleep(0.2)
            for entry in store.pending(limit=100):
                store.acknowledge(entry.id)
            second += 1
            time.sleep(max(0.0, started + second - time.monotonic()))
        store.close()
        os.sync()
        device = written() - start
    return {
        "method": method,
        "seconds": round(seconds, 1),
        "telemetry_bytes": telemetry,
        "device_bytes_written": device,
        "bytes_written_per_telemetry_byte": round(device / telemetry, 2),
        "device_bytes_per_day_mb": round(device / seconds * 86400 / 1e6, 1),
    }


# -- store latency ---------------------------------------------------------------------------------------------


class NoSync(Disk):
    """For filling a store quickly before timing it: the fill's own durability is not what is measured."""

    def fdatasync(self, fd: int) -> None:
        pass

    def fsync_dir(self, directory: Path) -> None:
        pass


def fill(kind: str, old: ModuleType, directory: Path, payloads: list[bytes]) -> None:
    """Bring a store to its 64 MiB bound with real batches."""
    if kind == "old":
        import sqlite3

        old.Outbox(directory, max_bytes=FULL_BYTES).close()
        db = sqlite3.connect(directory / "outbox.sqlite", isolation_level=None)
        db.execute("BEGIN")
        rows = [(seq, "fleet/bench-van/telemetry", payloads[seq % len(payloads)], 0) for seq in range(120_000)]
        db.executemany("INSERT INTO outbox (seq, topic, payload, created_ns) VALUES (?, ?, ?, ?)", rows)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_seq', 120000)")
        db.execute("COMMIT")
        db.close()
        return
    box = Outbox(directory, max_bytes=FULL_BYTES, disk=NoSync())
    while box.stats().dropped_total == 0:
        for payload in payloads[:500]:
            box.append("fleet/bench-van/telemetry", lambda seq, p=payload: p)  # type: ignore[misc]
    box.close()


def store_latency(kind: str, old: ModuleType, count: int, payloads: list[bytes]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for state in ("empty", "full"):
        with flash(512) as (mount, _, _method):
            directory = mount / "outbox"
            if state == "full":
                fill(kind, old, directory, payloads)
            store = open_store(kind, old, directory, FULL_BYTES)
            times = []
            for i in range(count):
                payload = payloads[i % len(payloads)]
                began = time.perf_counter()
                store.append("fleet/bench-van/telemetry", lambda seq, p=payload: p)  # type: ignore[misc]
                times.append(time.perf_counter() - began)
            store.close()
        result[state] = summary_ms(times)
    return result


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    quantiles = statistics.quantiles(ms, n=100)
    return {"count": len(ms), "p50": round(quantiles[49], 3), "p99": round(quantiles[98], 3), "max": round(ms[-1], 3)}


# -- retention -------------------------------------------------------------------------------------------------


def retention(imu: list[bytes], baro: list[bytes]) -> dict[str, Any]:
    """How long a full outbox lasts offline: payload per second and the segment log's overhead per record."""
    from fleetsense.edge.outbox import SMALL_FILES_BYTES
    from fleetsense.edge.segment_log import Record, encode_record

    topic = "fleet/bench-van/telemetry"
    imu_mean, baro_mean = statistics.fmean(map(len, imu)), statistics.fmean(map(len, baro))
    on_disk = statistics.fmean(len(encode_record(Record(0, topic, p, "x" * 36))) for p in imu) + statistics.fmean(
        len(encode_record(Record(0, topic, p, "x" * 36))) for p in baro
    )
    usable = FULL_BYTES - SMALL_FILES_BYTES
    return {
        "imu_batch_bytes_mean": round(imu_mean, 1),
        "baro_batch_bytes_mean": round(baro_mean, 1),
        "payload_bytes_per_s": round(imu_mean + baro_mean, 1),
        "stored_bytes_per_s": round(on_disk, 1),
        "hours_in_64_mib": round(usable / on_disk / 3600, 1),
    }


# -- the real agent against a broker ----------------------------------------------------------------------------


# The real agent process with the old store: the same CLI, its outbox swapped for the SQLite one from git.
OLD_STORE_LAUNCHER = """
import sys
sys.path.insert(0, sys.argv[1])
from edge_agent import old_outbox_module
import fleetsense.edge.runtime as runtime
old = old_outbox_module(sys.argv[2])
from edge_agent import old_store
OldStore = old_store(old)
runtime.open_outbox = lambda c: OldStore(c.state_dir / "outbox", max_bytes=c.outbox.max_bytes)
from fleetsense.cli import main
sys.argv = ["fleetsense", *sys.argv[3:]]
sys.exit(main())
"""


def real_agent_cpu(seconds: float, ports_offset: int, *, old_rev: str | None = None) -> dict[str, Any]:
    """`fleetsense edge run --simulate` as its own process, publishing to a private RabbitMQ node."""
    import resource

    from fleetsense.gateway import topology

    from fleetsense.device_config import load, render
    from fleetsense.stack import manager
    from fleetsense.stack.layout import Ports, StackConfig
    from fleetsense.stack.rabbitmq import RabbitMQ

    config = StackConfig(
        data_dir=(ROOT / ".fleetsense-bench" / "edge-agent").absolute(),
        ports=Ports().offset(ports_offset),
        name="fleetsense-edge-bench",
    )
    broker = RabbitMQ(config)
    say("real agent: starting a private broker")
    broker.stop()
    broker.start()
    try:
        client = manager.management_client(config)
        topology.apply(client, operator=broker.operator.username)
        with flash() as (mount, written, method):
            vehicle = f"bench-{int(time.time())}"
            device = load(manager.provision_vehicle(config, client, vehicle, out_dir=mount))
            import dataclasses

            device = dataclasses.replace(device, storage=StorageConfig(state_dir=str(mount / "state")))
            config_path = mount / "edge.toml"
            config_path.write_text(render(device))
            os.sync()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            say(f"real agent: running {seconds:.0f} s")
            command = ["edge", "run", "--simulate", "--config", str(config_path), "--duration", str(seconds)]
            if old_rev is None:
                argv = [sys.executable, "-m", "fleetsense.cli", *command]
            else:
                argv = [sys.executable, "-c", OLD_STORE_LAUNCHER, str(Path(__file__).parent), old_rev, *command]
            agent = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            # Steady state: from WARMUP_S (imports done, connected, first segment made) to 5 s before the end.
            time.sleep(WARMUP_S)
            os.sync()
            window_start, cpu_start, bytes_start = time.monotonic(), process_cpu_s(agent.pid), written()
            time.sleep(seconds - WARMUP_S - 5)
            os.sync()
            window_s = time.monotonic() - window_start
            cpu_window, bytes_window = process_cpu_s(agent.pid) - cpu_start, written() - bytes_start
            output = agent.communicate(timeout=120)[0]
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_whole = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        physics = physics_cpu_s(window_s)
        scale = 3600.0 / window_s
        telemetry = retention_rate_bytes_per_s()
        return {
            "seconds": seconds,
            "steady_window_s": round(window_s, 1),
            "exit_code": agent.returncode,
            "summary": output.strip().splitlines()[-1:],
            "cpu_s_whole_run_incl_start_up": round(cpu_whole, 2),
            "cpu_s_per_vehicle_hour_steady": round(cpu_window * scale, 2),
            "cpu_s_per_vehicle_hour_steady_without_physics": round((cpu_window - physics) * scale, 2),
            "device_bytes_per_telemetry_byte_steady": round(bytes_window / (telemetry * window_s), 2),
            "wear_method": method,
            "note": "the real process: sampling, outbox, MQTT link with acks (TLS off), status heartbeats",
        }
    finally:
        broker.stop()


WARMUP_S = 20.0


def process_cpu_s(pid: int) -> float:
    """utime + stime of a running process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def retention_rate_bytes_per_s() -> float:
    imu, baro = real_payloads(20)
    return statistics.fmean(map(len, imu)) + statistics.fmean(map(len, baro))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="simulated driving time for the CPU figure")
    parser.add_argument("--wear-seconds", type=float, default=90.0, help="real time per store for the writes")
    parser.add_argument("--latency-count", type=int, default=2000, help="appends timed per store and state")
    parser.add_argument("--old-rev", default=OLD_REV, help="git revision holding the old SQLite outbox")
    parser.add_argument("--real-agent", action="store_true", help="also run the real agent against a broker")
    parser.add_argument("--seconds-real", type=float, default=120.0)
    parser.add_argument("--ports-offset", type=int, default=700)
    parser.add_argument("--only-real-agent", action="store_true", help="skip the store measurements")
    args = parser.parse_args()
    if args.only_real_agent:
        real = {
            "new": real_agent_cpu(args.seconds_real, args.ports_offset),
            "old": real_agent_cpu(args.seconds_real, args.ports_offset, old_rev=args.old_rev),
        }
        print(json.dumps({"real_agent": real}, indent=2))
        return
    old = old_outbox_module(args.old_rev)
    imu, baro = real_payloads()
    result: dict[str, Any] = {
        "bench": "edge_agent",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "old_store": f"SQLite outbox at {args.old_rev}",
        "new_store": "segment log (edge/segment_log.py), group commit of 4",
        "retention": retention(imu, baro),
    }
    say("CPU in process")
    result["cpu"] = agent_cpu_in_process(args.seconds, old)
    result["store_latency_ms"] = {}
    result["wear"] = {}
    for kind in ("old", "new"):
        say(f"{kind}: store latency")
        result["store_latency_ms"][kind] = store_latency(kind, old, args.latency_count, imu + baro)
        say(f"{kind}: flash writes for {args.wear_seconds:.0f} s")
        result["wear"][kind] = wear(kind, old, args.wear_seconds, imu, baro)
    # A segment is written once as zeros when it is made (outside the measured window): per telemetry byte, the
    # stored bytes per payload byte. Added to the measured figure for the steady state.
    per_byte = result["retention"]["stored_bytes_per_s"] / result["retention"]["payload_bytes_per_s"]
    new_wear = result["wear"]["new"]
    new_wear["segment_preallocation_per_telemetry_byte"] = round(per_byte, 2)
    new_wear["steady_state_per_telemetry_byte"] = round(new_wear["bytes_written_per_telemetry_byte"] + per_byte, 2)
    for kind in ("sqlite_tuned_full", "sqlite_tuned_normal"):
        say(f"{kind}: flash writes for {args.wear_seconds:.0f} s")
        result["wear"][kind] = wear(kind, old, args.wear_seconds, imu, baro)
    if args.real_agent:
        result["real_agent"] = {
            "new": real_agent_cpu(args.seconds_real, args.ports_offset),
            "old": real_agent_cpu(args.seconds_real, args.ports_offset, old_rev=args.old_rev),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
