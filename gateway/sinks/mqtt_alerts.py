"""Alert transitions on MQTT, for Node-RED, Home Assistant or a valve controller.

A consumer of the ``alert`` outbox with its own cursor (``mqtt_alerts``), on the broker of
``sources.mqtt`` (same host, port, TLS and credentials; its own client id, the source's
plus ``-alerts``). Every transition is published as JSON, QoS 1, **retained**, on

    satoyama/<site>/alerts/<rule>/<node>/<sensor>

so a subscriber that starts later still finds the latest state of every alert; a cleared
alert stays there as a retained ``"state": "resolved"`` (not an empty message), so "it was
dry and is fine again" is visible too. docs/alerts.md gives the payload.

Delivery is at least once: the cursor advances only over rows whose PUBACK has arrived
(up to the first one still waiting), so after a crash or a lost connection the
unacknowledged ones are published again; the payload's ``fingerprint`` and ``time`` name a
transition, so a repeat is recognisable (and a retained topic just holds the same state).
At most ``max_in_flight`` publishes wait for their PUBACK at a time: paho 2.2 numbers
messages with 16 bits and quietly stops sending QoS 1 publishes beyond 65,535
unacknowledged ones, and a broker that is away must not make this process queue the whole
outbox in memory.

**Reconnecting** follows the MQTT source's policy (``Reconnects`` in
gateway/sources/mqtt.py), not paho's own reconnect, which has no jitter and starts again
from 1 s after every accepted CONNACK: two gateways with one ``gateway_id`` took this
client id from each other every second, forever. A lost connection or unreachable broker
is retried after 1 s doubling to 30 s, each delay drawn between half and all of it; a
connection that lasted less than 10 s does not reset that (Mosquitto 2.0 just closes the
older of two connections with one client id); a refusal only a config change fixes (bad
credentials, not authorised, DISCONNECT 142 *Session taken over*) waits 60 s. Each
outage is logged once, with the setting to fix. One paho client for the whole run, so a
publish waiting for its PUBACK when the connection drops is sent again by paho after the
reconnect: a link thread connects and waits out each connection (paho's network thread
runs it, ``loop_start``), the publisher thread only reads the outbox, publishes and moves
the cursor.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from firmware_bridge.native import format_timestamp
from gateway.config.models import MqttAlertsConfig, MqttSourceConfig
from gateway.sources.mqtt import (
    CONNECT_TIMEOUT_S,
    STABLE_AFTER_S,
    Backoff,
    PahoNoise,
    Reconnects,
    describe_connect_error,
    describe_disconnect,
    describe_refusal,
    tls_context,
)
from gateway.store.sqlite import Store
from rules.alert import AlertEvent

log = logging.getLogger(__name__)
_paho_log = logging.getLogger(__name__ + ".paho")
_paho_log.addFilter(PahoNoise())

CONSUMER: Final = "mqtt_alerts"
KEEPALIVE_S: Final = 30
_BAD_LEVEL_CHARS = str.maketrans({"/": "_", "+": "_", "#": "_"})


def topic_level(name: str) -> str:
    """A name as one topic level: no '/', '+' or '#', never empty."""
    return name.translate(_BAD_LEVEL_CHARS) or "_"


def alert_topic(event: AlertEvent) -> str:
    levels = (event.site, "alerts", event.rule, event.node, event.sensor)
    return "satoyama/" + "/".join(topic_level(level) for level in levels)


def alert_payload(event: AlertEvent) -> bytes:
    """The JSON body of one transition (docs/alerts.md)."""
    body: dict[str, Any] = {
        "rule": event.rule, "severity": event.severity, "state": event.state,
        "previous": event.previous, "site": event.site, "plot": event.plot,
        "node": event.node, "sensor": event.sensor, "value": event.value,
        "time": format_timestamp(event.time_ns), "since": format_timestamp(event.since_ns),
        "fingerprint": event.fingerprint,
        "message": {lang: t.summary for lang, t in sorted(event.text.items())},
        "why": {lang: t.why for lang, t in sorted(event.text.items())},
        "action": {lang: t.action for lang, t in sorted(event.text.items())},
        "labels": dict(sorted(event.labels.items())),
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class MqttAlertPublisher:
    """Publishes the alert outbox on MQTT: ``start()``/``stop()``."""

    def __init__(
        self,
        store_path: Any,
        broker: MqttSourceConfig,
        cfg: MqttAlertsConfig,
        *,
        gateway_id: str,
        poll_s: float = 0.2,
        backoff: Backoff | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.broker = broker
        self.cfg = cfg
        self.poll_s = poll_s
        self.backoff = backoff or Backoff()
        self._rand = rand
        self.client_id = f"{broker.client_id or f'satoyama-{gateway_id}'}-alerts"
        self._store = Store(store_path)  # own connection (WAL), as the sinks have
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._link: threading.Thread | None = None
        self._lock = threading.Lock()  # the maps below: this thread and paho's
        self._row_of_mid: dict[int, int] = {}
        self._early_acks: set[int] = set()  # mids acknowledged before they were recorded
        self._acked: set[int] = set()  # row ids acknowledged, above the cursor
        self._waiting: set[int] = set()  # row ids published, not acknowledged
        self._cursor = self._store.cursor(CONSUMER, "alert")
        self._next_id = self._cursor  # last row id handed to paho
        self._connected = threading.Event()
        # One connection's end, set by paho's thread, read by the link thread.
        self._session_over = threading.Event()
        self._up_since: float | None = None  # monotonic time of the last accepted CONNACK
        self._ended: tuple[str, bool] | None = None  # (why, refused) the broker ended it
        self._ended_key: tuple[int, bool] | None = None  # the same problem, without numbers
        self._quiet = False  # a reconnect within an outage already logged: not logged again
        self._ever_connected = False
        self.connect_attempts = 0
        self.connects = 0
        self.published = 0
        self.acknowledged = 0
        self._client = self._make_client()

    # ------------------------------------------------------------------ client

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5,
                             reconnect_on_failure=False)  # _run_link reconnects
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.enable_logger(_paho_log)
        tls = tls_context(self.broker)
        if tls is not None:
            client.tls_set_context(tls)
        if self.broker.username is not None or self.broker.password is not None:
            password = self.broker.password.get_secret_value() if self.broker.password else None
            client.username_pw_set(self.broker.username, password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: ReasonCode,
                    _props: Any) -> None:
        if reason.is_failure:
            self._ended = describe_refusal(reason, connack=True)
            self._ended_key = (reason.value, True)
            return  # the broker closes the connection: on_disconnect ends the session
        self._up_since = time.monotonic()
        self.connects += 1
        self._connected.set()
        if not self._ever_connected:
            log.info("mqtt alerts: connected to %s as %s", self.broker.url, self.client_id)
        elif not self._quiet:
            log.info("mqtt alerts: connected to %s again", self.broker.url)
        else:
            log.debug("mqtt alerts: connected to %s again", self.broker.url)
        self._ever_connected = True

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: ReasonCode,
                       _props: Any) -> None:
        try:
            was_up = self._connected.is_set()
            self._connected.clear()
            if was_up and self._up_since is not None and not self._stop.is_set():
                lasted = time.monotonic() - self._up_since
                self._ended = describe_disconnect(reason, lasted, self.client_id)
                self._ended_key = (reason.value, lasted < STABLE_AFTER_S)
        finally:
            self._session_over.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode,
                    _props: Any) -> None:
        with self._lock:
            row = self._row_of_mid.pop(mid, None)
            if row is None:  # acknowledged before publish() returned to _publish_some
                self._early_acks.add(mid)
                return
            self._acked_row(row)
        if reason.is_failure:  # e.g. not authorised for the topic: say so, do not stall
            log.error("mqtt alerts: broker refused alert row %d: %s; check the broker's ACL "
                      "for satoyama/+/alerts/#", row, reason)

    def _acked_row(self, row: int) -> None:
        self._waiting.discard(row)
        self._acked.add(row)
        self.acknowledged += 1

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        assert self._thread is None, "already started"
        self._link = threading.Thread(target=self._run_link, name="sink-mqtt-alerts-link",
                                      daemon=True)
        self._link.start()
        self._thread = threading.Thread(target=self._run, name="sink-mqtt-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Wait up to ``timeout`` for outstanding PUBACKs, save the cursor, disconnect."""
        deadline = time.monotonic() + timeout
        while self._connected.is_set() and time.monotonic() < deadline:
            with self._lock:
                if not self._waiting:
                    break
            time.sleep(0.02)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))
        self._save_cursor()
        self._client.disconnect()
        if self._link is not None:  # at most a CONNECT in progress (CONNECT_TIMEOUT_S)
            self._link.join(max(0.1, deadline - time.monotonic()))
        self._client.loop_stop()
        self._store.close()

    def _run_link(self) -> None:
        """Connect, wait out the connection, wait the reconnect delay; until stopped."""
        reconnects = Reconnects(self.backoff, self._rand)
        while not self._stop.is_set():
            self.connect_attempts += 1
            (reason, refused), key, lasted = self._session()
            if self._stop.is_set():
                break
            if lasted is not None and reconnects.connection_ended(lasted):
                self._quiet = False
            delay = reconnects.next_delay(refused=refused)
            if reconnects.first_report(key):
                log.log(logging.ERROR if refused else logging.WARNING,
                        "mqtt alerts: %s; retrying in %.1f s", reason, delay)
                self._quiet = False
            else:
                log.debug("mqtt alerts: %s; retrying in %.1f s", reason, delay)
                self._quiet = True
            self._stop.wait(delay)

    def _session(self) -> tuple[tuple[str, bool], Hashable, float | None]:
        """One connection, from CONNECT to its end: (why it ended, refused), what makes
        that reason the same as an earlier one (for logging once), and how long it was up
        (None if it never was)."""
        self._ended = self._ended_key = self._up_since = None
        self._session_over.clear()
        client = self._client
        try:
            client.connect(self.broker.host, self.broker.port, KEEPALIVE_S)
        except Exception as exc:  # OSError, ssl.SSLError, socket.gaierror: all retried
            problem = describe_connect_error(exc, self.broker)
            return problem, problem[0], None
        if self._stop.is_set():  # stop() came while connecting: its disconnect was early
            client.disconnect()
            return ("stopped", False), None, None
        client.loop_start()  # paho's network thread; it ends with the connection
        while not self._session_over.wait(0.1):
            if self._stop.is_set():
                break
        if self._stop.is_set():
            return ("stopped", False), None, None  # stop() disconnects and stops the loop
        client.loop_stop()
        up_since = self._up_since
        lasted = None if up_since is None else time.monotonic() - up_since
        if self._ended is not None:
            return self._ended, self._ended_key, lasted
        problem = "the broker closed the connection before accepting it", False
        return problem, problem[0], lasted

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._save_cursor()
                if self._connected.is_set():
                    self._publish_some()
            except Exception:  # a bug or a broken store: keep going, loudly
                log.exception("mqtt alerts: unexpected error")
            self._stop.wait(self.poll_s)

    # ------------------------------------------------------------------ work

    def _publish_some(self) -> None:
        with self._lock:
            room = self.cfg.max_in_flight - len(self._waiting)
        if room <= 0:
            return
        for row in self._store.alert_rows(self._next_id, room):
            event = AlertEvent.from_row(row)
            row_id = int(row["id"])
            # Not under self._lock: paho calls on_publish holding its own message lock.
            info = self._client.publish(alert_topic(event), alert_payload(event),
                                        qos=1, retain=True)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                # The connection just went: paho keeps the message and sends it after the
                # reconnect, so it counts as in flight.
                log.debug("mqtt alerts: row %d queued by paho (rc %s)", row_id, info.rc)
            with self._lock:
                if info.mid in self._early_acks:
                    self._early_acks.discard(info.mid)
                    self._acked_row(row_id)
                else:
                    self._row_of_mid[info.mid] = row_id
                    self._waiting.add(row_id)
            self._next_id = row_id
            self.published += 1

    def _save_cursor(self) -> None:
        """Move the cursor over the acknowledged rows up to the first one still waiting."""
        with self._lock:
            waiting_low = min(self._waiting, default=None)
            done = [r for r in self._acked if waiting_low is None or r < waiting_low]
            if not done:
                return
            self._acked.difference_update(done)
            new_cursor = max(done)
        if new_cursor > self._cursor:
            self._store.advance(CONSUMER, "alert", new_cursor)
            self._cursor = new_cursor

    @property
    def backlog(self) -> int:
        return self._store.backlog(CONSUMER, ("alert",))["alert"]
