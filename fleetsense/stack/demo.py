"""`fleetsense demo`: the whole path on the local stack, for a person to watch.

stack up -> provision N simulated vans -> submit the ingest job -> run N edge agents (separate processes,
each logged in as its own broker user) -> print what lands in Cassandra while they drive.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from fleetsense.errors import FleetsenseError
from fleetsense.stack import jobs, manager
from fleetsense.stack.api import Api
from fleetsense.stack.api_accounts import DEMO_ADMIN, DemoLogin, ensure_demo_admin
from fleetsense.stack.driver_admin import assign_demo_drivers
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.prepare import prepare
from fleetsense.stack.report import print_vehicle_report


def run_demo(config: StackConfig, *, vehicles: int, seconds: int) -> None:
    t0 = time.monotonic()
    print("[1/5] preparing (Cassandra distribution, connector jar)")
    prepare(config)
    print(f"[2/5] starting the local stack in {config.data_dir}")
    manager.up(config)
    print(manager.format_status(manager.status(config)))
    demo_login = ensure_demo_admin(config)
    vehicle_ids = [f"van-{i:03d}" for i in range(1, vehicles + 1)]
    print(f"[3/5] provisioning {vehicles} vehicles, each with its own broker user and topic permission")
    client = manager.management_client(config)
    configs: list[Path] = []
    for vehicle_id in vehicle_ids:
        path = manager.provision_vehicle(config, client, vehicle_id)
        configs.append(path)
    now_ms = time.time_ns() // 1_000_000
    for line in assign_demo_drivers(config, dict.fromkeys(vehicle_ids, now_ms), manager=demo_login.username):
        print(f"  {line}")
    print("[4/5] submitting the PyFlink ingest job to the session cluster")
    job_id, fresh = jobs.submit_ingest(config)
    print(f"  job {job_id} {'submitted' if fresh else 'was already running'}")
    print(f"[5/5] {vehicles} simulated vans drive for {seconds} s at 100 Hz; samples landing in Cassandra:")
    agents = _start_agents(config, configs, seconds)
    try:
        while any(agent.poll() is None for agent in agents):
            time.sleep(5)
            print(f"\n--- {time.strftime('%H:%M:%S')} ---")
            print_vehicle_report(config, vehicles=vehicle_ids)
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.terminate()
    failed = [vid for vid, agent in zip(vehicle_ids, agents, strict=True) if agent.wait() != 0]
    time.sleep(config_flush_delay_s())
    print("\n--- final ---")
    print_vehicle_report(config, vehicles=vehicle_ids)
    print("\n" + "\n".join(jobs.status_report(config)))
    _scripted_drive(config, client)
    if failed:
        raise FleetsenseError(
            f"edge agents failed: {', '.join(failed)}",
            log_path=str(config.log_dir("edge")),
        )
    print(
        f"\ndemo finished in {time.monotonic() - t0:.0f} s. The stack keeps running:\n"
        "  fleetsense query            # what landed, per vehicle\n"
        "  fleetsense stack status     # components, pids, ports, health\n"
        "  fleetsense stack logs       # the components' logs\n"
        "  fleetsense stack down       # stop everything\n"
        f"Logs are under {config.data_dir / 'logs'}; Flink's web UI is http://{LOOPBACK}:{config.ports.flink_rest}"
    )
    print("\n" + "\n".join(api_lines(config, demo_login)))


def api_lines(config: StackConfig, demo_login: DemoLogin) -> list[str]:
    """Where the dashboard and the API are, how to log in, and a curl line that streams live events."""
    api = Api(config)
    ca_file = config.tls_dir / "ca.pem"
    ca = f" --cacert {ca_file}" if api.scheme == "https" else ""
    # The stack's CA is its own: a browser warns until it is trusted (curl is told with --cacert).
    trust = [f"  your browser warns until it trusts the stack's CA, {ca_file}"] if api.scheme == "https" else []
    return [
        f"The dashboard: {api.url}/app/",
        f"  login: {demo_login.username}, password in {demo_login.password_file} (mode 0600)",
        *trust,
        f"The API: {api.url}/v1 (OpenAPI: {api.url}/v1/openapi.json, try {api.url}/docs), the same login",
        "  live events as they are stored:",
        f'  curl -N{ca} -H "Authorization: Bearer {demo_login.token}" {api.url}/v1/events/live',
    ]


def _scripted_drive(config: StackConfig, client: object) -> None:
    """A drive with known ground truth, recorded by the real agent in virtual time and sent as one backlog:
    what the job detects is printed beside what really happened."""
    from fleetsense.cloud.query import active_keyspaces, events_between
    from fleetsense.cloud.schema import KEYSPACE
    from fleetsense.device_config import load
    from fleetsense.edge.runtime import send_outbox
    from fleetsense.load.virtual_drive import record_drive
    from fleetsense.sim.mounting import Mounting
    from fleetsense.sim.scenarios import harsh_events_drive
    from fleetsense.sim.vehicle import SensorErrors, Vehicle
    from fleetsense.stack.cassandra_auth import READER, session_as

    vehicle_id = f"van-script-{int(time.time())}"
    edge = load(manager.provision_vehicle(config, client, vehicle_id))
    script = harsh_events_drive()
    seconds = script.duration_s + 5
    start_ns = time.time_ns() - int(seconds * 1e9)
    for line in assign_demo_drivers(config, {vehicle_id: start_ns // 1_000_000}, manager=DEMO_ADMIN):
        print(f"  {line}")
    vehicle = Vehicle(script, seed=7, mounting=Mounting.random(7), sensor_errors=SensorErrors.typical_mpu6050(7))
    print(f"\n[extra] {vehicle_id}: a {seconds:.0f} s scripted drive (Pi mounted at a random angle) sent as a backlog")
    record_drive(edge, seconds=seconds, start_wall_ns=start_ns, vehicle=vehicle)
    send_outbox(edge, timeout_s=120)
    truth = sorted((start_ns / 1e9 + r.start_s, r.kind) for r in vehicle.ground_truth.events())
    found: list[tuple[float, str]] = []
    with session_as(config, READER) as session:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(found) < len(truth):
            time.sleep(2)
            where = active_keyspaces(session, KEYSPACE)
            rows = events_between(session, where, vehicle_id, start_ns // 1000, time.time_ns() // 1000)
            found = [(row.start_time.timestamp(), row.kind) for row in rows]
    print(f"  {'GROUND TRUTH':<34} DETECTED BY THE JOB")
    for index in range(max(len(truth), len(found))):
        left = f"{truth[index][0] - start_ns / 1e9:6.1f} s  {truth[index][1]}" if index < len(truth) else ""
        right = f"{found[index][0] - start_ns / 1e9:6.1f} s  {found[index][1]}" if index < len(found) else ""
        print(f"  {left:<34} {right}")


def config_flush_delay_s() -> float:
    # The last batches are acknowledged by the broker before the job has stored them; give it a moment.
    return 5.0


def _start_agents(config: StackConfig, configs: list[Path], seconds: int) -> list[subprocess.Popen[bytes]]:
    log_dir = config.log_dir("edge")
    log_dir.mkdir(parents=True, exist_ok=True)
    agents = []
    for path in configs:
        log = open(log_dir / f"{path.stem}.log", "ab")  # noqa: SIM115 - handed to the child process
        agents.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fleetsense.cli",
                    "edge",
                    "run",
                    "--config",
                    str(path),
                    "--simulate",
                    "--duration",
                    str(seconds),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )
    return agents
