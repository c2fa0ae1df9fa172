"""A small checkpointing job for the Flink HA tests: generated rows counted per key (keyed state that a restart
must restore), into a blackhole. Java operators only: it needs neither the broker nor Cassandra."""

from __future__ import annotations

import sys

from pyflink.table import EnvironmentSettings, TableEnvironment


def main(parallelism: int) -> None:
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("pipeline.name", "fleetsense-ha-probe")
    config.set("parallelism.default", str(parallelism))
    config.set("execution.checkpointing.interval", "1 s")
    config.set("restart-strategy.type", "fixed-delay")
    config.set("restart-strategy.fixed-delay.attempts", "1000")
    config.set("restart-strategy.fixed-delay.delay", "1 s")
    env.execute_sql(
        "CREATE TABLE numbers (k INT, v BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '200', "
        "'fields.k.min' = '0', 'fields.k.max' = '99')"
    )
    env.execute_sql("CREATE TABLE sink (k INT, n BIGINT, total BIGINT) WITH ('connector' = 'blackhole')")
    env.execute_sql("INSERT INTO sink SELECT k, COUNT(*), SUM(v) FROM numbers GROUP BY k")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
