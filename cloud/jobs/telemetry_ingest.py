"""PyFlink job: AMQP queues -> per-vehicle validation, deduplication, ordering and analytics -> Cassandra.

    telemetry queue --(readers)--> key by vehicle --> VehicleStream (keyed state) --> Cassandra
    status queue ------------------------------------> StoreStatus ----------------> Cassandra

Every decision lives in tested modules (cloud/vehicle_stream.py, cloud/status_rows.py); this file is the glue.
Writes finish inside the element's processing, so they are durable before the checkpoint whose completion
acknowledges their input to the broker. Submitted by `fleetsense job submit` as
`flink run --python <this file> --settings <json>`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

from fleetsense.cloud.amqp_source import ENVELOPE_TYPE_INFO, AmqpSourceSettings, amqp_source, split_envelope
from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.vehicle_stream import COUNTERS
from pyflink.common import Configuration, Types, WatermarkStrategy
from pyflink.common.restart_strategy import RestartStrategies
from pyflink.datastream import CheckpointingMode, RuntimeContext, StreamExecutionEnvironment
from pyflink.datastream.functions import KeyedProcessFunction, MapFunction, SinkFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.java_gateway import get_gateway

log = logging.getLogger("fleetsense.ingest")


def vehicle_key(envelope: bytes) -> str:
    """The vehicle a record belongs to, from its authenticated routing key ("" for anything unreadable: such
    records are rejected by whichever subtask gets the empty key)."""
    try:
        routing_key, _ = split_envelope(bytes(envelope))
    except ValueError:
        return ""
    parts = routing_key.split(".")
    return parts[1] if len(parts) == 3 else ""


def _connect(settings: IngestJobSettings) -> Any:
    from fleetsense.cloud.cassandra_session import open_cluster

    return open_cluster((settings.cassandra_host, settings.cassandra_port))


class _MapStateView(MutableMapping[int, bytes]):
    """The waiting batches' map state as the MutableMapping cloud.vehicle_stream expects."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def __getitem__(self, key: int) -> bytes:
        value = self._state.get(key)
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def __setitem__(self, key: int, value: bytes) -> None:
        self._state.put(key, value)

    def __delitem__(self, key: int) -> None:
        self._state.remove(key)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._state.keys()))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class VehicleStream(KeyedProcessFunction):  # type: ignore[misc]
    def __init__(self, settings: IngestJobSettings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        from fleetsense.cloud.store import CassandraWriter
        from fleetsense.cloud.vehicle_stream import StreamSettings

        self._cluster = _connect(self.settings)
        self._session = self._cluster.connect()
        self._writer = CassandraWriter(self._session, self.settings.keyspace)
        self._stream_settings = StreamSettings(
            vehicle_class=self.settings.vehicle_class, gap_wait_ms=self.settings.gap_wait_ms
        )
        self._state = runtime_context.get_state(ValueStateDescriptor("vehicle", Types.PICKLED_BYTE_ARRAY()))
        self._waiting = _MapStateView(
            runtime_context.get_map_state(
                # Pickled values: with PRIMITIVE_ARRAY(BYTE()) thread mode stores the bytes as Object[], which
                # fails every checkpoint taken while a batch waits (ClassCastException to byte[], seen).
                MapStateDescriptor("waiting", Types.LONG(), Types.PICKLED_BYTE_ARRAY())
            )
        )
        group = runtime_context.get_metrics_group()
        self._counters = {name: group.counter(name) for name in COUNTERS}

    def close(self) -> None:
        self._cluster.shutdown()

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        from fleetsense.cloud.vehicle_stream import on_message

        routing_key, body = split_envelope(bytes(value))
        now_ms = ctx.timer_service().current_processing_time()
        state = self._state.value()
        settings = self._stream_settings if state is not None else self._settings_for(ctx.get_current_key())
        state, result = on_message(state, self._waiting, routing_key, body, now_ms=now_ms, settings=settings)
        self._finish(state, result, ctx)
        yield from ()

    def _settings_for(self, vehicle_id: str) -> Any:
        """A vehicle seen for the first time: its class from vehicle_profiles, else the job's default."""
        import dataclasses

        from fleetsense.cloud.profiles import vehicle_class_of

        if not vehicle_id:
            return self._stream_settings
        vehicle_class = vehicle_class_of(self._session, self.settings.keyspace, vehicle_id)
        return (
            dataclasses.replace(self._stream_settings, vehicle_class=vehicle_class)
            if vehicle_class
            else (self._stream_settings)
        )

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        from fleetsense.cloud.vehicle_stream import on_timer

        state = self._state.value()
        if state is not None:
            self._finish(state, on_timer(state, self._waiting, ctx.get_current_key(), now_ms=timestamp), ctx)
        yield from ()

    def _finish(self, state: Any, result: Any, ctx: Any) -> None:
        self._writer.write_all(result.writes)  # raises after its retries: the job restarts from a checkpoint
        if state is not None:
            self._state.update(state)
        if result.timer_ms is not None:
            ctx.timer_service().register_processing_time_timer(result.timer_ms)
        for name, n in result.counts.items():
            self._counters[name].inc(n)


class StoreStatus(MapFunction):  # type: ignore[misc]
    """Status messages (heartbeats, connect, shutdown, last will) into vehicle_status; bad ones are rejected."""

    def __init__(self, settings: IngestJobSettings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        from fleetsense.cloud.store import CassandraWriter

        self._cluster = _connect(self.settings)
        self._writer = CassandraWriter(self._cluster.connect(), self.settings.keyspace)

    def close(self) -> None:
        self._cluster.shutdown()

    def map(self, value: bytes) -> str:
        import time

        from fleetsense.cloud.status_rows import status_writes

        routing_key, body = split_envelope(bytes(value))
        self._writer.write_all(status_writes(routing_key, body, now_ms=int(time.time() * 1000)))
        return routing_key


def _source(env: StreamExecutionEnvironment, settings: IngestJobSettings, queue: str, readers: int) -> Any:
    source = amqp_source(
        AmqpSourceSettings(
            host=settings.amqp_host,
            port=settings.amqp_port,
            virtual_host=settings.amqp_vhost,
            username=settings.amqp_username,
            password=settings.amqp_password,
            queue=queue,
            prefetch=settings.amqp_prefetch,
            connection_name=f"{settings.job_name}: {queue}",
        )
    )
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "amqp: " + queue, ENVELOPE_TYPE_INFO)
    return stream.set_parallelism(readers)


def build(env: StreamExecutionEnvironment, settings: IngestJobSettings) -> None:
    env.enable_checkpointing(settings.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    # One failed checkpoint (a slow disk, a time-out) is no reason to restart the job; several in a row are.
    env.get_checkpoint_config().set_tolerable_checkpoint_failure_number(3)
    env.set_restart_strategy(
        RestartStrategies.fixed_delay_restart(settings.restart_attempts, settings.restart_delay_ms)
    )
    env.set_parallelism(settings.parallelism)
    env.set_buffer_timeout(settings.buffer_timeout_ms)
    discard = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.DiscardingSink
    analysed = (
        _source(env, settings, settings.amqp_queue, settings.readers)
        .key_by(vehicle_key, key_type=Types.STRING())
        .process(VehicleStream(settings), output_type=Types.STRING())
        .name("validate, deduplicate, analyse, store")
        .uid("vehicle-stream")  # stable ids: a savepoint taken by `job upgrade` maps back onto the new job
    )
    analysed.add_sink(SinkFunction(discard())).name("done").uid("vehicle-stream-done")
    statuses = (
        _source(env, settings, settings.amqp_status_queue, 1)
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
