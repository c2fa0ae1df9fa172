"""The `fleetsense` command. Each subcommand imports its tier lazily, so `pip install .[edge]` on a Raspberry
Pi can run `fleetsense edge ...` without apache-flink or cassandra-driver installed."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from fleetsense.errors import FleetsenseError


def _stack_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from fleetsense.stack.layout import Ports, StackConfig

    config = StackConfig()
    if args.data_dir:
        config = replace(config, data_dir=Path(args.data_dir))
    offset = args.ports_offset if args.ports_offset is not None else int(os.environ.get("FLEETSENSE_PORTS_OFFSET", "0"))
    if offset:
        config = replace(config, ports=Ports().offset(offset))
    return config.with_cassandra(args.cassandra).with_profile(args.profile)


# -- stack ------------------------------------------------------------------------------------------


def cmd_stack(args: argparse.Namespace) -> int:
    from fleetsense.stack import manager

    config = _stack_config(args)
    if args.action == "prepare":
        from fleetsense.stack.prepare import prepare

        prepare(config, say=print)
    elif args.action == "up":
        from fleetsense.stack.prepare import prepare

        prepare(config, say=print)
        print(f"starting the local stack (data in {config.data_dir}) ...")
        manager.up(config)
        print(manager.format_status(manager.status(config)))
    elif args.action == "down":
        manager.down(config)
    elif args.action == "status":
        health = manager.stack_health(config)
        print(manager.format_status(health.rows))
        print("\n".join(health.check_lines()))
        return 0 if health.healthy else 1
    elif args.action == "logs":
        for name in args.components or ["rabbitmq", "cassandra", "flink"]:
            path = manager.log_path(config, name)
            print(f"==> {name}: {path}")
            print(manager.tail(path, args.lines))
    return 0


# -- gateway ----------------------------------------------------------------------------------------


def cmd_gateway(args: argparse.Namespace) -> int:
    from fleetsense.gateway import provision as prov
    from fleetsense.gateway import topology
    from fleetsense.stack import manager
    from fleetsense.stack.rabbitmq import RabbitMQ

    config = _stack_config(args)
    client = manager.management_client(config)
    if args.action == "apply":
        topology.apply(client, operator=RabbitMQ(config).operator.username)
        topology.ensure_flink_user(client, manager.flink_job_credentials(config).password)
        topology.ensure_service_user(client, manager.service_broker_credentials(config).password)
        print("topology applied")
    elif args.action in ("provision", "rotate"):
        for vehicle_id in args.vehicle_ids:
            out_dir = Path(args.out_dir) if args.out_dir else None
            path = manager.provision_vehicle(
                config,
                client,
                vehicle_id,
                out_dir=out_dir,
                rotate=args.action == "rotate",
                client_cert=args.client_cert,
            )
            done = "new secret for" if args.action == "rotate" else "provisioned"
            print(f"{done} {vehicle_id}: edge config written to {path} (mode 0600)")
    elif args.action == "revoke":
        for vehicle_id in args.vehicle_ids:
            closed = prov.revoke(client, vehicle_id)
            print(f"revoked {vehicle_id} ({closed} open connection(s) closed)")
    elif args.action == "list":
        for vehicle_id in prov.vehicles(client):
            print(vehicle_id)
    return 0


# -- edge -------------------------------------------------------------------------------------------


def cmd_edge(args: argparse.Namespace) -> int:
    from fleetsense.device_config import load
    from fleetsense.edge.runtime import run

    config = load(Path(args.config))
    if args.action == "flush":
        from fleetsense.edge.runtime import send_outbox

        left = send_outbox(config, timeout_s=args.duration or 60.0)
        print(f"{config.vehicle_id}: outbox sent; {left} batches left")
        return 0 if left == 0 else 1
    result = run(config, simulate=args.simulate, duration_s=args.duration)
    print(
        f"{config.vehicle_id}: stored {result.imu_batches} IMU batches ({result.imu_samples} samples) and "
        f"{result.baro_batches} barometer batches; published {result.published}; {result.outbox_depth} left in "
        "the outbox for the next run"
    )
    return 0


# -- job --------------------------------------------------------------------------------------------


def cmd_job(args: argparse.Namespace) -> int:
    from fleetsense.stack import jobs

    config = _stack_config(args)
    overrides = _settings_overrides(args.set or [])
    if args.action == "submit":
        job_id, fresh = jobs.submit_ingest(config, overrides)
        print(f"{'submitted' if fresh else 'already running'}: {jobs.INGEST_JOB_NAME} as job {job_id}")
    elif args.action == "status":
        from fleetsense.stack.manager import stack_health

        print("\n".join(jobs.status_report(config)) or "no jobs")
        health = stack_health(config, with_components=False)
        print("\n".join(health.check_lines()))
        return 0 if health.healthy else 1
    elif args.action == "cancel":
        cancelled = jobs.cancel_ingest(config)
        print(f"cancelled {cancelled}" if cancelled else "no running ingest job")
    elif args.action == "upgrade":
        old, savepoint, new = jobs.upgrade_ingest(config, overrides)
        print(f"stopped {old} with savepoint {savepoint}; running {new} from it")
    return 0


def _settings_overrides(pairs: list[str]) -> dict[str, str]:
    from fleetsense.errors import ConfigError

    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair!r} is not KEY=VALUE", hint="e.g. --set parallelism=4")
        overrides[key.strip()] = value.strip()
    return overrides


# -- query ------------------------------------------------------------------------------------------


def cmd_query(args: argparse.Namespace) -> int:
    from fleetsense.stack.report import print_vehicle_report

    print_vehicle_report(_stack_config(args), vehicles=args.vehicle_ids or None)
    return 0


def cmd_vehicle_class(args: argparse.Namespace) -> int:
    from fleetsense.cloud.profiles import check_vehicle_class, set_vehicle_class
    from fleetsense.cloud.schema import KEYSPACE
    from fleetsense.stack.cassandra_auth import OPERATOR, session_as

    check_vehicle_class(args.vehicle_class)
    with session_as(_stack_config(args), OPERATOR) as session:
        set_vehicle_class(session, KEYSPACE, args.vehicle_ids, args.vehicle_class)
    count = len(args.vehicle_ids)
    print(f"{count} vehicle(s) set to class {args.vehicle_class} (the running job applies it within a minute)")
    return 0


# -- quarantine -------------------------------------------------------------------------------------


def cmd_quarantine(args: argparse.Namespace) -> int:
    from fleetsense.errors import ConfigError
    from fleetsense.stack import quarantine

    if args.action == "list":
        found = quarantine.summaries(_stack_config(args), vehicle_id=args.vehicle, day=args.day)
        print("\n".join(quarantine.summary_lines(found)) or "nothing in quarantine")
        return 0
    if not args.vehicle:
        raise ConfigError("quarantine readmit needs --vehicle", hint="`fleetsense quarantine list` shows which")
    if args.shift_s is None and not args.as_is:
        raise ConfigError(
            "quarantine readmit needs --shift-s SECONDS (move the sample times by that much) or --as-is",
            hint="`fleetsense quarantine list --vehicle V` shows the times the device claimed",
        )
    shift_us = None if args.as_is else round(args.shift_s * 1_000_000)
    result = quarantine.readmit(_stack_config(args), vehicle_id=args.vehicle, day=args.day, shift_us=shift_us)
    how = "as they were" if shift_us is None else f"shifted by {args.shift_s:+g} s and flagged CLOCK_STEPPED"
    print(f"{args.vehicle}: re-admitted {result.published} message(s) {how}")
    for held, why in result.failed:
        print(f"  kept in quarantine: epoch {held.epoch} seq {held.seq}: {why}")
    return 0 if not result.failed else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from fleetsense.stack.demo import run_demo

    run_demo(_stack_config(args), vehicles=args.vehicles, seconds=args.seconds)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetsense", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--data-dir", help="the local stack's state (default .fleetsense/ or $FLEETSENSE_DATA_DIR)")
    parser.add_argument("--ports-offset", type=int, help="move every local-stack port by N")
    parser.add_argument("--cassandra", metavar="HOST:PORT", help="use this Cassandra instead of the local one")
    parser.add_argument(
        "--profile",
        choices=["dev", "secure"],
        help="dev: plain MQTT (1883) and MQTT over TLS (8883); secure: TLS only. Default: $FLEETSENSE_PROFILE, "
        "else what `stack up` last used in this data dir, else dev",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="the local single-machine stack")
    stack.add_argument("action", choices=["prepare", "up", "down", "status", "logs"])
    stack.add_argument("components", nargs="*", help="for logs: rabbitmq, cassandra, flink")
    stack.add_argument("-n", "--lines", type=int, default=40)
    stack.set_defaults(handler=cmd_stack)

    gateway = sub.add_parser("gateway", help="broker topology and device provisioning")
    gateway.add_argument("action", choices=["apply", "provision", "rotate", "revoke", "list"])
    gateway.add_argument("vehicle_ids", nargs="*")
    gateway.add_argument("--out-dir", help="where provision writes <vehicle-id>.toml")
    gateway.add_argument(
        "--client-cert",
        action="store_true",
        help="provision/rotate: log in with a client certificate from the stack's CA instead of a password",
    )
    gateway.set_defaults(handler=cmd_gateway)

    edge = sub.add_parser("edge", help="the in-vehicle agent")
    edge.add_argument("action", choices=["run", "flush"], help="run: sample and publish; flush: only send the outbox")
    edge.add_argument("--config", required=True)
    edge.add_argument("--simulate", action="store_true", help="read firmware-sim's sensors instead of I2C")
    edge.add_argument("--duration", type=float, help="stop after this many seconds (default: run until SIGTERM)")
    edge.set_defaults(handler=cmd_edge)

    job = sub.add_parser("job", help="the PyFlink ingest job on the session cluster")
    job.add_argument(
        "action",
        choices=["submit", "status", "cancel", "upgrade"],
        help="upgrade: stop with a savepoint, then run the current code from it",
    )
    job.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a job setting for submit/upgrade (parallelism, readers, checkpoint_interval_ms, amqp_prefetch, "
        "restart_attempts, restart_delay_ms, vehicle_class, gap_wait_ms, python_execution_mode, ...)",
    )
    job.set_defaults(handler=cmd_job)

    query = sub.add_parser("query", help="what landed in Cassandra, per vehicle")
    query.add_argument("vehicle_ids", nargs="*")
    query.set_defaults(handler=cmd_query)

    vclass = sub.add_parser("vehicle-class", help="set vehicles' class (car, van, truck): their event thresholds")
    vclass.add_argument("vehicle_class")
    vclass.add_argument("vehicle_ids", nargs="+")
    vclass.set_defaults(handler=cmd_vehicle_class)

    quarantine = sub.add_parser(
        "quarantine", help="telemetry the cloud rejected for its sample times, kept whole: list it, re-admit it"
    )
    quarantine.add_argument(
        "action", choices=["list", "readmit"], help="list: per vehicle and day; readmit: publish it again"
    )
    quarantine.add_argument("--vehicle", help="only this vehicle (readmit: required)")
    quarantine.add_argument("--day", help="only messages received on this UTC day (YYYY-MM-DD)")
    how = quarantine.add_mutually_exclusive_group()
    how.add_argument("--shift-s", type=float, help="readmit: move the sample times by this many seconds (+ later)")
    how.add_argument("--as-is", action="store_true", help="readmit: publish the messages unchanged")
    quarantine.set_defaults(handler=cmd_quarantine)

    demo = sub.add_parser("demo", help="stack up, provision vehicles, submit the job, watch samples land")
    demo.add_argument("--vehicles", type=int, default=5)
    demo.add_argument("--seconds", type=int, default=30)
    demo.set_defaults(handler=cmd_demo)

    from fleetsense.cluster.cli import add_parser as add_cluster_parser  # argparse only: the rest loads lazily

    add_cluster_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except FleetsenseError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        print(
            f"error: a library this command needs is not installed ({exc.name})\n"
            "  what to do: install the matching extra, e.g. `pip install 'fleetsense[cloud]'`, or run the "
            "README's set-up command",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
