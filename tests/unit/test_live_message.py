"""The live feed's message (service/live_event.py LiveEvent, written by the connector's EventMessage): the bytes the
Java side is pinned to (EventMessageTest), and decoding any body a broker could hand the API, fuzzed."""

from __future__ import annotations

import json

import pytest
from fleetsense.cloud.cassandra_sink import LIVE_EVENT_STATEMENT, LiveEventSettings
from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.tables import EVENTS_BY_VEHICLE
from fleetsense.gateway.topology import EVENTS_EXCHANGE
from fleetsense.service.live_event import LiveEvent
from fleetsense.service.settings import ServeSettings
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsense.errors import ConfigError

# EventMessageTest.aHarshBrakeIsTheJsonOfLiveEventToJson pins the same bytes on the Java side.
JAVA_BYTES = (
    b'{"key":"van-01/1765000000123/harsh_brake","vehicle_id":"van-01","kind":"harsh_brake","start_ms":1765000000123,'
    b'"end_ms":1765000000923,"duration_ms":800,"peak":0.5,"peak_unit":"g","detected_ms":1765000002000}'
)
BRAKE = LiveEvent(
    vehicle_id="van-01",
    kind="harsh_brake",
    start_ms=1765000000123,
    end_ms=1765000000923,
    duration_ms=800,
    peak=0.5,
    peak_unit="g",
    detected_ms=1765000002000,
)


def test_python_writes_the_bytes_the_java_publisher_writes() -> None:
    assert BRAKE.to_json() == JAVA_BYTES
    assert LiveEvent.from_json(JAVA_BYTES) == BRAKE


def test_the_java_publisher_reads_every_column_it_needs_from_the_event_row_it_follows() -> None:
    # LiveEvents.COLUMNS (Java) names these columns of the statement the sink publishes after.
    assert EVENTS_BY_VEHICLE.write == LIVE_EVENT_STATEMENT
    columns = {c.name for c in EVENTS_BY_VEHICLE.columns}
    java_columns = {"vehicle_id", "kind", "start_time", "end_time", "duration_ms", "peak", "peak_unit", "detected_at"}
    assert java_columns <= columns


def test_the_job_the_broker_and_the_api_name_the_same_exchange() -> None:
    job_default = {f.name: f.default for f in IngestJobSettings.__dataclass_fields__.values()}["events_exchange"]
    assert job_default == EVENTS_EXCHANGE == ServeSettings().events_exchange


def test_the_live_event_settings_never_show_the_password() -> None:
    live = LiveEventSettings(
        host="h", port=5672, virtual_host="fleet", username="u", password="hunter2", heartbeat_s=5, exchange="x"
    )
    assert "hunter2" not in repr(live)


@pytest.mark.parametrize("name", ["fleet events", "fleet/events", "é", "x" * 256])
def test_an_events_exchange_that_is_no_exchange_name_is_refused_naming_the_setting(name: str) -> None:
    base = IngestJobSettings(
        amqp_host="h", amqp_port=1, amqp_vhost="/", amqp_username="u", amqp_password="p", amqp_queue="q",
        cassandra_host="c", cassandra_port=2, keyspace="k", connector_jar="j",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="events_exchange"):
        base.with_overrides({"events_exchange": name})
    assert base.with_overrides({"events_exchange": ""}).events_exchange == ""


_text = st.text(max_size=40)
_int = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_events = st.builds(
    LiveEvent,
    vehicle_id=_text,
    kind=_text,
    start_ms=_int,
    end_ms=_int,
    duration_ms=_int,
    peak=st.floats(allow_nan=False, allow_infinity=False),
    peak_unit=_text,
    detected_ms=_int,
)


@settings(max_examples=500)
@given(_events)
def test_every_event_reads_back_as_itself(event: LiveEvent) -> None:
    body = event.to_json()
    assert LiveEvent.from_json(body) == event
    assert json.loads(body)["key"] == event.key


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=1000)
@given(st.one_of(st.binary(max_size=300), _json_values.map(lambda v: json.dumps(v).encode())))
def test_any_other_body_is_refused_with_a_config_error_never_another_exception(body: bytes) -> None:
    try:
        LiveEvent.from_json(body)
    except ConfigError as exc:
        assert "a live event that is not one" in str(exc)


@settings(max_examples=500)
@given(_events, st.sampled_from(sorted(LiveEvent.__dataclass_fields__)), _json_values)
def test_a_message_with_a_field_missing_or_replaced_never_raises_anything_but_a_config_error(
    event: LiveEvent, name: str, value: object
) -> None:
    data = json.loads(event.to_json())
    broken = {k: v for k, v in data.items() if k != name}
    for body in (json.dumps(broken).encode(), json.dumps(data | {name: value}).encode()):
        try:
            LiveEvent.from_json(body)
        except ConfigError:
            pass
