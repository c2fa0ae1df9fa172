"""The agent's MQTT link: one loop that connects, sends the outbox oldest-first, deletes a batch only when
its PUBACK arrives, and reconnects with jittered exponential backoff. A fresh paho client per connection
keeps all retransmission decisions here, where the outbox is, instead of in paho's memory."""

from __future__ import annotations

import dataclasses
import logging
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from fleetsense.edge.backoff import Backoff, TokenBucket
from fleetsense.edge.outbox import Entry, Gap, Outbox
from paho.mqtt.enums import CallbackAPIVersion

from fleetsense import wire
from fleetsense.device_config import EdgeConfig
from fleetsense.errors import FleetsenseError
from fleetsense.ids import status_topic
from fleetsense.status import VehicleStatus

log = logging.getLogger(__name__)

StatusSource = Callable[[str, list[Gap]], VehicleStatus]
Prepare = Callable[[Entry], bytes | None]  # STUB (time branch) of Contract B: the bytes to publish, or None to hold


class Link:
    def __init__(
        self,
        config: EdgeConfig,
        outbox: Outbox,
        status_source: StatusSource,
        *,
        backoff: Backoff | None = None,
        connect_timeout_s: float = 10.0,
        prepare: Prepare | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.status_source = status_source
        self.backoff = backoff or Backoff()
        self.connect_timeout_s = connect_timeout_s
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.published = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drain_deadline: float | None = None
        self._status_due = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._lock = threading.Lock()
        self._inflight: dict[int, tuple[Entry, float]] = {}  # mid -> (entry, monotonic time sent)
        self._status_inflight: dict[int, list[Gap]] = {}
        self._early_acks: set[int] = set()
        self.prepare: Prepare = prepare or (lambda entry: entry.payload)
        self._held: dict[int, Entry] = {}  # STUB (time branch): entries prepare() said to hold, by id
        self._release = threading.Event()

    # -- control, from the agent's thread -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """New rows in the outbox."""
        self._wake.set()

    def release_held(self) -> None:
        """STUB (time branch) of Contract B: look at held entries again."""
        self._release.set()
        self._wake.set()

    def send_status(self) -> None:
        self._status_due.set()
        self._wake.set()

    def stop(self, *, drain_timeout_s: float) -> None:
        """Send what can be sent within drain_timeout_s, say goodbye (offline status), disconnect."""
        self._drain_deadline = time.monotonic() + drain_timeout_s
        self._stop.set()
        self._wake.set()
        self._thread.join(drain_timeout_s + self.connect_timeout_s + 5)

    # -- the connection loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            final = self._stop.is_set()  # stop requested before this attempt: it is the last one
            client = self._new_client()
            if self._connect(client, abort_on_stop=not final):
                self.backoff.reset()
                try:
                    self._pump(client)  # once stop is set, returns when the outbox is drained or time is up
                finally:
                    self._close(client)
                if self._stop.is_set():
                    return
            if final:
                return
            delay = self.backoff.next_delay_s()
            log.info("reconnecting in %.1f s", delay)
            # A stop during the wait ends it early, for one last attempt to connect and drain.
            self._stop.wait(delay)

    def _new_client(self) -> mqtt.Client:
        broker = self.config.broker
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            # The vehicle id as client id: a new connection makes the broker drop a half-open old one at once.
            # (Identity and topic rights come from the username; the gateway refuses a client id other than the
            # username, so a device cannot take over another vehicle's session: docs/gateway.md.)
            client_id=self.config.vehicle_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if broker.password:
            client.username_pw_set(broker.username, broker.password)
        # else: certificate login; a username without a password would make the broker refuse the login.
        if broker.tls:
            client.tls_set(
                ca_certs=broker.ca_file or None,
                certfile=broker.client_cert_file or None,
                keyfile=broker.client_key_file or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        will = VehicleStatus(vehicle_id=self.config.vehicle_id, online=False, reason="connection lost")
        client.will_set(status_topic(self.config.vehicle_id), will.to_json(), qos=1)
        client.max_inflight_messages_set(self.config.outbox.max_inflight + 2)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.connect_timeout = self.connect_timeout_s
        return client

    def _connect(self, client: mqtt.Client, *, abort_on_stop: bool = True) -> bool:
        broker = self.config.broker
        self.connected.clear()
        self.last_error = None
        try:
            client.connect(broker.host, broker.port, keepalive=broker.keepalive_s)
        except (OSError, ssl.SSLError) as exc:
            self.last_error = f"cannot reach {broker.host}:{broker.port}: {exc}"
            log.warning("%s", self.last_error)
            return False
        client.loop_start()
        deadline = time.monotonic() + self.connect_timeout_s
        while not self.connected.wait(0.05):
            if self.last_error or time.monotonic() > deadline or (abort_on_stop and self._stop.is_set()):
                log.warning("not connected: %s", self.last_error or "no CONNACK in time")
                client.loop_stop()
                return False
        return True

    def _close(self, client: mqtt.Client) -> None:
        client.disconnect()
        client.loop_stop()
        with self._lock:
            # Unacknowledged rows stay in the outbox and go out again, oldest first, on the next connection.
            self._inflight.clear()
            self._status_inflight.clear()
            self._early_acks.clear()
            self._held.clear()

    def _pump(self, client: mqtt.Client) -> None:
        outbox_cfg = self.config.outbox
        bucket = TokenBucket(outbox_cfg.replay_rate_per_s, burst=max(1.0, outbox_cfg.max_inflight / 2))
        last_sent_id = 0
        next_heartbeat = time.monotonic()  # status right after connecting
        while self.connected.is_set():
            now = time.monotonic()
            if self._status_due.is_set() or now >= next_heartbeat:
                self._status_due.clear()
                self._publish_status(client, "connected" if last_sent_id == 0 else "heartbeat")
                next_heartbeat = now + self.config.status.heartbeat_s
            if self._stop.is_set() and self._drained_or_late():
                self._publish_status(client, "stopping", online=False)
                self._wait_status_acks(2.0)
                return
            if self._ack_overdue():
                # A broker that takes our bytes but never confirms them: start over on a new connection.
                self.last_error = f"no PUBACK within {self.config.outbox.ack_timeout_s:.0f} s"
                log.warning("%s; reconnecting", self.last_error)
                return
            last_sent_id = self._fill(client, bucket, last_sent_id)
            self._wake.wait(min(0.2, max(0.01, bucket.wait_s()), max(0.0, next_heartbeat - now)))
            self._wake.clear()

    def _fill(self, client: mqtt.Client, bucket: TokenBucket, last_sent_id: int) -> int:
        room = self.config.outbox.max_inflight - len(self._inflight)
        if room <= 0:
            return last_sent_id
        if self._release.is_set():
            self._release.clear()
            for entry in sorted(self._held.values(), key=lambda e: e.id):
                data = self.prepare(entry)
                if data is not None:
                    del self._held[entry.id]
                    info = client.publish(entry.topic, data, qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        return last_sent_id
                    self._track(info.mid, entry)
            return last_sent_id
        for entry in self.outbox.pending(after_id=last_sent_id, limit=room):
            if not bucket.take(time.monotonic()):
                break
            problem = self._unsendable(entry)
            if problem:
                log.error("outbox row seq %d %s: set aside", entry.seq, problem)
                self.outbox.set_aside(entry, problem)
                last_sent_id = entry.id
                continue
            # Never call into paho while holding our lock: paho holds its own locks while it runs on_publish,
            # which takes ours (lock-order inversion = deadlock, seen as a silent link and a keepalive timeout).
            data = self.prepare(entry)
            if data is None:
                self._held[entry.id] = entry
                last_sent_id = entry.id
                continue
            info = client.publish(entry.topic, data, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return last_sent_id  # disconnected meanwhile; the loop notices
            self._track(info.mid, entry)
            last_sent_id = entry.id
        return last_sent_id

    def _unsendable(self, entry: Entry) -> str:
        """Why a row can never be delivered (so it must not block the rows behind it), or ""."""
        limit = self.config.broker.max_message_bytes
        if len(entry.payload) > limit:
            # The broker would refuse it without a PUBACK and leave the session unable to publish.
            return f"is {len(entry.payload)} bytes, over the broker's limit of {limit}"
        try:
            wire.decode_header(entry.payload)
        except FleetsenseError as exc:
            return f"no longer decodes ({exc})"
        return ""

    def _track(self, mid: int, what: Entry | list[Gap]) -> None:
        """Remember what a message id carries; settle it at once if its PUBACK beat us here."""
        with self._lock:
            early = mid in self._early_acks
            self._early_acks.discard(mid)
            if not early:
                if isinstance(what, Entry):
                    self._inflight[mid] = (what, time.monotonic())
                else:
                    self._status_inflight[mid] = what
        if early:
            self._settle(what)

    def _settle(self, what: Entry | list[Gap]) -> None:
        if isinstance(what, Entry):
            self.outbox.acknowledge(what.id)
            self.published += 1
        elif what:
            self.outbox.mark_reported(what)

    def _ack_overdue(self) -> bool:
        with self._lock:
            oldest = min((sent_at for _, sent_at in self._inflight.values()), default=None)
        return oldest is not None and time.monotonic() - oldest > self.config.outbox.ack_timeout_s

    def _drained_or_late(self) -> bool:
        late = self._drain_deadline is not None and time.monotonic() > self._drain_deadline
        first = self.outbox.pending(limit=1)
        return late or (not self._inflight and (not first or first[0].id in self._held))

    def _publish_status(self, client: mqtt.Client, reason: str, *, online: bool = True) -> None:
        gaps = self.outbox.unreported_gaps()
        status = self.status_source(reason, gaps)
        if not online:
            status = dataclasses.replace(status, online=False)
        info = client.publish(status_topic(self.config.vehicle_id), status.to_json(), qos=1)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self._track(info.mid, gaps)

    def _wait_status_acks(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._status_inflight and time.monotonic() < deadline and self.connected.is_set():
            time.sleep(0.02)

    # -- paho callbacks (paho's network thread) ---------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"the broker refused vehicle {self.config.broker.username!r}: {reason}"
            log.error("%s (check the credentials in the config, or re-provision the vehicle)", self.last_error)
            return
        log.info("connected to %s:%d", self.config.broker.host, self.config.broker.port)
        self.connected.set()
        self._wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if self.connected.is_set():
            # Our own disconnect at shutdown is normal; anything else is worth a warning.
            failure = getattr(reason, "is_failure", True)
            log.log(logging.WARNING if failure else logging.INFO, "disconnected from the broker: %s", reason)
        self.connected.clear()
        self._wake.set()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        with self._lock:
            sent = self._inflight.pop(mid, None)
            gaps = self._status_inflight.pop(mid, None)
            if sent is None and gaps is None:
                self._early_acks.add(mid)  # publish() has not returned to _track yet
        if sent is not None:
            self._settle(sent[0])
        if gaps is not None:
            self._settle(gaps)
        self._wake.set()
