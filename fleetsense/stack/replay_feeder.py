"""The feeder of a result version's replay (docs/reprocessing.md), a process of its own: `job reprocess` starts it
detached, `job promote` stops it and runs one last pass itself. It copies the parent version's days before the
replay once, then passes over the log (cloud/log_replay.py) until stopped, saving its progress in
<data dir>/flink/reprocess/r<N>.progress.json, which `job status` reads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fleetsense.cloud.log_replay import FeedProgress
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.errors import FleetsenseError
from fleetsense.gateway.topology import FLEET_VHOST, replay_queue
from fleetsense.stack import cassandra_auth
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.secrets import write_private
from fleetsense.stack.version_rules import before_replay

_CONFIG_ENV = "FLEETSENSE_FEEDER_STACK"


PASS_PAUSE_S = 2.0  # between two passes of a feeder that found little to feed


def files_dir(config: StackConfig) -> Path:
    return config.component_dir("flink") / "reprocess"


def progress_path(config: StackConfig, version: int) -> Path:
    return files_dir(config) / f"r{version}.progress.json"


def _pid_path(config: StackConfig, version: int) -> Path:
    return files_dir(config) / f"r{version}.feeder.pid"


def feeder_log(config: StackConfig, version: int) -> Path:
    return files_dir(config) / f"r{version}.feeder.log"


def save_progress(config: StackConfig, progress: FeedProgress) -> None:
    write_private(progress_path(config, progress.version), progress.to_json())


def load_progress(config: StackConfig, version: int) -> FeedProgress | None:
    try:
        return FeedProgress.from_json(progress_path(config, version).read_text())
    except FileNotFoundError:
        return None


def _operator_url(config: StackConfig) -> str:
    from urllib.parse import quote

    from fleetsense.stack.rabbitmq import RabbitMQ

    login = RabbitMQ(config).operator
    return (
        f"amqp://{quote(login.username, safe='')}:{quote(login.password, safe='')}@{LOOPBACK}:{config.ports.amqp}"
        f"/{quote(FLEET_VHOST, safe='')}"
    )


async def feed(config: StackConfig, version: int, *, passes: int | None = None, stop: Any = None) -> FeedProgress:
    """Run the feeder: `passes` passes over the log (None: until `stop` is set), saving progress as it goes."""
    from fleetsense.cloud.log_replay import ConfirmingPublisher, LogReader, ReplayFeeder

    progress = load_progress(config, version)
    if progress is None:
        raise FleetsenseError(f"result version {version} has no replay progress in {progress_path(config, version)}")
    if progress.copied_rows is None:
        progress.copied_rows = copy_history(config, version, before_ms=progress.since_ms)
        save_progress(config, progress)
    queue = replay_queue(version)
    publisher = ConfirmingPublisher(_operator_url(config), queue, queue)
    await publisher.open()
    try:
        with cassandra_auth.session_as(config, cassandra_auth.READER) as session:
            feeder = ReplayFeeder(
                LogReader(session, KEYSPACE),
                publisher.publish,
                progress,
                save=lambda p: save_progress(config, p),
                queued=publisher.queued,
                stopping=stop.is_set if stop is not None else None,
            )
            done = 0
            while passes is None or done < passes:
                fed = await feeder.run_pass()
                done += 1
                if stop is not None and stop.is_set():
                    break
                if passes is None and fed < 100:
                    await asyncio.sleep(PASS_PAUSE_S)
    finally:
        await publisher.close()
    return progress


def copy_history(config: StackConfig, version: int, *, before_ms: int) -> int:
    """The parent version's result rows of the days before the replay's first: copied once, so the version holds
    every day and its parent can be dropped (cells keep their write times: a copy run again changes nothing)."""
    from fleetsense.cloud.result_versions import keyspace_of, read_versions
    from fleetsense.cloud.table_copy import copy_table
    from fleetsense.cloud.tables import RESULT_TABLES

    with cassandra_auth.session_as(config, cassandra_auth.OPERATOR) as session:
        _, versions = read_versions(session, KEYSPACE)
        chosen = next(v for v in versions if v.version == version)
        parent = keyspace_of(KEYSPACE, chosen.parent or 1)
        target = keyspace_of(KEYSPACE, version)
        keep = lambda row: before_replay(row, before_ms)  # noqa: E731
        return sum(copy_table(session, parent, t, t, target_keyspace=target, keep=keep) for t in RESULT_TABLES)


def start_feeder_process(config: StackConfig, version: int) -> int:
    """The feeder, detached (it outlives the command), logging to feeder_log."""
    log = feeder_log(config, version).open("ab")
    import base64
    import pickle

    args = [sys.executable, "-m", "fleetsense.stack.replay_feeder", str(version)]
    env = {**os.environ, _CONFIG_ENV: base64.b64encode(pickle.dumps(config)).decode()}
    child = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    write_private(_pid_path(config, version), str(child.pid))
    return child.pid


def feeder_pid(config: StackConfig, version: int) -> int | None:
    try:
        pid = int(_pid_path(config, version).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    try:  # a feeder this process started and that has exited is a zombie until reaped: os.kill still finds it
        if os.waitpid(pid, os.WNOHANG)[0] != 0:
            return None
    except ChildProcessError:  # not our child: the kill above is the answer
        pass
    return pid


def stop_feeder(config: StackConfig, version: int, *, timeout_s: float = 60.0) -> None:
    """SIGTERM: the feeder finishes the vehicle-day it is publishing (its progress stays exact), then exits."""
    pid = feeder_pid(config, version)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if feeder_pid(config, version) is None:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)  # its progress is as of its last vehicle-day: a re-feed, which the job drops


def _feeder_main(argv: list[str]) -> None:
    """`python -m fleetsense.stack.replay_feeder VERSION`, with the stack's config from the command that started it."""
    import base64
    import logging
    import pickle
    import threading

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # Written by start_feeder_process, this same code, a moment ago: the exact StackConfig (ports, names, profile).
    config = pickle.loads(base64.b64decode(os.environ[_CONFIG_ENV]))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    asyncio.run(feed(config, int(argv[0]), stop=stop))


if __name__ == "__main__":
    _feeder_main(sys.argv[1:])
