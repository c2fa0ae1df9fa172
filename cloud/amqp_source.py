"""The RabbitMQ (AMQP 0-9-1) source for PyFlink jobs, and the envelope its records arrive in.

The source itself is Java (cloud/connector, built by connector_build); this module configures it and
decodes its records. pyflink is imported only inside amqp_source(), so split_envelope() and the
settings work without apache-flink installed.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
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
MAX_BUNDLE_COUNT = 0xFFFF  # the u16 message count and shard of a bundle
MAX_BUNDLE_LINGER_MS = 10_000
_BUNDLE_HEADER = struct.Struct(">HH")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


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
    heartbeat_s: int  # the job's amqp_heartbeat_s, declared there once (its default and bounds)
    # False acks each record as soon as Flink has it (ON_EMIT): for runs without checkpointing only,
    # since records buffered in Flink at a failure are lost.
    ack_after_checkpoint: bool = True
    tls: bool = False
    # Bundle mode when > 0: each record is a bundle of up to this many messages of one shard (split_bundle).
    bundle_messages: int = 0
    bundle_shards: int = 1
    bundle_linger_ms: int = 0  # the longest a delivery waits for others to share its bundle

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

        if not 0 <= self.bundle_linger_ms <= MAX_BUNDLE_LINGER_MS:
            raise ConfigError(
                f"AMQP source: bundle linger {self.bundle_linger_ms} ms is not in 0..{MAX_BUNDLE_LINGER_MS}",
                hint="a few tens of ms: the latency it adds buys fewer, bigger bundles",
            )
        if not 0 <= self.bundle_messages <= MAX_BUNDLE_COUNT or not 1 <= self.bundle_shards <= MAX_BUNDLE_COUNT:
            raise ConfigError(
                f"AMQP source: bundles of {self.bundle_messages} messages in {self.bundle_shards} shards",
                hint=f"bundle_messages in 0..{MAX_BUNDLE_COUNT} (0: one message per record), shards in"
                f" 1..{MAX_BUNDLE_COUNT}",
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


def shard_of(routing_key: str, shards: int) -> int:
    """The shard the Java source files a message under: CRC-32 of the vehicle id (the middle part of a
    three-part routing key, else the whole key) modulo `shards`."""
    parts = routing_key.split(".")
    vehicle = parts[1] if len(parts) == 3 else routing_key
    return zlib.crc32(vehicle.encode("utf-8")) % shards


def bundle_shard(record: bytes) -> int:
    """The shard of a bundle record (its first two bytes): the job's key, read without parsing the rest."""
    if len(record) < _BUNDLE_HEADER.size:
        return 0  # unreadable: split_bundle says why, on whichever subtask gets shard 0
    return int(_U16.unpack_from(record)[0])


def split_bundle(record: bytes) -> tuple[int, list[tuple[str, bytes]]]:
    """A bundle record `[u16 shard][u16 count]` then per message `[u16 key length][key][u32 body length][body]`
    (cloud/connector AmqpBundle) as (shard, [(routing_key, body), ...]); ValueError if it is malformed."""
    view = memoryview(record)
    if len(view) < _BUNDLE_HEADER.size:
        raise ValueError(f"AMQP bundle too short: {len(view)} bytes, need {_BUNDLE_HEADER.size} for its header")
    shard, count = _BUNDLE_HEADER.unpack_from(view)
    messages: list[tuple[str, bytes]] = []
    at = _BUNDLE_HEADER.size
    for index in range(count):
        if at + 2 > len(view):
            raise ValueError(f"AMQP bundle truncated in message {index} of {count}")
        key_end = at + 2 + _U16.unpack_from(view, at)[0]
        if key_end + 4 > len(view):
            raise ValueError(f"AMQP bundle truncated in message {index} of {count}")
        body_end = key_end + 4 + _U32.unpack_from(view, key_end)[0]
        if body_end > len(view):
            raise ValueError(f"AMQP bundle truncated in message {index} of {count}")
        try:
            routing_key = bytes(view[at + 2 : key_end]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"AMQP bundle message {index}: routing key is not valid UTF-8: {exc}") from exc
        messages.append((routing_key, bytes(view[key_end + 4 : body_end])))
        at = body_end
    if at != len(view):
        raise ValueError(f"AMQP bundle has {len(view) - at} bytes after its {count} messages")
    return shard, messages


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
        .setHeartbeatSeconds(settings.heartbeat_s)
        .setAckMode("AFTER_CHECKPOINT" if settings.ack_after_checkpoint else "ON_EMIT")
        .setTls(settings.tls)
        .setBundles(settings.bundle_messages, settings.bundle_shards, settings.bundle_linger_ms)
    )
    try:
        return Source(builder.build())
    except Exception as exc:  # Py4JJavaError carries the Java validation message.
        raise ConfigError(f"AMQP source settings rejected: {exc}", hint=f"check {settings!r}") from exc
