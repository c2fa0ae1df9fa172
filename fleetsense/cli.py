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
from typing import Any

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
        for name in args.components or ["rabbitmq", "cassandra", "flink", "api"]:
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
        if args.action == "provision":
            _register_in_fleet(config, args.vehicle_ids)
    elif args.action == "revoke":
        for vehicle_id in args.vehicle_ids:
            closed = prov.revoke(client, vehicle_id)
            print(f"revoked {vehicle_id} ({closed} open connection(s) closed)")
    elif args.action == "list":
        for vehicle_id in prov.vehicles(client):
            print(vehicle_id)
    return 0


def _register_in_fleet(config, vehicle_ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    """A provisioned vehicle joins the fleet the API shows; provisioning itself never fails for it (the broker
    is what it needs: Cassandra may be down)."""
    from fleetsense.stack.driver_admin import register_vehicles

    try:
        added = register_vehicles(config, vehicle_ids)
    except Exception as exc:  # provisioning is done: a fleet registry out of reach is a note, not a failure
        reason = exc.message if isinstance(exc, FleetsenseError) else f"{type(exc).__name__}: {str(exc)[:200]}"
        print(f"note: not registered in the fleet ({reason}); an admin can POST /v1/vehicles later")
        return
    if added:
        print(f"registered in the fleet: {', '.join(added)}")


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
        from fleetsense.stack import reprocess
        from fleetsense.stack.manager import stack_health

        print("\n".join(jobs.status_report(config)) or "no jobs")
        print("\n".join(reprocess.status_lines(config)))
        health = stack_health(config, with_components=False)
        print("\n".join(health.check_lines()))
        return 0 if health.healthy else 1
    elif args.action == "cancel":
        cancelled = jobs.cancel_ingest(config)
        print(f"cancelled {cancelled}" if cancelled else "no running ingest job")
    elif args.action == "upgrade":
        upgraded = jobs.upgrade_ingest(config, overrides, same_version=args.same_version, dry_run=args.dry_run)
        if upgraded is not None:
            old, savepoint, new = upgraded
            print(f"stopped {old} with savepoint {savepoint}; running {new} from it")
    else:
        return _cmd_versions(args, config, overrides)
    return 0


def _cmd_versions(args: argparse.Namespace, config: Any, overrides: dict[str, str]) -> int:
    """reprocess, promote, drop: result versions (docs/reprocessing.md)."""
    from fleetsense.errors import ConfigError
    from fleetsense.stack import reprocess

    if args.action == "reprocess":
        if args.resume is not None:
            from fleetsense.stack.replay_feeder import start_feeder_process

            pid = start_feeder_process(config, args.resume)
            print(f"feeder of result version {args.resume} restarted (pid {pid})")
            return 0
        if not args.since:
            raise ConfigError("job reprocess needs --since", hint="e.g. --since 2026-11-20 or --since 7d")
        started = reprocess.reprocess(config, since=args.since, overrides=overrides)
        print(
            f"result version {started.version} ({started.keyspace}): replaying the log from "
            f"{started.since_ms // 1000} s since 1970 as job {started.job_id}; the live job is untouched.\n"
            f"Follow it with `fleetsense job status`; once caught up: `fleetsense job promote {started.version}`"
        )
        return 0
    if args.version is None:
        raise ConfigError(f"job {args.action} needs a version", hint=f"e.g. fleetsense job {args.action} 2")
    if args.action == "promote":
        promoted = reprocess.promote(config, args.version, keep_days=args.keep_days)
        print(
            f"result version {promoted.version} is live (job {promoted.job_id}); version {promoted.old_version} is "
            f"kept {args.keep_days:g} days. The live queue waited {promoted.paused_s:.1f} s.\n{promoted.reviews}"
        )
    elif args.action == "drop":
        reprocess.drop(config, args.version)
        print(f"result version {args.version} dropped")
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


def cmd_driver(args: argparse.Namespace) -> int:
    from fleetsense.stack.driver_admin import run

    return run(_stack_config(args), args)


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


# -- serve, user, token: the service layer's API and its accounts -------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    if args.print_openapi:
        from fleetsense.service.server import openapi_json

        print(openapi_json())
        return 0
    from fleetsense.service.server import run
    from fleetsense.stack import api

    config = _stack_config(args)
    if args.settings:
        settings = api.settings_from_file(Path(args.settings), config)
        settings = replace(settings, host=args.host or settings.host, port=args.port or settings.port)
    else:
        settings = api.serve_settings(config, host=args.host, port=args.port)
    run(settings, api.cassandra_login(config))
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from fleetsense.service import users as u
    from fleetsense.service.passwords import Passwords, generated_password
    from fleetsense.service.roles import Role
    from fleetsense.service.users import Accounts
    from fleetsense.stack.api_accounts import with_accounts

    config = _stack_config(args)
    if args.action != "list" and not args.name:
        from fleetsense.errors import ConfigError

        raise ConfigError(f"user {args.action} needs a username", hint=f"fleetsense user {args.action} NAME")
    if args.action == "add":
        role = Role.parse(args.role)
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else generated_password()

        async def add(accounts: Accounts, passwords: Passwords) -> None:
            await u.add_user(accounts, passwords, args.name, role, password)

        with_accounts(config, add)
        shown = "" if args.password_stdin else f"; password (shown once): {password}"
        print(f"added {args.name} as {role.label}{shown}")
    elif args.action == "list":

        async def listing(accounts: Accounts, _passwords: Passwords) -> list[u.User]:
            return await accounts.users()

        for user in with_accounts(config, listing):
            state = "active" if user.active else f"disabled {user.disabled_at:%Y-%m-%d %H:%M} UTC"
            print(f"{user.username:<24} {user.role.label:<8} {state}")
    elif args.action in ("disable", "enable"):

        async def toggle(accounts: Accounts, _passwords: Passwords) -> None:
            await u.update_user(accounts, args.name, disabled=args.action == "disable")

        with_accounts(config, toggle)
        print(f"{args.name}: {args.action}d (their tokens and sessions follow at once)")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from fleetsense.service import users as u
    from fleetsense.service.passwords import Passwords
    from fleetsense.service.users import Accounts
    from fleetsense.stack.api_accounts import with_accounts

    config = _stack_config(args)
    if args.action == "create":

        async def create(accounts: Accounts, _passwords: Passwords) -> tuple[str, u.ApiToken]:
            return await u.create_token(accounts, args.user, args.name or "cli")

        secret, token = with_accounts(config, create)
        print(f"token {token.token_id} for {args.user} ({token.name}); the secret, shown once:\n{secret}")
    elif args.action == "list":

        async def listing(accounts: Accounts, _passwords: Passwords) -> list[u.ApiToken]:
            return await accounts.tokens(args.user)

        for token in with_accounts(config, listing):
            state = "valid" if token.revoked_at is None else f"revoked {token.revoked_at:%Y-%m-%d %H:%M} UTC"
            print(f"{token.token_id}  {token.name:<30} {state}")
    elif args.action == "revoke":
        from fleetsense.errors import ConfigError

        if not args.token_id:
            raise ConfigError("token revoke needs the token's id", hint=f"`fleetsense token list {args.user}`")

        async def revoke(accounts: Accounts, _passwords: Passwords) -> None:
            await u.revoke_token(accounts, args.user, args.token_id)

        with_accounts(config, revoke)
        print(f"revoked {args.token_id} of {args.user}")
    return 0


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
    stack.add_argument("components", nargs="*", help="for logs: rabbitmq, cassandra, flink, api")
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
        choices=["submit", "status", "cancel", "upgrade", "reprocess", "promote", "drop"],
        help="upgrade: stop with a savepoint, then run the current code from it; reprocess --since DAY: replay the "
        "log into a new result version beside the live one; promote N: make version N live; drop N: remove it",
    )
    job.add_argument("version", nargs="?", type=int, help="the result version (promote, drop)")
    job.add_argument("--since", help="reprocess: the first day replayed (2026-11-20, or 7d for 7 days ago)")
    job.add_argument("--resume", type=int, metavar="N", help="reprocess: restart version N's feeder")
    job.add_argument(
        "--same-version",
        action="store_true",
        help="upgrade: apply analytics that change results from now on, in the same result version (else refused)",
    )
    job.add_argument("--dry-run", action="store_true", help="upgrade: only say what would happen to the state")
    job.add_argument(
        "--keep-days", type=float, default=7.0, help="promote: how long the old version's results are kept"
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

    from fleetsense.stack.driver_admin import add_parser as add_driver_parser  # argparse only

    add_driver_parser(sub)
    sub.choices["driver"].set_defaults(handler=cmd_driver)

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

    serve = sub.add_parser("serve", help="the service layer's HTTP API (FastAPI on uvicorn; docs/service.md)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1; the dev profile allows only loopback)")
    serve.add_argument("--port", type=int, help="default: the stack's API port (8480)")
    serve.add_argument("--print-openapi", action="store_true", help="print the OpenAPI document and exit (no database)")
    serve.add_argument("--settings", help=argparse.SUPPRESS)  # written by the stack's API component
    serve.set_defaults(handler=cmd_serve)

    user = sub.add_parser("user", help="the API's operator accounts")
    user.add_argument("action", choices=["add", "list", "disable", "enable"])
    user.add_argument("name", nargs="?", help="the username (add, disable, enable)")
    user.add_argument("--role", default="viewer", help="add: admin, manager or viewer (default viewer)")
    user.add_argument(
        "--password-stdin", action="store_true", help="add: read the password from stdin instead of generating one"
    )
    user.set_defaults(handler=cmd_user)

    token = sub.add_parser("token", help="API tokens (Authorization: Bearer ...)")
    token.add_argument("action", choices=["create", "list", "revoke"])
    token.add_argument("user", help="whose token")
    token.add_argument("token_id", nargs="?", help="revoke: the token's id (`token list USER` shows them)")
    token.add_argument("--name", help="create: what the token is for")
    token.set_defaults(handler=cmd_token)

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
