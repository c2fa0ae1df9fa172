"""The records the analysis operator sends to the Java Cassandra sink (cloud/connector, io.fleetsense.flink.cassandra):
a bundle's writes, each value already serialised by the Python driver for its column, so the Java side never
re-implements a CQL type and never needs to know one (a column's type can change in cloud/tables.py alone).

One record per bundle (or timer firing), big-endian, documented in docs/cloud-etl.md ("The Cassandra sink"):

    [u8 format = 1][u32 write count]
    per write:  [u8 statement name length][statement name, ASCII][u16 value count]
    per value:  [i32 length][length bytes]     length -1: null, -2: unset (the CQL native protocol's [value])

A value's bytes are what the driver sends for a bound marker (`prepared.bind(values).values`), so the sink passes
them through unchanged. The Java SinkRecord class reads this layout; SinkRecordTest and tests/unit/test_sink_records.py
pin the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

FORMAT = 1
NULL_LENGTH = -1
UNSET_LENGTH = -2
MAX_NAME_BYTES = 0xFF
MAX_VALUES = 0xFFFF

# A bound value: the CQL bytes of a column's value, None for null, or the driver's UNSET_VALUE (any other object).
BoundValue = bytes | None | Any
BoundWrite = tuple[str, Sequence[BoundValue]]  # (statement name, bound values in marker order)

_HEADER = struct.Struct(">BI")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")


class SinkRecordError(ValueError):
    """A record that does not follow the layout above (a fault of ours, not of the data)."""


def encode(writes: Sequence[BoundWrite]) -> bytes:
    """The record of `writes`, in their order."""
    parts = [_HEADER.pack(FORMAT, len(writes))]
    for name, values in writes:
        name_bytes = name.encode("ascii")
        if not 0 < len(name_bytes) <= MAX_NAME_BYTES or len(values) > MAX_VALUES:
            raise SinkRecordError(f"statement {name!r} with {len(values)} values does not fit a sink record")
        parts += [bytes((len(name_bytes),)), name_bytes, _U16.pack(len(values))]
        for value in values:
            if value is None:
                parts.append(_I32.pack(NULL_LENGTH))
            elif isinstance(value, bytes | bytearray | memoryview):
                parts += [_I32.pack(len(value)), bytes(value)]
            else:
                parts.append(_I32.pack(UNSET_LENGTH))
    return b"".join(parts)


class Unset:
    """What `decode` gives for an unset value (a marker left unbound: the column keeps what it had)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()
DecodedValue = bytes | Unset | None


def decode(record: bytes) -> list[tuple[str, list[DecodedValue]]]:
    """The writes of a record (for tests and for reading a record by hand); raises SinkRecordError if malformed."""
    try:
        fmt, count = _HEADER.unpack_from(record, 0)
        if fmt != FORMAT:
            raise SinkRecordError(f"sink record format {fmt}, expected {FORMAT}")
        offset = _HEADER.size
        writes: list[tuple[str, list[DecodedValue]]] = []
        for _ in range(count):
            name_length = record[offset]
            name = record[offset + 1 : offset + 1 + name_length].decode("ascii")
            offset += 1 + name_length
            (n,) = _U16.unpack_from(record, offset)
            offset += _U16.size
            values: list[DecodedValue] = []
            for _ in range(n):
                (length,) = _I32.unpack_from(record, offset)
                offset += _I32.size
                if length == NULL_LENGTH:
                    values.append(None)
                elif length == UNSET_LENGTH:
                    values.append(UNSET)
                elif length < 0 or offset + length > len(record):
                    raise SinkRecordError(f"value length {length} at byte {offset} is out of the record")
                else:
                    values.append(record[offset : offset + length])
                    offset += length
            writes.append((name, values))
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise SinkRecordError(f"truncated or malformed sink record: {exc}") from exc
    if offset != len(record):
        raise SinkRecordError(f"{len(record) - offset} bytes after the last write of a sink record")
    return writes
