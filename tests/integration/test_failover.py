"""Broker failover against the real stack: three TCP proxies in front of its one broker act as the three endpoints
of a cluster. The agent sends a scripted drive through the first; that node crashes mid-stream, the agent moves to
the second, which is then cut off by a partition, and the third carries the rest. Every batch is stored exactly
once: stored seqs contiguous, stored samples = sent, events = ground truth."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from fleetsense.cloud.query import blocks, sample_keys
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.edge.runtime import send_outbox

from fleetsense import wire
from fleetsense.device_config import EdgeConfig
from fleetsense.endpoints import parse_endpoint_text
from fleetsense.load.provisioning import fleet_ids, provision_fleet
from fleetsense.load.runner import LoadSettings, run_load
from fleetsense.load.vehicles import build_fleet
from fleetsense.stack import manager
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.secrets import new_password

from .helpers import eventually, provision_vehicle, tap, unique_vehicle
from .tcp_proxy import TcpProxy
from .test_analytics_pipeline import assert_events_match, record_scripted_drive, wait_for_events


def over_proxies(config: EdgeConfig, proxies: list[TcpProxy]) -> EdgeConfig:
    """The device's config with the proxies as its endpoints, tried in the order listed (so the test knows which
    node it is on), and timeouts short enough for a test: a partitioned node is given up on within seconds."""
    listed = ",".join(proxy.endpoint for proxy in proxies)
    broker = dataclasses.replace(
        config.broker,
        host="",
        endpoints=parse_endpoint_text(listed, default_port=1883, where="test"),
        endpoint_order="listed",
        connect_timeout_s=2.0,
        reconnect_base_s=0.5,
        reconnect_cap_s=4.0,
        keepalive_s=5,
    )
    # Slow replay (8 batches/s) so the stream is still flowing when the nodes fail; a PUBACK 4 s late means the
    # node is gone (a partition gives no error: only the missing acknowledgement tells).
    outbox = dataclasses.replace(config.outbox, replay_rate_per_s=8.0, ack_timeout_s=4.0)
    return dataclasses.replace(config, broker=broker, outbox=outbox)


def test_the_agent_fails_over_a_crash_then_a_partition_and_stores_every_batch_once(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    vid = unique_vehicle("failover")
    proxies = [TcpProxy((LOOPBACK, stack.ports.mqtt)) for _ in range(3)]
    first, second, third = proxies
    try:
        with tap(stack, operator_client, vid) as routed:
            config = over_proxies(provision_vehicle(operator_client, stack, vid, tmp_path), proxies)
            drive = record_scripted_drive(config, seed=31)
            left: list[int] = []
            sender = threading.Thread(target=lambda: left.append(send_outbox(drive.config, timeout_s=240)))
            started = time.monotonic()
            sender.start()
            # Mid-stream on the first node: it crashes (connections reset, port closed).
            eventually(lambda: first.forwarded_up_bytes, lambda n: n > 20_000, timeout_s=30, interval_s=0.2)
            first.crash()
            crashed_at = time.monotonic()
            # The agent is on the second within a connect timeout plus a round of the backoff; then it is cut off.
            eventually(lambda: second.accepted, lambda n: n > 0, timeout_s=30, interval_s=0.05)
            moved_s = time.monotonic() - crashed_at
            eventually(lambda: second.forwarded_up_bytes, lambda n: n > 20_000, timeout_s=30, interval_s=0.2)
            partitioned_at = time.monotonic()
            second.partition()
            eventually(lambda: third.accepted, lambda n: n > 0, timeout_s=60, interval_s=0.05)
            moved_again_s = time.monotonic() - partitioned_at
            sender.join()
            elapsed_s = time.monotonic() - started
            assert left == [0], "the outbox was not drained through the third endpoint"
            assert second.accepted >= 1 and third.accepted >= 1, [p.accepted for p in proxies]
            # A crash: a reset, then at most two pauses of a round (the same node once more, if it looked healthy).
            assert moved_s < 2 * 0.5 + 2.0, f"took {moved_s:.1f} s to move off a crashed node"
            # A partition: the missing PUBACK (4 s) or keepalive, then at most two pauses and a connect timeout.
            assert moved_again_s < 4.0 + 2 * 1.0 + 2.0 + 2.0, f"took {moved_again_s:.1f} s to leave a partition"
            batches = eventually(
                routed.telemetry, lambda got: len({b.seq for b in got}) >= len(drive.batches), timeout_s=30
            )
        sent_seqs = [b.seq for b in drive.batches]
        routed_count = Counter(b.seq for b in batches)
        assert set(routed_count) == set(sent_seqs)  # the broker got every batch, some more than once (resends)
        # Stored exactly once: the cloud drops the resends by vehicle and seq.
        assert_events_match(wait_for_events(cql, drive, timeout_s=120), drive.expected_events)
        assert sample_keys(cql, KEYSPACE, vid) == {
            (b.seq, i) for b in drive.batches if b.kind == wire.Kind.IMU for i in range(len(b.samples))
        }
        stored = sorted(row.seq for row in blocks(cql, KEYSPACE, vid))
        assert stored == list(range(sent_seqs[0], sent_seqs[-1] + 1))  # contiguous, once each
        print(
            f"failover: {len(sent_seqs)} batches in {elapsed_s:.1f} s, on the next node {moved_s:.2f} s after the crash"
            f" and {moved_again_s:.2f} s after the partition,"
            f" {sum(routed_count.values()) - len(routed_count)} resent across failovers, connections per endpoint"
            f" {[p.accepted for p in proxies]}"
        )
    finally:
        for proxy in proxies:
            proxy.close()


def test_the_load_generator_fails_over_and_every_vehicle_delivers_every_batch(
    stack: StackConfig, operator_client: Any, tmp_path: Path
) -> None:
    passwords = {vid: new_password() for vid in fleet_ids(6, unique_vehicle("loadfo"))}
    provision_fleet(lambda: manager.management_client(stack), passwords, workers=2)
    proxies = [TcpProxy((LOOPBACK, stack.ports.mqtt)) for _ in range(3)]
    settings = LoadSettings(
        endpoints=parse_endpoint_text(",".join(p.endpoint for p in proxies), default_port=1883, where="test"),
        seconds=14.0,
        warmup_s=1.0,
        connect_rate_per_s=20.0,
        ack_timeout_s=4.0,  # a partitioned node is noticed by the missing PUBACKs
        reconnect_base_s=0.5,
        reconnect_cap_s=4.0,
        drain_s=30.0,
    )
    vehicles = build_fleet(passwords, pool_seeds=2, pool_seconds=8, baro=False)
    summary: dict[str, Any] = {}
    try:
        with ExitStack() as taps:
            tapped = {vid: taps.enter_context(tap(stack, operator_client, vid)) for vid in passwords}
            runner = threading.Thread(target=lambda: summary.update(asyncio.run(run_load(settings, vehicles))))
            runner.start()
            time.sleep(5)
            proxies[0].crash()
            time.sleep(4)
            proxies[1].partition()
            runner.join(120)
            assert summary.get("ok") and summary["unacked_at_end"] == 0, summary
            assert summary["totals"]["reconnects"] >= 1 and proxies[2].accepted >= 1, summary
            for vid, vehicle_tap in tapped.items():
                vehicle = next(v for v in vehicles if v.vehicle_id == vid)
                seqs = Counter(b.seq for b in vehicle_tap.telemetry())
                assert set(seqs) == set(range(vehicle.next_seq)), f"{vid} lost batches"  # resends are duplicates
        print(f"load failover: {summary['totals']}, connections per endpoint {[p.accepted for p in proxies]}")
    finally:
        for proxy in proxies:
            proxy.close()
