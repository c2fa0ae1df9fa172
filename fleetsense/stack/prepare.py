"""`fleetsense stack prepare`: what the stack needs on disk before it can start (idempotent, offline after
the first run): Cassandra's jars from Maven Central (mvn, fleetsense/stack/cassandra_runtime/pom.xml), the AMQP
connector jar built with Maven (cloud/connector/pom.xml) and the dashboard's npm packages (service/web_assets.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fleetsense.stack.cassandra_dist import install_distribution
from fleetsense.stack.layout import StackConfig


def connector_jar(config: StackConfig) -> Path:
    from fleetsense.cloud.connector_build import build_connector_jar

    return build_connector_jar(config.build_dir)


def prepare(config: StackConfig, *, say: Callable[[str], None] = print) -> None:
    if config.cassandra is None:
        say(f"  cassandra jars: {install_distribution(config)}")
    say(f"  flink AMQP connector: {connector_jar(config)}")
    from fleetsense.service.web_assets import vendor

    say(f"  dashboard packages (npm ci): {vendor()}")
