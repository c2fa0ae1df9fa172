"""Secrets never appear in logs, in command lines anyone can read with `ps`, or in what git would commit."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from fleetsense.stack import manager
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.rabbitmq import RabbitMQ

from .helpers import provision_vehicle, tap, unique_vehicle


def _command_lines() -> dict[int, str]:
    lines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # exited meanwhile
    return lines


def test_no_secret_is_in_a_log_a_command_line_or_an_unignored_file(
    stack: StackConfig, operator_client: Any, ingest_job: str, tmp_path: Path
) -> None:
    from fleetsense.edge.runtime import send_outbox

    from fleetsense.load.virtual_drive import record_drive

    vid = unique_vehicle("secret")
    device = provision_vehicle(operator_client, stack, vid, tmp_path)
    with tap(stack, operator_client, vid) as t:  # the device logs in and publishes: the broker logs the login
        record_drive(device, seconds=1)
        assert send_outbox(device, timeout_s=30) == 0
        assert t.telemetry()
    secrets = {
        "operator password": RabbitMQ(stack).operator.password,
        "Flink job's broker password": manager.flink_job_credentials(stack).password,
        "device password": device.broker.password,
    }
    assert all(len(value) >= 32 for value in secrets.values())

    logs = [path for path in (stack.data_dir / "logs").rglob("*") if path.is_file()]
    assert len(logs) >= 5, "expected the broker's, Cassandra's and Flink's logs"
    for path in logs:
        text = path.read_bytes()
        for what, value in secrets.items():
            assert value.encode() not in text, f"the {what} is in {path}"
    for pid, line in _command_lines().items():
        for what, value in secrets.items():
            assert value not in line, f"the {what} is on the command line of pid {pid}: visible in ps"

    # Every file holding a secret is private to its owner and would never be committed.
    holders = [*stack.secrets_dir.rglob("*.json"), RabbitMQ(stack).home / "rabbitmq.conf"]
    for path in holders:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    repo = Path(__file__).resolve().parents[2]
    default_secret = repo / ".fleetsense" / "secrets" / "rabbitmq-operator.json"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(default_secret)], cwd=repo, check=False)
    assert ignored.returncode == 0, "the default data dir's secrets are not git-ignored"
