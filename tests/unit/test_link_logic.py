"""The link's bookkeeping without a broker: the send cursor with held entries, the prepare hook's order of
sending, and callbacks that never raise into paho's network thread. (The same behaviours against the real
RabbitMQ: tests/integration/test_refusing_broker.py.)"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fleetsense.edge.backoff import TokenBucket
from fleetsense.edge.link import Link
from fleetsense.edge.outbox import Entry, Gap, Outbox
from fleetsense.edge.send_cursor import SendCursor

from fleetsense import wire
from fleetsense.device_config import BrokerConfig, EdgeConfig, StorageConfig
from fleetsense.endpoints import Endpoint
from fleetsense.ids import telemetry_topic
from fleetsense.status import VehicleStatus

VID = "van-009"


def test_the_cursor_holds_entries_without_blocking_the_ones_behind_and_revisits_only_them() -> None:
    cursor = SendCursor()
    for entry_id in range(1, 11):
        assert cursor.wants(entry_id)
        cursor.passed(entry_id, held=entry_id in (2, 3, 7))
    assert (cursor.examined_id, list(cursor.held), cursor.oldest_held_id()) == (10, [2, 3, 7], 2)
    assert cursor.read_after_id() == 10  # nothing to revisit until released

    cursor.release()
    assert cursor.revisiting and cursor.read_after_id() == 1
    # The outbox still holds 2, 3, 7 (held) and 8 (in flight); 1, 4-6, 9, 10 were acknowledged and are gone.
    offered = []
    for entry_id in (2, 3, 7, 8):
        if cursor.wants(entry_id):
            offered.append(entry_id)
            cursor.passed(entry_id, held=entry_id == 3)  # 3 is still not ready
        else:
            cursor.passed(entry_id, held=False)
    assert offered == [2, 3, 7]
    cursor.reached_end()
    assert not cursor.revisiting and list(cursor.held) == [3] and cursor.read_after_id() == 10
    assert cursor.wants(11)  # new entries are offered as usual


def config(tmp_path: Path) -> EdgeConfig:
    return EdgeConfig(
        vehicle_id=VID,
        broker=BrokerConfig(host="127.0.0.1", username=VID, password="unused"),
        storage=StorageConfig(state_dir=str(tmp_path)),
    )


def batch(seq: int) -> bytes:
    return wire.encode(
        wire.Batch(
            vehicle_id=VID,
            seq=seq,
            start_time_us=1_800_000_000_000_000 + seq * 1_000_000,
            sample_period_us=10_000,
            kind=wire.Kind.IMU,
            scales=(0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001),
            samples=[(0, 0, 9807, 0, 0, 0)] * 10,
        )
    )


def filled_outbox(tmp_path: Path, count: int) -> Outbox:
    box = Outbox(tmp_path / "outbox", max_bytes=10_000_000)
    for _ in range(count):
        box.append(telemetry_topic(VID), batch)
    box.flush()  # on disk, so the link is offered them (the outbox commits in groups)
    return box


def status(reason: str, gaps: list[Gap]) -> VehicleStatus:
    return VehicleStatus(vehicle_id=VID, online=True, reason=reason)


def bucket() -> TokenBucket:
    return TokenBucket(rate_per_s=1000, burst=100)


@dataclass
class RecordingClient:
    """Only what _fill calls on a paho client: publish, answered with a message id."""

    published: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int) -> mqtt.MQTTMessageInfo:
        self.published.append((topic, payload))
        info = mqtt.MQTTMessageInfo(len(self.published))
        info.rc = mqtt.MQTT_ERR_SUCCESS
        return info


def test_held_entries_are_skipped_sent_on_release_and_acknowledged_by_id_whatever_bytes_went_out(
    tmp_path: Path,
) -> None:
    box = filled_outbox(tmp_path, 6)
    ready: set[int] = {0, 1, 4, 5}  # seqs the stub policy lets out now; 2 and 3 wait (say, for the clock)

    def prepare(entry: Entry) -> bytes | None:
        return b"retimed:" + entry.payload if entry.seq in ready else None

    link = Link(config(tmp_path), box, status, prepare=prepare)
    link._unsendable = lambda payload: ""  # type: ignore[method-assign]  # the stub's bytes are not wire format
    client = RecordingClient()
    link._fill(client, bucket())  # type: ignore[arg-type]
    assert [wire.decode_header(p[len(b"retimed:") :]).seq for _, p in client.published] == [0, 1, 4, 5]
    assert len(link._inflight) == 4  # held entries are not in flight

    for mid in range(1, 5):
        link._on_publish(client, None, mid, None, None)
    assert [e.seq for e in box.pending()] == [2, 3]  # acknowledged by entry id

    link._fill(client, bucket())  # type: ignore[arg-type]
    assert len(client.published) == 4  # no release yet: held entries are not looked at again
    ready.add(3)
    link.release_held()
    link._cursor.release()  # what the pump does when it sees the release
    link._fill(client, bucket())  # type: ignore[arg-type]
    assert wire.decode_header(client.published[-1][1][len(b"retimed:") :]).seq == 3
    assert list(link._cursor.held) == [box.pending()[0].id]  # seq 2 is still held
    box.close()


def test_a_failing_acknowledge_is_logged_and_the_callback_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = filled_outbox(tmp_path, 2)
    link = Link(config(tmp_path), box, status)
    first, second = box.pending()
    link._track(1, first)
    link._track(2, second)

    def broken(entry_id: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(box, "acknowledge", broken)
        with caplog.at_level(logging.ERROR):
            link._on_publish(None, None, 1, None, None)  # type: ignore[arg-type]  # must not raise into paho
    assert "batch seq 0 was delivered but not removed from the outbox" in caplog.text
    link._on_publish(None, None, 2, None, None)  # type: ignore[arg-type]
    # The first stays in the outbox (sent again on the next connection); the second was settled normally.
    assert [e.seq for e in box.pending()] == [0]
    box.close()


def test_no_exception_escapes_any_paho_callback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    box = filled_outbox(tmp_path, 0)
    link = Link(config(tmp_path), box, status)

    class Exploding:
        @property
        def is_failure(self) -> bool:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        link._on_connect(None, None, None, Exploding(), None)  # type: ignore[arg-type]
        link.connected.set()
        link._on_disconnect(None, None, None, Exploding(), None)  # type: ignore[arg-type]
    assert caplog.text.count("; the link carries on") == 2
    assert "_on_connect failed (this login attempt is abandoned and retried after the backoff)" in caplog.text
    assert not link.connected.is_set()  # the disconnect was still noticed
    box.close()


def test_an_idle_connection_sleeps_until_woken_instead_of_polling(tmp_path: Path) -> None:
    # Found by bench/edge_agent.py: with nothing to send the loop woke every 10 ms (the replay bucket, full, said
    # "no wait", floored at 10 ms): ~100 outbox reads a second, a third of the real agent's CPU.
    box = filled_outbox(tmp_path, 0)
    reads = []
    pending = box.pending

    def counted_pending(**kwargs: int) -> list[Entry]:
        reads.append(kwargs)
        return pending(**kwargs)

    box.pending = counted_pending  # type: ignore[method-assign]
    link = Link(config(tmp_path), box, status)
    link.connected.set()
    pump = threading.Thread(target=link._pump, args=(RecordingClient(),))
    pump.start()
    time.sleep(1.0)
    link.connected.clear()
    link.wake()
    pump.join(5)
    assert not pump.is_alive()
    assert len(reads) <= 10, f"{len(reads)} outbox reads in 1 s of an idle connection"
    box.close()


def test_the_link_walks_its_endpoints_round_robin_when_none_answers(tmp_path: Path) -> None:
    """Three "brokers" that take the TCP connection and hang up without a CONNACK: the link tries each in turn (in
    the order listed), giving each the connect timeout at most, never the same one twice in a row."""
    servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(3)]
    order: list[int] = []

    def hang_up(index: int) -> None:
        while True:
            try:
                conn, _ = servers[index].accept()
            except OSError:
                return
            order.append(index)
            conn.close()

    for index in range(3):
        threading.Thread(target=hang_up, args=(index,), daemon=True).start()
    endpoints = tuple(Endpoint("127.0.0.1", s.getsockname()[1]) for s in servers)
    base = config(tmp_path)
    broker = dataclasses.replace(
        base.broker,
        host="",
        endpoints=endpoints,
        endpoint_order="listed",
        reconnect_base_s=0.01,
        reconnect_cap_s=0.05,
        connect_timeout_s=1.0,
    )
    link = Link(dataclasses.replace(base, broker=broker), filled_outbox(tmp_path, 1), status)
    started = time.monotonic()
    link.start()
    try:
        while len(order) < 7 and time.monotonic() - started < 20:
            time.sleep(0.01)
        elapsed_s = time.monotonic() - started
    finally:
        link.stop(drain_timeout_s=0)
        for server in servers:
            server.close()
    assert order[:7] == [0, 1, 2, 0, 1, 2, 0], order
    assert link.connects == 0 and link.failover.switches >= 6
    # Each attempt ends with the hang-up, not at the connect timeout.
    assert elapsed_s < 7 * 0.5, f"{elapsed_s:.1f} s for 7 attempts"
