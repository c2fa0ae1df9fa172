"""PyFlink job: AMQP queues -> per-vehicle validation, deduplication, ordering and analytics -> Cassandra.

    telemetry queue --(readers: bundles by shard)--> key by shard --> ShardStream (keyed state)
                                                        --(forward: one record of writes per bundle)--> CassandraSink
    status queue ------------------------------------------------> StoreStatus ----------------> Cassandra

The telemetry source emits bundles: all messages of one shard (a fixed hash of the vehicle id) that had arrived
when it polled, so Flink's and PyFlink's per-record cost is paid per bundle, not per message, and a vehicle
always lands on the same subtask. Every decision lives in tested modules (cloud/shard_stream.py,
cloud/vehicle_stream.py, cloud/status_rows.py); this file is the glue.
ShardStream computes each bundle's writes and sends them on as one record (cloud/sink_records.py) to the
connector's Java sink, which writes asynchronously and has every write acknowledged before Flink forwards a
checkpoint barrier, so they are durable before the checkpoint whose completion acknowledges their input to the
broker. With the job setting `sink=python` ShardStream writes them itself and waits (the path before the sink, kept
for comparison); StoreStatus always does (low volume, and its restart rows must be stored before the status row
that counts them). Submitted by `fleetsense job submit` as
`flink run --python <this file> --settings <json>`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from fleetsense.cloud import tables
from fleetsense.cloud.amqp_source import (
    ENVELOPE_TYPE_INFO,
    AmqpSourceSettings,
    amqp_source,
    bundle_shard,
    split_bundle,
    split_envelope,
)
from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.shard_keys import MAX_PARALLELISM, shard_keys
from fleetsense.cloud.vehicle_stream import COUNTERS
from fleetsense.cloud.write_target import WRITES_RESULTS
from pyflink.common import Configuration, Duration, Types, WatermarkStrategy
from pyflink.common.restart_strategy import RestartStrategies
from pyflink.datastream import CheckpointingMode, RuntimeContext, StreamExecutionEnvironment
from pyflink.datastream.functions import KeyedProcessFunction, MapFunction, SinkFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.java_gateway import get_gateway

log = logging.getLogger("fleetsense.ingest")
RESTARTS_REMEMBERED = 100_000  # vehicles whose restart counts the status operator keeps in memory


class ShardKey:
    """The key selector: a bundle's shard, as the Flink key that spreads shards evenly (cloud/shard_keys.py)."""

    def __init__(self, shards: int) -> None:
        self.keys = shard_keys(shards)

    def __call__(self, record: bytes) -> int:
        shard = bundle_shard(record)
        return self.keys[shard] if shard < len(self.keys) else self.keys[0]


def _connect(settings: IngestJobSettings) -> Any:
    from fleetsense.cloud.cassandra_session import open_cluster

    return open_cluster(
        (settings.cassandra_host, settings.cassandra_port),
        login=settings.cassandra_login(),
        local_dc=settings.cassandra_local_dc,
    )


def _shutdown(cluster: Any) -> None:
    """Shut a driver Cluster down if one was opened; a failure here must not hide the error that closed us."""
    if cluster is None:
        return
    try:
        cluster.shutdown()
    except Exception as exc:
        log.warning("closing the Cassandra connection failed: %s", exc)


class _MapStateView(MutableMapping[str, bytes]):
    """A map state as the MutableMapping cloud.shard_stream expects."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def __getitem__(self, key: str) -> bytes:
        value = self._state.get(key)
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def __setitem__(self, key: str, value: bytes) -> None:
        self._state.put(key, value)

    def __delitem__(self, key: str) -> None:
        self._state.remove(key)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._state.keys()))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _FlinkShardStore:
    """The shard's vehicles in a map state, with the live objects of recently seen vehicles kept in memory: a
    vehicle is unpickled only when it is not cached, and pickled once per bundle that changed it. The cache
    belongs to this operator instance, which Flink replaces on every restore, so it never outlives the state
    it mirrors; every change is written through, so the state is always what a checkpoint must hold."""

    def __init__(self, vehicles: Any, waiting: Any, cache_size: int) -> None:
        self._vehicles = vehicles
        self._waiting = _MapStateView(waiting)
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size

    def load(self, vehicle_id: str) -> Any:
        state = self._cache.get(vehicle_id)
        if state is not None:
            self._cache.move_to_end(vehicle_id)
            return state
        try:
            return self._vehicles.get(vehicle_id)  # unpickled here: older state versions are migrated
        except Exception:
            # A state this code cannot read (analytics.state_versions.StateVersionError says why and what to do)
            # fails the task; the vehicle it belongs to is only known here.
            log.exception("the keyed state of vehicle %r cannot be loaded", vehicle_id)
            raise

    def save(self, vehicle_id: str, state: Any) -> None:
        self._vehicles.put(vehicle_id, state)
        self._cache[vehicle_id] = state
        self._cache.move_to_end(vehicle_id)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def waiting(self, vehicle_id: str) -> MutableMapping[int, bytes]:
        from fleetsense.cloud.shard_stream import PrefixedWaiting

        return PrefixedWaiting(self._waiting, vehicle_id)


class ShardStream(KeyedProcessFunction):  # type: ignore[misc]
    """One shard's bundles: every message through its vehicle's validation, deduplication, order and analysis
    (cloud/shard_stream.py), the bundle's writes overlapped, the shard's earliest deadline as its timer."""

    def __init__(self, settings: IngestJobSettings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        import gc

        from fleetsense.cloud.store import Binder, CassandraWriter

        # Thousands of live vehicle states are long-lived objects: collect the young generation less often, and
        # leave what is loaded now (modules, the driver) out of every collection.
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        self._cluster = _connect(self.settings)
        self._session = self._cluster.connect()
        # The Java sink writes (this only binds each value for it), or with sink=python this operator does; both
        # write results into the result version's keyspace, and a results-only job nothing else (write_target.py).
        target = self.settings.write_target()
        self._writer: CassandraWriter | None = None
        self._binder = Binder(self._session, target)
        if self.settings.sink == "python":
            self._writer = CassandraWriter(
                self._session,
                target,
                max_in_flight=self.settings.max_writes,
                attempts=self.settings.write_attempts,
                batch_rows=self.settings.write_batch_rows,
                batch_bytes=self.settings.write_batch_kb * 1000,
            )
        self._stream_settings = self.settings.stream
        # Pickled values: with PRIMITIVE_ARRAY(BYTE()) thread mode stores the bytes as Object[], which fails
        # every checkpoint taken while a batch waits (ClassCastException to byte[], seen).
        vehicles = runtime_context.get_map_state(
            MapStateDescriptor("vehicles", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        )
        waiting = runtime_context.get_map_state(
            MapStateDescriptor("waiting", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        )
        self._store = _FlinkShardStore(vehicles, waiting, self.settings.vehicle_cache_size)
        from fleetsense.cloud.rejections import RejectionLimiter

        self._rejections = RejectionLimiter()
        # When this instance started: after a restore, the time the job was down does not count as waiting.
        self._resumed_ms = int(time.time() * 1000)
        self._deadlines = runtime_context.get_state(ValueStateDescriptor("deadlines", Types.PICKLED_BYTE_ARRAY()))
        group = runtime_context.get_metrics_group()
        self._counters = {name: group.counter(name) for name in (*COUNTERS, "bundles", "bad_bundles")}
        # Every vehicle's profile, re-read in the background: a class changed by `fleetsense vehicle-class`
        # reaches the vehicles this subtask already tracks within profile_refresh_s.
        self._profiles: Mapping[str, Any] = {}
        self._closing = threading.Event()
        self._profile_reader = threading.Thread(target=self._read_profiles, name="fleetsense-profiles", daemon=True)
        self._profile_reader.start()

    def close(self) -> None:
        # Also called after an open() that failed half-way: stop whatever was started. PEMJA finalizing the
        # interpreter of a failed task has crashed whole TaskManagers (SIGSEGV in PythonInterpreter.finalize,
        # taking the healthy subtasks beside it down); threads of ours (the profile reader, the driver's I/O
        # loop) still running at that point are one known way to get there, so none is left running.
        closing = getattr(self, "_closing", None)
        if closing is not None:
            closing.set()
        reader = getattr(self, "_profile_reader", None)
        if reader is not None:
            reader.join(timeout=10)
        _shutdown(getattr(self, "_cluster", None))

    def _read_profiles(self) -> None:
        from fleetsense.cloud.profiles import all_profiles

        while not self._closing.is_set():
            try:
                self._profiles = all_profiles(self._session, self.settings.keyspace)  # swapped whole: no lock
            except Exception as exc:  # the next reading may succeed; meanwhile the classes read before hold
                log.warning(
                    "could not read vehicle_profiles (%s); keeping the %d read before", exc, len(self._profiles)
                )
            self._closing.wait(self.settings.profile_refresh_s)

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        from fleetsense.cloud.shard_stream import on_bundle

        now_ms = ctx.timer_service().current_processing_time()
        try:
            _, messages = split_bundle(bytes(value))
        except ValueError as exc:
            yield from self._bad_bundle(bytes(value), str(exc), now_ms)
            return
        deadlines = self._deadlines.value() or {}
        result = on_bundle(
            self._store,
            deadlines,
            messages,
            now_ms=now_ms,
            settings=self._stream_settings,
            profiles_of=self._profiles_of,
            known_profiles=self._profiles,
            resumed_ms=self._resumed_ms,
        )
        yield from self._finish(result, deadlines, ctx)
        self._counters["bundles"].inc()

    def _profiles_of(self, vehicle_ids: Any) -> dict[str, Any]:
        from fleetsense.cloud.profiles import profiles_of

        return profiles_of(self._session, self.settings.keyspace, vehicle_ids) if vehicle_ids else {}

    def _bad_bundle(self, record: bytes, reason: str, now_ms: int) -> Iterator[bytes]:
        """A record the connector framed wrongly cannot be split into messages: kept whole as one rejected row."""
        from fleetsense.cloud.result_rows import rejected_write

        yield from self._write(
            [rejected_write("", record, f"unreadable AMQP bundle: {reason}", now_ms=now_ms, whole=True)]
        )
        self._counters["bad_bundles"].inc()

    def _write(self, writes: list[Any]) -> Iterator[bytes]:
        """The writes as one record for the Java sink, or (sink=python) written here, waiting for every ack; the
        writer raises after its retries, and the job restarts from a checkpoint."""
        if self._writer is not None:
            self._writer.write_all(writes)
            return
        record = self._binder.sink_record(writes)
        if record is not None:
            yield record

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        from fleetsense.cloud.shard_stream import on_shard_timer

        deadlines = self._deadlines.value()
        if deadlines:
            # The time now, not the timer's own timestamp: a timer fires late (after a restore, under load), and
            # deadlines computed from its timestamp could lie at or before now and re-fire it for ever.
            now_ms = ctx.timer_service().current_processing_time()
            result = on_shard_timer(self._store, deadlines, now_ms=now_ms, resumed_ms=self._resumed_ms)
            yield from self._finish(result, deadlines, ctx)

    def _finish(self, result: Any, deadlines: dict[str, int], ctx: Any) -> Iterator[bytes]:
        from fleetsense.cloud.rejections import limit

        now_ms = ctx.timer_service().current_processing_time()
        writes, unrecorded = limit(result.writes, self._rejections, now_ms=now_ms)
        if unrecorded:
            result.count("rejections_unrecorded", unrecorded)
        yield from self._write(writes)
        self._deadlines.update(deadlines)
        if result.timer_ms is not None:
            ctx.timer_service().register_processing_time_timer(result.timer_ms)
        for name, n in result.counts.items():
            self._counters[name].inc(n)


class StoreStatus(MapFunction):  # type: ignore[misc]
    """Status messages (heartbeats, connect, shutdown, last will) into vehicle_status; bad ones are rejected."""

    def __init__(self, settings: IngestJobSettings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        from fleetsense.cloud.rejections import RejectionLimiter
        from fleetsense.cloud.store import CassandraWriter

        self._cluster = _connect(self.settings)
        self._session = self._cluster.connect()
        self._writer = CassandraWriter(
            self._session, self.settings.keyspace, attempts=self.settings.write_attempts
        )  # not the Java sink: low volume, and restart rows must be stored before the status row counting them
        self._rejections = RejectionLimiter()
        # Each vehicle's restart counts as last stored, so a status resent (every heartbeat repeats them) writes no
        # restart row; read from vehicle_status for a vehicle this instance has not met (after a restore too).
        self._restarts: dict[str, Any] = {}
        self._stored_restarts = self._session.prepare(
            tables.VEHICLE_STATUS.select(
                "epoch", "restarts", "unclean_restarts", where=("vehicle_id",), marker="?"
            ).format(ks=self.settings.keyspace)
        )
        # Its own last status, read back after a restore: at the level it was written at (LOCAL_QUORUM on a ring, so
        # a read quorum overlaps the write quorum), not the reader's default LOCAL_ONE, which may miss it.
        from cassandra import ConsistencyLevel

        level = tables.VEHICLE_STATUS.write_consistency
        self._stored_restarts.consistency_level = ConsistencyLevel.name_to_value[level]
        group = runtime_context.get_metrics_group()
        counters = ("statuses", "rejected", "rejections_unrecorded", "agent_restarts")
        self._counters = {name: group.counter(name) for name in counters}

    def close(self) -> None:
        _shutdown(getattr(self, "_cluster", None))

    def map(self, value: bytes) -> str:
        from fleetsense.cloud.rejections import limit
        from fleetsense.cloud.result_rows import rejected_write
        from fleetsense.cloud.status_rows import status_writes

        now_ms = int(time.time() * 1000)
        try:
            routing_key, body = split_envelope(bytes(value))
        except ValueError as exc:
            routing_key, body = "", bytes(value)
            writes = [rejected_write("", body, f"unreadable AMQP envelope: {exc}", now_ms=now_ms, whole=True)]
        else:
            writes = status_writes(routing_key, body, now_ms=now_ms, seen=self._restarts_seen)
        rejected = sum(1 for name, _ in writes if name == "rejected")
        writes, unrecorded = limit(writes, self._rejections, now_ms=now_ms)
        # Restart rows before the status row that records their counts (status_rows.status_writes says why).
        restart_rows = [write for write in writes if write[0] == "agent_restart"]
        self._writer.write_all(restart_rows)
        self._writer.write_all([write for write in writes if write[0] != "agent_restart"])
        self._remember_restarts(writes)
        self._counters["statuses"].inc()
        self._counters["rejected"].inc(rejected)
        self._counters["rejections_unrecorded"].inc(unrecorded)
        self._counters["agent_restarts"].inc(len(restart_rows))
        return routing_key

    def _restarts_seen(self, vehicle_id: str) -> Any:
        from fleetsense.cloud.status_rows import RestartsSeen

        if vehicle_id not in self._restarts:
            row = self._session.execute(self._stored_restarts, (vehicle_id,)).one()
            known = row is not None and row.restarts is not None
            self._restarts[vehicle_id] = (
                RestartsSeen(row.epoch or 0, row.restarts, row.unclean_restarts) if known else None
            )
        return self._restarts[vehicle_id]

    def _remember_restarts(self, writes: Any) -> None:
        from fleetsense.cloud.status_rows import seen_after

        for vehicle_id, seen in seen_after(writes).items():
            if len(self._restarts) >= RESTARTS_REMEMBERED:
                self._restarts.clear()  # read again from vehicle_status as vehicles report
            self._restarts[vehicle_id] = seen


def _source(
    env: StreamExecutionEnvironment, settings: IngestJobSettings, queue: str, readers: int, *, bundles: bool
) -> Any:
    source = amqp_source(
        AmqpSourceSettings(
            host=settings.amqp_host,
            port=settings.amqp_port,
            virtual_host=settings.amqp_vhost,
            username=settings.amqp_username,
            password=settings.amqp_password,
            queue=queue,
            prefetch=settings.amqp_prefetch,
            heartbeat_s=settings.amqp_heartbeat_s,
            connection_name=f"{settings.job_name}: {queue}",
            bundle_messages=settings.bundle_messages if bundles else 0,
            bundle_shards=settings.shards if bundles else 1,
            bundle_linger_ms=settings.bundle_linger_ms if bundles else 0,
        )
    )
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "amqp: " + queue, ENVELOPE_TYPE_INFO)
    return stream.set_parallelism(readers)


def _cassandra_sink(settings: IngestJobSettings) -> Any:
    from fleetsense.cloud.cassandra_sink import CassandraSinkSettings, LiveEventSettings, cassandra_sink

    live_events = None
    if settings.events_exchange:  # the same broker and login as the job's source
        live_events = LiveEventSettings(
            host=settings.amqp_host,
            port=settings.amqp_port,
            virtual_host=settings.amqp_vhost,
            username=settings.amqp_username,
            password=settings.amqp_password,
            heartbeat_s=settings.amqp_heartbeat_s,
            exchange=settings.events_exchange,
        )
    return cassandra_sink(
        CassandraSinkSettings(
            host=settings.cassandra_host,
            port=settings.cassandra_port,
            local_dc=settings.cassandra_local_dc,
            keyspace=settings.keyspace,
            results_keyspace=settings.results_keyspace,
            writes=settings.writes,
            login=settings.cassandra_login(),
            max_in_flight=settings.max_writes,
            attempts=settings.write_attempts,
            live_events=live_events,
        )
    )


def build(env: StreamExecutionEnvironment, settings: IngestJobSettings) -> None:
    env.enable_checkpointing(settings.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    # One failed checkpoint (a slow disk, a time-out) is no reason to restart the job; several in a row are.
    checkpoints = env.get_checkpoint_config()
    checkpoints.set_tolerable_checkpoint_failure_number(3)
    # Under load the network buffers fill with bundles and an aligned barrier waits behind all of them (3-6 s,
    # measured at 2,000 vehicles), which holds back the acks and so starves the readers of deliveries: a barrier
    # that has not aligned within the timeout overtakes the buffered bundles and they are stored in the
    # checkpoint instead (unaligned checkpoint).
    checkpoints.enable_unaligned_checkpoints()
    checkpoints.set_alignment_timeout(Duration.of_millis(settings.checkpoint_alignment_timeout_ms))
    env.set_restart_strategy(
        RestartStrategies.fixed_delay_restart(settings.restart_attempts, settings.restart_delay_ms)
    )
    env.set_parallelism(settings.parallelism)
    env.set_buffer_timeout(settings.buffer_timeout_ms)
    discard = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.DiscardingSink
    analysed = (
        _source(env, settings, settings.amqp_queue, settings.readers, bundles=True)
        .key_by(ShardKey(settings.shards), key_type=Types.INT())
        .process(ShardStream(settings), output_type=ENVELOPE_TYPE_INFO)  # bytes: cloud/sink_records.py
        .set_max_parallelism(MAX_PARALLELISM)
        .name("validate, deduplicate, analyse" + ("" if settings.sink == "java" else ", store"))
        .uid("shard-stream")  # stable ids: a savepoint taken by `job upgrade` maps back onto the new job
    )
    if settings.sink == "java":
        # Same parallelism, no re-keying: a forward connection (chained), so each analysis subtask has its own
        # sink writer and a vehicle's writes all pass through one of them (docs/cloud-etl.md, "Write order").
        sink = analysed.sink_to(_cassandra_sink(settings)).set_parallelism(settings.parallelism)
        sink.name("cassandra sink").uid("cassandra-sink")
    else:
        analysed.add_sink(SinkFunction(discard())).name("done").uid("vehicle-stream-done")
    if settings.writes == WRITES_RESULTS:
        return  # a replay writes results only: no vehicle_status, no agent_restarts, and no status queue to drain
    statuses = (
        _source(env, settings, settings.amqp_status_queue, 1, bundles=False)
        .map(StoreStatus(settings), output_type=Types.STRING())
        .set_parallelism(1)
        .name("vehicle status")
        .uid("vehicle-status")
    )
    statuses.add_sink(SinkFunction(discard())).set_parallelism(1).name("status done").uid("vehicle-status-done")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="telemetry_ingest")
    parser.add_argument("--settings", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = IngestJobSettings.from_file(args.settings)
    job_config = Configuration()
    # "thread" runs the Python functions inside the TaskManager JVM (PEMJA): no per-task gRPC servers
    # (which Beam binds on every interface) and lower latency than the "process" mode's bundles.
    job_config.set_string("python.execution-mode", settings.python_execution_mode)
    job_config.set_string("python.fn-execution.bundle.size", str(settings.python_bundle_size))
    job_config.set_string("python.fn-execution.bundle.time", str(settings.python_bundle_time_ms))
    env = StreamExecutionEnvironment.get_execution_environment(job_config)
    env.add_jars(Path(settings.connector_jar).resolve().as_uri())
    build(env, settings)
    env.execute_async(settings.job_name)


if __name__ == "__main__":
    main(sys.argv[1:])
