"""The obvious alternative to the pipeline, as a user would write it: one Python process subscribes to every
vehicle's telemetry over MQTT (QoS 1), decodes each message with `fleetsense.wire.decode` and INSERTs every sample
into Cassandra as its own row: one prepared INSERT, the 100 rows of a message sent together with
`execute_concurrent_with_args` (concurrency 100), then the next message. It runs in paho's network thread, so a
message is acknowledged once its rows are written and the broker holds the rest in the subscription's queue.

    .venv/bin/python bench/naive_subscriber.py --config naive.json

`naive.json` (mode 0600, written by bench/pipeline.py): mqtt_host, mqtt_port, username, password, client_id,
cql_host, cql_port. Prints JSON lines to stdout: `stats` every --stats-interval seconds, `summary` on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cassandra.concurrent import execute_concurrent_with_args
from fleetsense.cloud.cassandra_session import open_cluster
from paho.mqtt.enums import CallbackAPIVersion

from fleetsense import wire
from fleetsense.errors import WireFormatError

KEYSPACE = "fleetsense_naive"
TABLE = "naive_samples"
TOPIC = "fleet/+/telemetry"
HOUR_US = 3_600_000_000
SCHEMA = (
    f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = {{'class': 'SimpleStrategy', "
    "'replication_factor': 1}",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.{TABLE} (
        vehicle_id text,
        hour timestamp,
        seq bigint,
        idx int,
        sample_time timestamp,
        ax float, ay float, az float, gx float, gy float, gz float,
        PRIMARY KEY ((vehicle_id, hour), seq, idx)
    ) WITH CLUSTERING ORDER BY (seq DESC, idx DESC)""",
)
INSERT = (
    f"INSERT INTO {KEYSPACE}.{TABLE} (vehicle_id, hour, seq, idx, sample_time, ax, ay, az, gx, gy, gz) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def hour_ms(time_us: int) -> int:
    return (time_us - time_us % HOUR_US) // 1000


def sample_rows(batch: wire.Batch) -> list[tuple[Any, ...]]:
    """One row per sample, values in SI units."""
    hour = hour_ms(batch.start_time_us)
    scales, offsets = batch.scales, batch.offsets
    rows = []
    for idx, counts in enumerate(batch.samples):
        values = [o + c * s for c, s, o in zip(counts, scales, offsets, strict=True)]
        time_ms = (batch.start_time_us + idx * batch.sample_period_us) // 1000
        rows.append((batch.vehicle_id, hour, batch.seq, idx, time_ms, *values))
    return rows


class NaiveSubscriber:
    def __init__(self, session: Any, *, concurrency: int) -> None:
        self.session = session
        self.insert = session.prepare(INSERT)
        self.concurrency = concurrency
        self.messages = self.samples_written = self.write_errors = self.decode_errors = self.skipped = 0
        self.last_error = ""

    def on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            batch = wire.decode(bytes(message.payload))
        except WireFormatError as exc:
            self.decode_errors += 1
            self.last_error = exc.message
            return
        self.messages += 1
        if batch.kind is not wire.Kind.IMU:
            self.skipped += 1  # the table holds IMU samples only
            return
        results = execute_concurrent_with_args(
            self.session, self.insert, sample_rows(batch), concurrency=self.concurrency, raise_on_first_error=False
        )
        for ok, outcome in results:
            if ok:
                self.samples_written += 1
            else:
                self.write_errors += 1
                self.last_error = str(outcome)[:200]

    def counters(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "samples_written": self.samples_written,
            "write_errors": self.write_errors,
            "decode_errors": self.decode_errors,
            "skipped_not_imu": self.skipped,
            "last_error": self.last_error,
        }


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": round(time.time(), 3), **fields}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--stats-interval", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text())
    cluster = open_cluster((config["cql_host"], int(config["cql_port"])))
    session = cluster.connect()
    for statement in SCHEMA:
        session.execute(statement)
    subscriber = NaiveSubscriber(session, concurrency=args.concurrency)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config["client_id"], clean_session=True)
    client.username_pw_set(config["username"], config["password"])
    connected = threading.Event()

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            print(f"naive subscriber: the broker refused the connection: {reason}", file=sys.stderr, flush=True)
            client.disconnect()
            return
        client.subscribe(TOPIC, qos=1)
        connected.set()

    client.on_connect = on_connect
    client.on_message = subscriber.on_message
    client.connect(config["mqtt_host"], int(config["mqtt_port"]), keepalive=60)
    stop = threading.Event()

    def stats() -> None:
        while not stop.wait(args.stats_interval):
            emit("stats", connected=connected.is_set(), **subscriber.counters())

    def terminate(signum: int, frame: Any) -> None:
        stop.set()
        client.disconnect()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    threading.Thread(target=stats, name="stats", daemon=True).start()
    client.loop_forever()
    stop.set()
    emit("summary", cpu_s=round(time.process_time(), 2), **subscriber.counters())
    cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
