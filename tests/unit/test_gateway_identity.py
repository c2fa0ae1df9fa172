"""The identity authoriser's decisions, its HTTP service, and the broker settings derived for it."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from fleetsense.gateway import authoriser
from fleetsense.gateway.identity import MAX_REQUEST_BYTES, PATHS, VEHICLE_TAG, decide, decide_connection, parse_request
from fleetsense.gateway.provision import DEVICE_TOPIC_PATTERN, DeviceLimits, device_topic_pattern
from fleetsense.gateway.topology import (
    DEAD_LETTER_EXCHANGE,
    STATUS_DEAD_LETTER_EXCHANGE,
    STATUS_QUEUE,
    TELEMETRY_QUEUE,
    Topology,
)
from hypothesis import given
from hypothesis import strategies as st

from fleetsense.ids import TOPIC_KINDS, VEHICLE_ID_PATTERN, status_topic, telemetry_topic
from fleetsense.stack.layout import Ports, StackConfig
from fleetsense.stack.rabbitmq import AuthChain, RabbitMQ, authoriser_port

DEVICE = [VEHICLE_TAG]
vehicle_ids = st.from_regex(VEHICLE_ID_PATTERN, fullmatch=True)


# -- decisions ------------------------------------------------------------------------------------


def test_a_device_connects_over_mqtt_with_its_own_id_as_client_id() -> None:
    assert decide_connection(username="van-1", client_id="van-1", tags=DEVICE).allow


def test_another_vehicles_client_id_is_a_refused_takeover() -> None:
    decision = decide_connection(username="van-1", client_id="van-2", tags=DEVICE)
    assert not decision.allow
    assert "'van-2'" in decision.reason and "'van-1'" in decision.reason and "takeover" in decision.reason


def test_a_device_cannot_open_a_connection_without_a_client_id() -> None:
    decision = decide_connection(username="van-1", client_id=None, tags=DEVICE)
    assert not decision.allow and "MQTT only" in decision.reason


def test_service_users_connect_over_amqp_but_over_mqtt_only_as_themselves() -> None:
    assert decide_connection(username="fleetsense-flink", client_id=None, tags=[]).allow
    assert decide_connection(username="fleetsense-operator", client_id=None, tags=["administrator"]).allow
    assert not decide_connection(username="fleetsense-operator", client_id="van-1", tags=["administrator"]).allow


def test_only_the_vhost_question_decides_and_unknown_questions_are_refused() -> None:
    takeover = {"username": "van-1", "client_id": "van-2", "tags": VEHICLE_TAG, "vhost": "fleet"}
    assert not decide("vhost", takeover).allow
    for path in ("user", "resource", "topic"):
        assert decide(path, takeover).allow, path  # the broker's own backend decides these too
    assert not decide("admin", takeover).allow
    assert not decide("vhost", {"client_id": "van-2"}).allow  # no user named


@given(username=vehicle_ids, client_id=st.text(max_size=80), tags=st.lists(st.sampled_from([VEHICLE_TAG, "x", ""])))
def test_an_mqtt_connection_is_allowed_exactly_when_the_client_id_is_the_user_name(
    username: str, client_id: str, tags: list[str]
) -> None:
    assert decide_connection(username=username, client_id=client_id, tags=tags).allow == (client_id == username)


@given(st.binary(max_size=300))
def test_any_request_body_gets_an_answer_and_never_an_exception(body: bytes) -> None:
    for path in PATHS:
        decision = authoriser.answer(f"/auth/{path}", body)
        assert decision.answer in (b"allow", b"deny")


@given(username=vehicle_ids, client_id=st.text(min_size=1, max_size=80))
def test_what_the_broker_encodes_is_decoded_to_the_same_client_id(username: str, client_id: str) -> None:
    """rabbitmq_auth_backend_http percent-encodes each value (quote_plus); any client id, however hostile
    (`&client_id=` inside it, `+`, `%`, non-ASCII), must reach the rule unchanged."""
    body = urlencode({"username": username, "vhost": "fleet", "client_id": client_id, "tags": VEHICLE_TAG})
    decision = authoriser.answer("/auth/vhost", body.encode())
    assert decision.allow == (client_id == username)


def test_ambiguous_or_oversized_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="more than once"):
        parse_request(b"username=van-1&client_id=van-1&client_id=van-2")
    with pytest.raises(ValueError, match="limit"):
        parse_request(b"x" * (MAX_REQUEST_BYTES + 1))
    with pytest.raises(ValueError, match="UTF-8"):
        parse_request(b"username=%ff")
    assert not authoriser.answer("/auth/vhost", b"username=van-1&client_id=van-1&client_id=van-2").allow
    assert not authoriser.answer("/other", b"username=van-1&client_id=van-1").allow


# -- the HTTP service -----------------------------------------------------------------------------


@pytest.fixture()
def service() -> Iterator[str]:
    server = authoriser.serve("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_service_answers_as_the_broker_expects_and_logs_each_refusal_without_the_password(
    service: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fleetsense.authoriser")
    user = {"username": "van-1", "password": "s3cret-pass", "client_id": "van-1", "vhost": "fleet"}
    assert requests.post(f"{service}/auth/user", data=user, timeout=5).text == "allow"
    takeover = {"username": "van-2", "vhost": "fleet", "client_id": "van-1", "tags": VEHICLE_TAG, "ip": "10.0.0.9"}
    assert requests.post(f"{service}/auth/vhost", data=takeover, timeout=5).text == "deny"
    assert requests.get(f"{service}/health", timeout=5).text == "ok"
    assert requests.get(f"{service}/auth/user?username=van-1", timeout=5).status_code == 405  # POST only
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refusals) == 1 and "'van-2'" in refusals[0] and "'van-1'" in refusals[0] and "10.0.0.9" in refusals[0]
    assert "s3cret-pass" not in caplog.text


# -- permissions, limits and queue bounds ---------------------------------------------------------


def test_the_topic_permission_allows_exactly_the_kinds_that_exist() -> None:
    assert device_topic_pattern(TOPIC_KINDS) == DEVICE_TOPIC_PATTERN
    own = re.compile(DEVICE_TOPIC_PATTERN.replace("{username}", "van-1"))
    for topic in (telemetry_topic("van-1"), status_topic("van-1")):
        assert own.match(topic.replace("/", "."))
    for key in ("fleet.van-1.bogus", "fleet.van-1.telemetryx", "fleet.van-2.telemetry", "fleet.van-1.status.x"):
        assert not own.match(key), key
    assert "{client_id}" not in DEVICE_TOPIC_PATTERN


def test_device_limits_leave_room_for_one_reconnect_overlap() -> None:
    limits = DeviceLimits()
    assert limits.max_connections == 2
    assert limits.max_channels == limits.max_connections * limits.channels_per_connection == 6


def test_every_queue_is_bounded_in_bytes_and_count_and_every_delivery_limit_has_a_dead_letter_target() -> None:
    queues = {spec.name: spec.limits for spec in Topology().queues()}
    for name, limits in queues.items():
        assert limits["max-length-bytes"] > 0 and limits["max-length"] > 0, name
        if "delivery-limit" in limits:
            assert limits["dead-letter-exchange"], name
    assert queues[TELEMETRY_QUEUE]["dead-letter-exchange"] == DEAD_LETTER_EXCHANGE
    # A full status queue dead-letters what it drops: never into the telemetry's poison-message queue.
    assert queues[STATUS_QUEUE]["dead-letter-exchange"] == STATUS_DEAD_LETTER_EXCHANGE
    assert queues[STATUS_QUEUE]["delivery-limit"] == Topology().delivery_limit
    exchanges = {name for name, _ in Topology().exchanges()}
    targets = {limits["dead-letter-exchange"] for limits in queues.values() if "dead-letter-exchange" in limits}
    assert targets <= exchanges


# -- the broker's configuration ---------------------------------------------------------------------


def test_the_broker_asks_the_cached_authoriser_keeps_no_retained_messages_and_serves_metrics_on_loopback(
    tmp_path: Path,
) -> None:
    config = StackConfig.for_tests(tmp_path)
    broker = RabbitMQ(config)
    broker.write_config()
    conf = (broker.home / "rabbitmq.conf").read_text()
    port = authoriser_port(config)
    for name in PATHS:
        assert f"auth_http.{name}_path = http://127.0.0.1:{port}/auth/{name}\n" in conf
    assert "auth_http.http_method = post\n" in conf
    assert "auth_cache.cached_backend = http\n" in conf
    assert "mqtt.retained_message_store = rabbit_mqtt_retained_msg_store_noop\n" in conf
    assert f"prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = {config.ports.rabbitmq_prometheus}\n" in conf
    advanced = (broker.home / "advanced.config").read_text()
    assert "{rabbit_auth_backend_internal, [rabbit_auth_backend_internal, rabbit_auth_backend_cache]}" in advanced
    plugins = (broker.home / "enabled_plugins").read_text()
    assert "rabbitmq_auth_backend_http" in plugins and "rabbitmq_prometheus" in plugins
    assert AuthChain.UNCACHED.authz_backends()[-1] == "rabbit_auth_backend_http"


def test_the_authoriser_port_is_free_in_every_port_set() -> None:
    for ports in (Ports(), Ports.for_tests(), Ports.for_tests().offset(300)):
        config = StackConfig(ports=ports)
        assert authoriser_port(config) not in ports.fixed().values()
