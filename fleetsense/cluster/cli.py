"""`fleetsense cluster up | down | status | endpoints | provision | repair | demo | fault ...`: the argparse wiring.

The data dir is `--data-dir`, else $FLEETSENSE_CLUSTER_DATA_DIR, else `<repo>/.fleetsense-cluster`; `--for-tests`
takes the test suite's plan (prefix and subnet moved by $FLEETSENSE_TEST_PORTS_OFFSET) to look at or clean up the
cluster a test run left.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

DEFAULT_DIR_NAME = ".fleetsense-cluster"


def add_parser(sub: Any) -> None:
    cluster = sub.add_parser("cluster", help="several hosts on this machine (network namespaces, needs root)")
    cluster.add_argument(
        "--data-dir", dest="cluster_data_dir", help=f"the cluster's state (default {DEFAULT_DIR_NAME}/)"
    )
    cluster.add_argument(
        "--for-tests", action="store_true", help="the test suite's plan ($FLEETSENSE_TEST_PORTS_OFFSET)"
    )
    actions = cluster.add_subparsers(dest="cluster_action", required=True)
    up = actions.add_parser(
        "up", help="create the hosts, start every service, apply topology and schema, submit the job"
    )
    up.add_argument("--no-job", action="store_true", help="leave the ingest job unsubmitted")
    job = actions.add_parser("job", help="the ingest job on the cluster's Flink")
    job.add_argument("job_action", choices=["submit", "status", "rescale"])
    job.add_argument("--parallelism", type=int, help="rescale: the analysis operator's new parallelism")
    actions.add_parser("down", help="stop every service, remove every host; nothing is left")
    actions.add_parser("status", help="a row per host: link, service state, pids, RSS, detail")
    actions.add_parser("endpoints", help="MQTT, AMQP, CQL and Flink REST addresses")
    provision = actions.add_parser("provision", help="broker users and edge configs for vehicles")
    provision.add_argument("vehicle_ids", nargs="+")
    provision.add_argument("--out-dir", help="where <vehicle-id>.toml goes (default <data dir>/vehicles)")
    repair = actions.add_parser("repair", help="full repair of the fleetsense keyspace, run from one Cassandra host")
    repair.add_argument("host", nargs="?", default="cas1")
    demo = actions.add_parser("demo", help="the scripted drive through the running cluster, beside its ground truth")
    demo.add_argument("--vehicles", type=int, default=3, help="how many vans drive it (each its own mounting)")
    demo.add_argument("--speed", type=float, default=2.0, help="drive seconds per wall second (the drive is 180 s)")
    add_fault_parser(actions)
    cluster.set_defaults(handler=cmd_cluster)


def add_fault_parser(actions: Any) -> None:
    fault = actions.add_parser("fault", help="kill, stop/start, partition/heal or shape a host")
    kinds = fault.add_subparsers(dest="fault", required=True)
    kill = kinds.add_parser("kill", help="SIGKILL the host's service (a crash)")
    kill.add_argument("host")
    kill.add_argument("service", nargs="?", help="rabbitmq, cassandra, zookeeper, jobmanager or taskmanager")
    kinds.add_parser("stop", help="SIGKILL every process on the host (power off)").add_argument("host")
    kinds.add_parser("start", help="start the host's service again (power on)").add_argument("host")
    partition = kinds.add_parser("partition", help="link down; healed after --seconds (else by `heal`)")
    partition.add_argument("host")
    partition.add_argument("--seconds", type=float, help="heal after this long (the command waits)")
    kinds.add_parser("heal", help="link up again").add_argument("host")
    shape = kinds.add_parser("shape", help="latency/loss on the host's link (needs the kernel's sch_netem)")
    shape.add_argument("host")
    shape.add_argument("--delay-ms", type=float, default=0.0)
    shape.add_argument("--loss-pct", type=float, default=0.0)
    kinds.add_parser("unshape", help="remove latency/loss").add_argument("host")


def cluster_plan(args: argparse.Namespace) -> Any:
    from fleetsense.cluster.plan import CLUSTER_DATA_DIR_ENV, ClusterPlan
    from fleetsense.stack.layout import repo_root

    chosen = args.cluster_data_dir or getattr(args, "data_dir", None) or os.environ.get(CLUSTER_DATA_DIR_ENV)
    root = repo_root()
    data_dir = Path(chosen) if chosen else (root or Path.cwd()) / DEFAULT_DIR_NAME
    return ClusterPlan.for_tests(data_dir) if args.for_tests else ClusterPlan(data_dir=data_dir)


def cmd_cluster(args: argparse.Namespace) -> int:
    from fleetsense.cluster import manager

    plan = cluster_plan(args)
    action = args.cluster_action
    if action == "up":
        print(f"starting the cluster (data in {plan.data_dir}) ...")
        timings = manager.up(plan)
        print(manager.format_status(manager.status(plan)))
        print(
            f"up in {timings.total_s:.0f} s (services {max(timings.services_s.values()):.0f} s, "
            f"topology and schema {timings.apply_s:.0f} s)"
        )
        if not args.no_job:
            from fleetsense.cluster.flink_ha import submit_ingest_job

            print(f"ingest job running: {submit_ingest_job(plan)}")
    elif action == "job":
        return cmd_job(plan, args)
    elif action == "down":
        started = time.monotonic()
        manager.down(plan)
        print(f"down in {time.monotonic() - started:.0f} s; nothing left")
    elif action == "status":
        rows = manager.status(plan)
        print(manager.format_status(rows))
        return 0 if all(r.service is None or r.service.state == "running" for r in rows if r.link != "absent") else 1
    elif action == "endpoints":
        from fleetsense.cluster.endpoints import endpoints

        print("\n".join(endpoints(plan).lines()))
    elif action == "provision":
        from fleetsense.cluster.endpoints import provision_vehicle

        for vehicle_id in args.vehicle_ids:
            out_dir = Path(args.out_dir) if args.out_dir else None
            print(f"{vehicle_id}: {provision_vehicle(plan, vehicle_id, out_dir=out_dir)}")
    elif action == "repair":
        from fleetsense.cluster.cassandra_ring import repair

        print(repair(plan, plan.by_name(args.host)))
    elif action == "fault":
        return cmd_fault(plan, args)
    elif action == "demo":
        return cmd_demo(plan, args)
    return 0


def cmd_demo(plan: Any, args: argparse.Namespace) -> int:
    from fleetsense.cluster.demo import run_cluster_demo
    from fleetsense.errors import ConfigError

    if not 1 <= args.vehicles <= 50 or not 0.5 <= args.speed <= 10:
        raise ConfigError("demo: --vehicles must be in 1..50 and --speed in 0.5..10", hint="for example --vehicles 3")
    results = run_cluster_demo(plan, vehicles=args.vehicles, speed=args.speed)
    exact = sum(r.exact for r in results)
    print(f"\n{exact} of {len(results)} vans: the events stored on the cluster equal the ground truth")
    return 0 if exact == len(results) else 1


def cmd_job(plan: Any, args: argparse.Namespace) -> int:
    from fleetsense.cluster import job
    from fleetsense.cluster.flink_ha import leader, submit_ingest_job
    from fleetsense.errors import ConfigError

    if args.job_action == "submit":
        print(f"ingest job running: {submit_ingest_job(plan)}")
    elif args.job_action == "status":
        job_id = job.running_job(plan)
        print(f"ingest job {job_id} on the JobManager of {leader(plan).name}")
        print(f"  parallelism {job.parallelism(plan, job_id)} of {job.total_slots(plan)} slots")
        print(f"  restarts {job.restarts(plan, job_id)}, last checkpoint {job.last_completed_checkpoint(plan, job_id)}")
    elif args.job_action == "rescale":
        if not args.parallelism or args.parallelism < 1:
            raise ConfigError("rescale needs --parallelism N (N >= 1)", hint="for example --parallelism 6")
        done = job.rescale(plan, args.parallelism)
        print(f"rescaled through {done.savepoint}: job {done.old_job_id} -> {done.new_job_id}")
    return 0


def cmd_fault(plan: Any, args: argparse.Namespace) -> int:
    from fleetsense.cluster import fault

    name = args.host
    if args.fault == "kill":
        killed = fault.kill(plan, name, args.service)
        print(f"{name}: SIGKILL to {', '.join(map(str, killed)) or 'nothing (not running)'}")
    elif args.fault == "stop":
        killed = fault.stop_host(plan, name)
        print(f"{name}: powered off ({len(killed)} processes killed)")
    elif args.fault == "start":
        fault.start_host(plan, name)
        print(f"{name}: started")
    elif args.fault == "partition":
        held = f"for {args.seconds:g} s" if args.seconds else "until `fault heal`"
        print(f"{name}: partitioned {held}")
        fault.partition(plan, name, seconds=args.seconds)
        if args.seconds:
            print(f"{name}: healed")
    elif args.fault == "heal":
        fault.heal(plan, name)
        print(f"{name}: healed")
    elif args.fault == "shape":
        fault.shape(plan, name, delay_ms=args.delay_ms, loss_pct=args.loss_pct)
        print(f"{name}: {args.delay_ms:g} ms delay, {args.loss_pct:g} % loss")
    elif args.fault == "unshape":
        fault.unshape(plan, name)
        print(f"{name}: link unshaped")
    return 0
