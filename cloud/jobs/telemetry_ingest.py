"""PyFlink job: AMQP queue -> validate and decode -> Cassandra. A thin wiring of tested functions.

Submitted by `fleetsense job submit` as `flink run --python <this file> --settings <json>`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from fleetsense.cloud.amqp_source import ENVELOPE_TYPE_INFO, AmqpSourceSettings, amqp_source, split_envelope
from fleetsense.cloud.job_settings import IngestJobSettings
from pyflink.common import Configuration, Types, WatermarkStrategy
from pyflink.datastream import CheckpointingMode, RuntimeContext, StreamExecutionEnvironment
from pyflink.datastream.functions import MapFunction, SinkFunction
from pyflink.java_gateway import get_gateway

log = logging.getLogger("fleetsense.ingest")


class StoreBatch(MapFunction):  # type: ignore[misc]
    """Decode one message and store its samples; bad input is recorded in rejected_messages, never raised."""

    def __init__(self, settings: IngestJobSettings) -> None:
        self.settings = settings
        self._cluster: Any = None
        self._store: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        from cassandra.cluster import Cluster
        from fleetsense.cloud.cassandra_session import protocol_version
        from fleetsense.cloud.sample_store import SampleStore

        kwargs: dict[str, Any] = {
            "contact_points": [self.settings.cassandra_host],
            "port": self.settings.cassandra_port,
        }
        version = protocol_version()
        if version is not None:
            kwargs["protocol_version"] = version
        self._cluster = Cluster(**kwargs)
        session = self._cluster.connect()
        self._store = SampleStore(session, self.settings.keyspace)

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()

    def map(self, envelope: bytes) -> str:
        from fleetsense.cloud.validate import check_message

        routing_key, body = split_envelope(bytes(envelope))
        verdict = check_message(routing_key, body)
        if verdict.batch is None:
            reason = verdict.reason or "rejected"
            log.warning("rejected a message on %s: %s", routing_key, reason)
            self._store.reject(routing_key, reason, body)
            return f"rejected {routing_key}"
        stored = self._store.write(verdict.batch)
        return f"{verdict.batch.header.vehicle_id} seq={verdict.batch.header.seq} samples={stored}"


def build(env: StreamExecutionEnvironment, settings: IngestJobSettings) -> None:
    env.enable_checkpointing(settings.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    env.set_parallelism(settings.parallelism)
    source = amqp_source(
        AmqpSourceSettings(
            host=settings.amqp_host,
            port=settings.amqp_port,
            virtual_host=settings.amqp_vhost,
            username=settings.amqp_username,
            password=settings.amqp_password,
            queue=settings.amqp_queue,
            prefetch=settings.amqp_prefetch,
            connection_name=settings.job_name,
        )
    )
    stored = (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "amqp: " + settings.amqp_queue, ENVELOPE_TYPE_INFO)
        .map(StoreBatch(settings), output_type=Types.STRING())
        .name("decode, validate, store in Cassandra")
    )
    # The stream ends at Cassandra; Flink still needs a sink to keep the operators in the graph.
    discard = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.DiscardingSink()
    stored.add_sink(SinkFunction(discard)).name("done")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="telemetry_ingest")
    parser.add_argument("--settings", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = IngestJobSettings.from_file(args.settings)
    job_config = Configuration()
    # "thread" runs the Python functions inside the TaskManager JVM (PEMJA): no per-task gRPC servers
    # (which Beam binds on every interface) and lower latency than the "process" mode's bundles.
    job_config.set_string("python.execution-mode", settings.python_execution_mode)
    env = StreamExecutionEnvironment.get_execution_environment(job_config)
    env.add_jars(Path(settings.connector_jar).resolve().as_uri())
    build(env, settings)
    env.execute_async(settings.job_name)


if __name__ == "__main__":
    main(sys.argv[1:])
