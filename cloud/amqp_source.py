"""The RabbitMQ (AMQP 0-9-1) source for PyFlink jobs, and the envelope its records arrive in.

The source itself is Java (cloud/connector, built by connector_build); this module configures it and
decodes its records. pyflink is imported only inside amqp_source(), so split_envelope() and the
settings work without apache-flink installed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetsense.errors import ConfigError, FleetsenseError

if TYPE_CHECKING:
    from pyflink.common.typeinfo import TypeInformation
    from pyflink.datastream.connectors import Source

JAVA_SOURCE_CLASS = "io.fleetsense.flink.amqp.AmqpSource"
# AMQP basic.qos prefetch-count is an unsigned 16-bit field; 0 would mean unbounded.
MAX_PREFETCH = 65535
_ROUTING_KEY_LENGTH_BYTES = 2


@dataclass(frozen=True, kw_only=True, repr=False)
class AmqpSourceSettings:
    """Where the source consumes from. `password` never appears in repr() or in the Java side's logs."""

    host: str
    port: int
    virtual_host: str
    username: str
    password: str
    queue: str
    prefetch: int = 1000
    connection_name: str = "fleetsense-flink"
    # False acks each record as soon as Flink has it (ON_EMIT): for runs without checkpointing only,
    # since records buffered in Flink at a failure are lost.
    ack_after_checkpoint: bool = True
    tls: bool = False

    def __post_init__(self) -> None:
        for name in ("host", "username", "queue", "connection_name"):
            if not getattr(self, name):
                raise ConfigError(f"AMQP source: {name} is empty", hint=f"set {name} in the job's AMQP settings")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"AMQP source: port {self.port} is not in 1..65535", hint="use 5672, or 5671 with TLS")
        if not 1 <= self.prefetch <= MAX_PREFETCH:
            raise ConfigError(
                f"AMQP source: prefetch {self.prefetch} is not in 1..{MAX_PREFETCH}",
                hint="prefetch bounds each reader's unacked messages and buffer; 1000 is a good start",
            )

    def __repr__(self) -> str:
        shown = (
            f"{f.name}={repr('***') if f.name == 'password' else repr(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
        )
        return f"{type(self).__name__}({', '.join(shown)})"


def split_envelope(record: bytes) -> tuple[str, bytes]:
    """Split a source record `[u16 BE key length][routing key UTF-8][body]` into (routing_key, body)."""
    if len(record) < _ROUTING_KEY_LENGTH_BYTES:
        raise ValueError(
            f"AMQP envelope too short: {len(record)} bytes, need at least {_ROUTING_KEY_LENGTH_BYTES} for the"
            " routing-key length"
        )
    key_length = int.from_bytes(record[:_ROUTING_KEY_LENGTH_BYTES], "big")
    key_end = _ROUTING_KEY_LENGTH_BYTES + key_length
    if len(record) < key_end:
        raise ValueError(
            f"AMQP envelope truncated: routing key of {key_length} bytes announced, only"
            f" {len(record) - _ROUTING_KEY_LENGTH_BYTES} present"
        )
    try:
        routing_key = bytes(record[_ROUTING_KEY_LENGTH_BYTES:key_end]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"AMQP envelope routing key is not valid UTF-8: {exc}") from exc
    return routing_key, bytes(record[key_end:])


# The records' type in PyFlink (Python bytes): Types.PRIMITIVE_ARRAY(Types.BYTE()). Declared here for
# type checkers and built on first access by __getattr__, so importing this module never imports pyflink.
ENVELOPE_TYPE_INFO: TypeInformation


def __getattr__(name: str) -> Any:
    if name == "ENVELOPE_TYPE_INFO":
        from pyflink.common import Types

        return Types.PRIMITIVE_ARRAY(Types.BYTE())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def amqp_source(settings: AmqpSourceSettings) -> Source:
    """The Java AMQP source as a PyFlink Source, for env.from_source(..., type_info=ENVELOPE_TYPE_INFO).

    The connector jar must already be on the job's classpath: env.add_jars(jar.as_uri()) with the jar
    from connector_build.build_connector_jar(). Records are envelopes: decode them with split_envelope().
    """
    from py4j.java_gateway import JavaClass
    from pyflink.datastream.connectors import Source
    from pyflink.java_gateway import get_gateway

    java_class: Any = get_gateway().jvm
    for part in JAVA_SOURCE_CLASS.split("."):
        java_class = getattr(java_class, part)
    if not isinstance(java_class, JavaClass):
        # Py4J turns an unknown class into a package object instead of failing.
        raise FleetsenseError(
            f"the AMQP connector class {JAVA_SOURCE_CLASS} is not on the JVM classpath",
            hint="build it with `python -m fleetsense.cloud.connector_build` and call"
            " env.add_jars(jar_path.as_uri()) before amqp_source()",
        )
    builder = (
        java_class.builder()
        .setHost(settings.host)
        .setPort(settings.port)
        .setVirtualHost(settings.virtual_host)
        .setUsername(settings.username)
        .setPassword(settings.password)
        .setQueue(settings.queue)
        .setPrefetch(settings.prefetch)
        .setConnectionName(settings.connection_name)
        .setAckMode("AFTER_CHECKPOINT" if settings.ack_after_checkpoint else "ON_EMIT")
        .setTls(settings.tls)
    )
    try:
        return Source(builder.build())
    except Exception as exc:  # Py4JJavaError carries the Java validation message.
        raise ConfigError(f"AMQP source settings rejected: {exc}", hint=f"check {settings!r}") from exc
