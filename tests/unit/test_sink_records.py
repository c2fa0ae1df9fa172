"""The records the analysis operator sends to the Java Cassandra sink (cloud/sink_records.py): the exact bytes,
pinned here and in the connector's SinkRecordTest, and what the job's Binder puts in them (each row once, each
value as the Python driver binds it for its column)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from cassandra.protocol import ColumnMetadata
from cassandra.query import UNSET_VALUE, PreparedStatement
from fleetsense.cloud import sink_records
from fleetsense.cloud.sink_records import UNSET, SinkRecordError, decode, encode
from fleetsense.cloud.store import STATEMENTS, Binder, hour_bucket_ms
from fleetsense.cloud.tables import WRITE_CONSISTENCY, WRITTEN

from tests.unit.cql_binding import PROTOCOL, bind, statement_types

# "hour" with a 2-byte value and a null; "vehicle" with "ab" and an unset marker. SinkRecordTest decodes these bytes.
RECORD_HEX = (
    "01" "00000002"
    "04" "686f7572" "0002" "00000002" "0001" "ffffffff"
    "07" "76656869636c65" "0002" "00000002" "6162" "fffffffe"
)  # fmt: skip


def test_a_record_is_the_layout_the_java_sink_decodes() -> None:
    writes = [("hour", [b"\x00\x01", None]), ("vehicle", [b"ab", UNSET_VALUE])]
    assert encode(writes).hex() == RECORD_HEX
    assert decode(bytes.fromhex(RECORD_HEX)) == [("hour", [b"\x00\x01", None]), ("vehicle", [b"ab", UNSET])]


def test_an_empty_value_is_not_a_null_and_a_large_value_keeps_every_byte() -> None:
    big = bytes(range(256)) * 300
    record = encode([("batch", [b"", big])])
    assert decode(record) == [("batch", [b"", big])]
    header = "01" "00000001" "05" + b"batch".hex() + "0002" "00000000"  # fmt: skip
    assert record[: len(header) // 2].hex() == header


MALFORMED = [
    ("02" "00000000", "format 2, expected 1"),
    ("01" "00000001" "04" "686f", "truncated"),
    ("01" "00000001" "01" "61" "0001" "00000005" "6162", "out of the record"),
    ("01" "00000000" "ff", "1 bytes after the last write"),
]  # fmt: skip


@pytest.mark.parametrize(("record_hex", "says"), MALFORMED)
def test_a_malformed_record_says_what_is_wrong(record_hex: str, says: str) -> None:
    with pytest.raises(SinkRecordError, match=says):
        decode(bytes.fromhex(record_hex))


def test_a_statement_name_that_does_not_fit_is_refused() -> None:
    with pytest.raises(SinkRecordError, match="does not fit"):
        encode([("x" * (sink_records.MAX_NAME_BYTES + 1), [])])


class PreparingSession:
    """Prepares the job's statements as a server would describe them: their markers typed by the declared columns
    (so `bind` serialises with the driver's own code, as on a real cluster)."""

    def prepare(self, cql: str) -> PreparedStatement:
        name = next(name for name, text in STATEMENTS.items() if text.format(ks="ks") == cql)
        table = WRITTEN[name]
        columns = [*table.written_columns, *(("[timestamp]",) if table.own_timestamp else ())]
        metadata = [
            ColumnMetadata("ks", table.name, column, cql_type)
            for column, cql_type in zip(columns, statement_types(name), strict=True)
        ]
        return PreparedStatement(metadata, b"id", [0], cql, "ks", PROTOCOL, [], None)


def _hour(vehicle: str, time_us: int) -> tuple[str, Sequence[Any]]:
    return "hour", (vehicle, hour_bucket_ms(time_us))


def test_the_binder_sends_each_row_once_as_the_driver_binds_it() -> None:
    binder = Binder(PreparingSession(), "ks")
    time_us = 1_795_000_000_000_000
    writes = [_hour("van", time_us), ("vehicle", ("van", 1, time_us // 1000, time_us)), _hour("van", time_us)]
    record = binder.sink_record(writes)
    assert record is not None
    assert decode(record) == [(name, bind(name, values)) for name, values in writes[:2]]
    assert binder.sink_record([]) is None


def test_a_row_its_columns_cannot_hold_goes_to_the_sink_as_a_rejection_row() -> None:
    binder = Binder(PreparingSession(), "ks")
    record = binder.sink_record([("vehicle", ("van", 2**63, 0, 0))])  # seq beyond bigint
    assert record is not None
    [(name, values)] = decode(record)
    assert (name, binder.unwritable) == ("rejected", 1)
    assert b"vehicle row its table cannot hold" in b"".join(v for v in values if isinstance(v, bytes))


def test_every_statement_has_a_write_consistency_the_sink_accepts() -> None:
    accepted = {"ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_ONE", "LOCAL_QUORUM", "EACH_QUORUM", "ANY"}
    assert WRITE_CONSISTENCY.keys() == STATEMENTS.keys()
    assert set(WRITE_CONSISTENCY.values()) <= accepted


def test_the_analysis_operator_sends_a_bundles_writes_as_one_record_or_with_sink_python_writes_them() -> None:
    from fleetsense.cloud.jobs.telemetry_ingest import ShardStream

    from tests.unit.test_cloud_logic import _job_settings

    writes = [_hour("van", 1_795_000_000_000_000), _hour("bus", 1_795_000_000_000_000)]
    java = ShardStream(_job_settings())
    assert java.settings.sink == "java"  # the default
    java._writer, java._binder = None, Binder(PreparingSession(), "ks")
    [record] = list(java._write(writes))
    assert [name for name, _ in decode(record)] == ["hour", "hour"]
    assert list(java._write([])) == []  # nothing to write: no record

    class Recorder:
        def __init__(self) -> None:
            self.written: list[Any] = []

        def write_all(self, writes: Sequence[Any]) -> None:
            self.written += writes

    python, recorder = ShardStream(_job_settings(sink="python")), Recorder()
    python._writer, python._binder = recorder, Binder(PreparingSession(), "ks")  # type: ignore[assignment]
    assert list(python._write(writes)) == []
    assert recorder.written == writes


def test_fuzz_any_bytes_decode_or_raise_sink_record_error_and_round_trips_hold() -> None:
    """Seeded: random records round-trip exactly; random mutations of them either decode or raise SinkRecordError,
    never another exception."""
    import random

    rng = random.Random(15)
    for _ in range(3000):
        writes = [
            (
                "".join(rng.choice("abcdefgh_") for _ in range(rng.randint(1, 12))),
                [rng.choice([None, UNSET, rng.randbytes(rng.randint(0, 20))]) for _ in range(rng.randint(0, 6))],
            )
            for _ in range(rng.randint(0, 5))
        ]
        record = encode(writes)
        assert decode(record) == [(name, list(values)) for name, values in writes]
        mutated = bytearray(record)
        for _ in range(rng.randint(1, 4)):
            choice = rng.random()
            if choice < 0.4 and mutated:
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            elif choice < 0.7 and mutated:
                del mutated[rng.randrange(len(mutated)) :]
            else:
                mutated += rng.randbytes(rng.randint(1, 8))
        try:
            decode(bytes(mutated))
        except SinkRecordError:
            pass
