"""The agent's MQTT link: one loop that connects, sends the outbox oldest-first, deletes a batch only when
its PUBACK arrives, and reconnects with jittered exponential backoff that grows until a connection proves the
broker usable (edge/backoff.py), moving to the next broker endpoint when one fails (edge/failover.py: paho has
no multi-host failover of its own). A fresh paho client per connection keeps all retransmission decisions here,
where the outbox is, instead of in paho's memory."""

from __future__ import annotations

import dataclasses
import logging
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from fleetsense.edge.backoff import Backoff, ConnectionOutcome, ReconnectPacer, TokenBucket
from fleetsense.edge.failover import Failover
from fleetsense.edge.mqtt_client import never_raises, new_client
from fleetsense.edge.outbox import Entry, Gap, Outbox
from fleetsense.edge.send_cursor import SendCursor

from fleetsense import wire
from fleetsense.device_config import EdgeConfig
from fleetsense.endpoints import Endpoint
from fleetsense.errors import FleetsenseError
from fleetsense.ids import status_topic
from fleetsense.status import VehicleStatus

log = logging.getLogger(__name__)

StatusSource = Callable[[str, list[Gap]], VehicleStatus]
# The bytes to publish for an entry now (its payload, or a re-timed copy), or None to hold it: not sent now,
# not in flight, and not in the way of the entries behind it (Contract B, docs/edge-agent.md "The link").
Prepare = Callable[[Entry], bytes | None]
PAGE = 100  # outbox entries read per query while filling
IDLE_WAIT_S = 0.2  # longest sleep with nothing to send: a group the outbox committed late is seen this soon


def send_payload(entry: Entry) -> bytes | None:
    return entry.payload


class Link:
    def __init__(
        self,
        config: EdgeConfig,
        outbox: Outbox,
        status_source: StatusSource,
        *,
        backoff: ReconnectPacer | Backoff | None = None,
        connect_timeout_s: float | None = None,
        prepare: Prepare | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.status_source = status_source
        self.failover = Failover.from_config(config.broker, config.vehicle_id)
        if isinstance(backoff, Backoff):
            backoff = ReconnectPacer(backoff, config.broker.stable_connection_s)
        if backoff is not None:
            self.failover = Failover(self.failover.order, backoff)
        # How long one endpoint gets (TCP connect, then CONNACK) before the attempt counts as failed.
        self.connect_timeout_s = connect_timeout_s or config.broker.connect_timeout_s
        self.prepare = prepare or send_payload
        self.connected = threading.Event()
        self.last_error: str | None = None
        # Counters, for status and tests: attempts, logins accepted (CONNACK), batches acknowledged.
        self.attempts = 0
        self.connects = 0
        self.published = 0
        self.last_outcome: ConnectionOutcome | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._release = threading.Event()
        self._drain_deadline: float | None = None
        self._status_due = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._lock = threading.Lock()
        self._inflight: dict[int, tuple[Entry, float]] = {}  # mid -> (entry, monotonic time sent)
        self._status_inflight: dict[int, list[Gap]] = {}
        self._early_acks: set[int] = set()
        self._cursor = SendCursor()
        self._acknowledged_here = 0  # telemetry PUBACKs on the current connection
        self._in_flight_at_close = 0

    # -- control, from the agent's thread -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """New rows in the outbox."""
        self._wake.set()

    def release_held(self) -> None:
        """Look at held entries again (the clock became synchronised, or a hold expired). Any thread."""
        self._release.set()
        self._wake.set()

    def send_status(self) -> None:
        self._status_due.set()
        self._wake.set()

    def stop(self, *, drain_timeout_s: float) -> None:
        """Send what can be sent within drain_timeout_s, say goodbye (offline status), disconnect."""
        # The last group commit first: stopping drains everything the outbox took, its memory included (the 1970
        # clock test lost its last two batches to a drain that ended before the group was due on disk).
        self.outbox.flush()
        self._drain_deadline = time.monotonic() + drain_timeout_s
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:  # started
            self._thread.join(drain_timeout_s + self.connect_timeout_s + 5)

    # -- the connection loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            final = self._stop.is_set()  # stop requested before this attempt: it is the last one
            client = self._new_client()
            self.attempts += 1
            outcome = ConnectionOutcome(connected=False)
            if self._connect(client, self.failover.current, abort_on_stop=not final):
                self.connects += 1
                up_since = time.monotonic()
                try:
                    self._pump(client)  # once stop is set, returns when the outbox is drained or time is up
                    up_s = time.monotonic() - up_since
                finally:
                    self._close(client)
                if self._stop.is_set():
                    return
                outcome = ConnectionOutcome(
                    connected=True,
                    up_s=up_s,
                    acknowledged=self._acknowledged_here,
                    in_flight_at_close=self._in_flight_at_close,
                )
            if final:
                return
            self.last_outcome = outcome
            attempt = self.failover.after(outcome)
            log.info(
                "reconnecting to %s in %.1f s (%d failed connections in a row)",
                attempt.endpoint,
                attempt.delay_s,
                self.failover.backoff.attempts - 1,
            )
            # A stop during the wait ends it early, for one last attempt to connect and drain.
            self._stop.wait(attempt.delay_s)

    def _new_client(self) -> mqtt.Client:
        client = new_client(self.config, connect_timeout_s=self.connect_timeout_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _connect(self, client: mqtt.Client, endpoint: Endpoint, *, abort_on_stop: bool = True) -> bool:
        self.connected.clear()
        self.last_error = None
        # One budget for TCP and CONNACK together: a silent node costs connect_timeout_s, not twice that.
        deadline = time.monotonic() + self.connect_timeout_s
        try:
            client.connect(endpoint.host, endpoint.port, keepalive=self.config.broker.keepalive_s)
        except (OSError, ssl.SSLError) as exc:
            self.last_error = f"cannot reach {endpoint}: {exc}"
            log.warning("%s", self.last_error)
            return False
        client.loop_start()
        while not self.connected.wait(0.05):
            if self.last_error or time.monotonic() > deadline or (abort_on_stop and self._stop.is_set()):
                log.warning("not connected to %s: %s", endpoint, self.last_error or "no CONNACK in time")
                client.loop_stop()
                return False
        return True

    def _close(self, client: mqtt.Client) -> None:
        client.disconnect()
        client.loop_stop()
        with self._lock:
            self._in_flight_at_close = len(self._inflight) + len(self._status_inflight)
            # Unacknowledged rows stay in the outbox and go out again, oldest first, on the next connection.
            self._inflight.clear()
            self._status_inflight.clear()
            self._early_acks.clear()

    def _pump(self, client: mqtt.Client) -> None:
        outbox_cfg = self.config.outbox
        bucket = TokenBucket(outbox_cfg.replay_rate_per_s, burst=max(1.0, outbox_cfg.max_inflight / 2))
        self._cursor = SendCursor()  # a new connection looks at every durable entry again, held ones included
        self._release.clear()
        self._acknowledged_here = 0
        first_status = True
        next_heartbeat = time.monotonic()  # status right after connecting
        while self.connected.is_set():
            now = time.monotonic()
            if self._status_due.is_set() or now >= next_heartbeat:
                self._status_due.clear()
                self._publish_status(client, "connected" if first_status else "heartbeat")
                first_status = False
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
            if self._release.is_set():
                self._release.clear()
                self._cursor.release()
            # Idle (nothing to offer, or max_inflight reached) the loop sleeps until woken: by the agent after a
            # store, by a PUBACK, by a release. It polled every 10 ms before, ~100 wake-ups a second for nothing.
            wait_s = max(0.01, bucket.wait_s()) if self._fill(client, bucket) else IDLE_WAIT_S
            self._wake.wait(min(wait_s, max(0.0, next_heartbeat - now)))
            self._wake.clear()

    def _fill(self, client: mqtt.Client, bucket: TokenBucket) -> bool:
        """Offer entries oldest-first until max_inflight are in flight, the replay rate says wait, or the outbox
        has nothing more to offer (everything after the cursor sent, set aside or held). True when it stopped
        for the replay rate (the loop comes back when the next token is due)."""
        cursor = self._cursor
        while len(self._inflight) < self.config.outbox.max_inflight:
            page = self.outbox.pending(after_id=cursor.read_after_id(), limit=PAGE)
            for entry in page:
                if not cursor.wants(entry.id):
                    cursor.passed(entry.id, held=False)  # in flight already: its PUBACK settles it
                    continue
                if len(self._inflight) >= self.config.outbox.max_inflight:
                    return False
                if not bucket.ready(time.monotonic()):
                    return True
                verdict = self._offer(client, entry)
                if verdict is None:
                    return False  # disconnected meanwhile; the loop notices
                cursor.passed(entry.id, held=verdict == "held")
                if verdict == "sent":
                    bucket.take(time.monotonic())
            if len(page) < PAGE:
                if not cursor.revisiting:
                    return False
                cursor.reached_end()
        return False

    def _offer(self, client: mqtt.Client, entry: Entry) -> str | None:
        """Publish one entry: "sent", "held" (prepare said not now), "set aside" (never sendable), or None when
        the client is no longer connected."""
        problem = self._unsendable(entry.payload)
        data: bytes | None = None
        if not problem:
            try:
                data = self.prepare(entry)
            except Exception as exc:  # a bug in the policy must not stop the link or lose the batch
                log.exception("preparing outbox row seq %d failed", entry.seq)
                problem = f"could not be prepared for sending ({exc!r})"
        if not problem and data is None:
            return "held"
        if data is not None and not problem:
            problem = self._unsendable(data)
        if problem or data is None:
            log.error("outbox row seq %d %s: set aside", entry.seq, problem)
            self.outbox.set_aside(entry, problem)
            return "set aside"
        # Never call into paho while holding our lock: paho holds its own locks while it runs on_publish,
        # which takes ours (lock-order inversion = deadlock, seen as a silent link and a keepalive timeout).
        info = client.publish(entry.topic, data, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        self._track(info.mid, entry)
        return "sent"

    def _unsendable(self, payload: bytes) -> str:
        """Why a row can never be delivered (so it must not block the rows behind it), or ""."""
        limit = self.config.broker.max_message_bytes
        if len(payload) > limit:
            # The broker would refuse it without a PUBACK and leave the session unable to publish.
            return f"is {len(payload)} bytes, over the broker's limit of {limit}"
        try:
            wire.decode_header(payload)
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
        """The broker has it: forget it in the outbox. A failure here loses nothing: the row stays, and goes out
        again on the next connection (the cloud drops the duplicate by vehicle and seq)."""
        if isinstance(what, Entry):
            with self._lock:
                self._acknowledged_here += 1
                self.published += 1
            try:
                self.outbox.acknowledge(what.id)
            except Exception:
                log.exception(
                    "batch seq %d was delivered but not removed from the outbox: it will be sent again on the next"
                    " connection (a duplicate the cloud drops)",
                    what.seq,
                )
        elif what:
            try:
                self.outbox.mark_reported(what)
            except Exception:
                log.exception("gaps %s were reported but not marked: the next status reports them again", what)

    def _ack_overdue(self) -> bool:
        with self._lock:
            oldest = min((sent_at for _, sent_at in self._inflight.values()), default=None)
        return oldest is not None and time.monotonic() - oldest > self.config.outbox.ack_timeout_s

    def _drained_or_late(self) -> bool:
        """Nothing in flight and nothing left to offer (held entries cannot be sent now: they stay in the
        outbox for the next run), or the drain time is up."""
        late = self._drain_deadline is not None and time.monotonic() > self._drain_deadline
        if late:
            return True
        nothing_new = not self.outbox.pending(after_id=self._cursor.examined_id, limit=1)
        return not self._inflight and nothing_new and not self._release.is_set() and not self._cursor.revisiting

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

    # -- paho callbacks (paho's network thread; never_raises: an exception would end that thread) ------------

    @never_raises("this login attempt is abandoned and retried after the backoff")
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"the broker refused vehicle {self.config.broker.username!r}: {reason}"
            log.error("%s (check the credentials in the config, or re-provision the vehicle)", self.last_error)
            return
        log.info("connected to %s", self.failover.current)
        self.connected.set()
        self._wake.set()

    @never_raises("none: the loss is still noticed")
    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        try:
            if self.connected.is_set():
                # Our own disconnect at shutdown is normal; anything else is worth a warning.
                failure = getattr(reason, "is_failure", True)
                log.log(logging.WARNING if failure else logging.INFO, "disconnected from the broker: %s", reason)
            elif not self.last_error:
                # Closed before any CONNACK (a node still starting, or going down): this attempt is over now,
                # not at the connect timeout, and the next endpoint is tried.
                self.last_error = f"the connection closed before the broker answered ({reason})"
        finally:
            self.connected.clear()
            self._wake.set()

    @never_raises("a PUBACK left unsettled: its batch stays in the outbox and is resent on the next connection")
    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        try:
            with self._lock:
                sent = self._inflight.pop(mid, None)
                gaps = self._status_inflight.pop(mid, None)
                if sent is None and gaps is None:
                    self._early_acks.add(mid)  # publish() has not returned to _track yet
            if sent is not None:
                self._settle(sent[0])
            if gaps is not None:
                self._settle(gaps)
        finally:
            self._wake.set()
