"""MQTT source: uplinks from a broker, acknowledged only after they are committed.

One network thread owns the paho client (``CallbackAPIVersion.VERSION2``). Each received
PUBLISH goes on the pipeline's bounded queue, in arrival order, in a :class:`MessageBatch`
with the others of the same socket read (at most ``MAX_BATCH``), with an ``ack`` that the
pipeline calls after the batch holding them is committed; only then are the PUBACKs sent
(paho ``manual_ack=True``). A gateway that dies before committing never acknowledged the
message, so the broker sends it again; dedup in the store makes that harmless. Link
changes go on the same queue as :class:`SourceEvent` (``connected``, ``disconnected``,
``error``), like the serial source's, after the messages read before them.

**Why MQTT v5** (clean start off, session expiry "never"), rather than 3.1.1 with
``clean_session=False``: both keep a persistent session, so messages published while the
gateway is down are queued by the broker and delivered when it returns. v5 adds what this
source needs on top:

- *Receive Maximum*: the gateway sets its own in-flight window (messages sent to it and not
  yet acknowledged) to fit its commit cadence. A 3.1.1 client gets the broker's
  ``max_inflight_messages``, 20 by default, and since nothing is acknowledged before a
  commit, 20 per 200 ms batch is 100 messages/s. (Mosquitto 2.0.11 holds the window
  exactly only until acknowledgements flow, then lets more through: docs/mqtt.md.)
- Shared subscriptions (``$share/<group>/...``) are part of the v5 standard, so several
  gateway processes can split one stream on any v5 broker. (Mosquitto 2 also accepts them
  from 3.1.1 clients, as an extension: checked with mosquitto 2.0.11.)
- Reason codes: a refused CONNACK says why (mosquitto 2.0 answers a wrong password with
  135 *Not authorized*), and a server DISCONNECT 142 *Session taken over* tells us another
  process uses our client id, which the log can name instead of a silent ping-pong.

The session never expires on the broker (``SessionExpiryInterval`` 0xFFFFFFFF, as 3.1.1
persistent sessions behave): a gateway that is away for a week finds its messages waiting,
up to the broker's queue bound (``deploy/mosquitto/conf.d/limits.conf``). A retired gateway's
session is removed by the broker's ``persistent_client_expiration``.

**Stale acknowledgements.** After a reconnect the broker resends every unacknowledged
message, with the packet ids it had. An ``ack`` for a message received on an earlier
connection is therefore not sent (counted in ``stale_acks``): its packet id now belongs to
the redelivered copy, or to a newer message once that copy is acknowledged, and a PUBACK
for it would acknowledge a message not yet committed. The redelivered copy is committed
(as a duplicate) and acknowledged on the current connection. Each connection gets a new
paho client, so "which connection" is simply "which client object".

**Backpressure.** The end of each read puts its batch with a blocking wait (checking the
stop flags every 0.1 s) while the queue is full (bounded by messages), and paho reads
nothing meanwhile: the broker keeps the messages. Nothing is dropped here.

**Reconnecting.** Our own loop, not paho's: paho's backoff has no jitter, and a broker
restart would bring every gateway back in lock-step. A lost connection or unreachable
broker is retried after ``initial_s`` doubling to ``max_s`` (a connection that lasted
less than 10 s does not reset that, so a broker that keeps dropping us is not hammered
either); a refusal that only a change
of configuration can fix (bad credentials, not authorised, untrusted TLS certificate,
banned, session taken over) after ``refused_s`` (60 s). Each delay is drawn between half
and all of its nominal value. An outage is logged once (again if its reason changes), a
refusal as an ERROR naming the config key to fix. :class:`Reconnects` holds that policy;
the alert publisher (gateway/sinks/mqtt_alerts.py) reconnects by it too.

**Gateway status.** On connect, ``{"state": "online", ...}`` is published retained at
``satoyama/<site>/gateway/<gateway_id>/status``; the will (sent by the broker if we vanish)
and a clean shutdown put ``"offline"`` there, retained.

**Stopping.** The shared ``stop`` event (the gateway's) stops intake: messages arriving
after it are left unacknowledged for the next run, but the connection stays up so the
pipeline's last commit can still send its acknowledgements. :meth:`stop` then publishes
``offline``, disconnects and joins the thread, in at most 2 s together.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import random
import ssl
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from firmware_bridge.native import format_timestamp
from gateway.config.models import MqttSourceConfig
from gateway.sources.feeder import POLL_INTERVAL_S, QueueFeeder
from gateway.sources.items import BatchAck, MessageBatch, SourceEvent

logger = logging.getLogger(__name__)

#: Default in-flight window (Receive Maximum). Two batches' worth at the default
#: ``pipeline.batch_max`` of 500: one is being committed while the next fills.
DEFAULT_RECEIVE_MAXIMUM = 1000
#: MQTT 5 §3.1.2.11.2: 0xFFFFFFFF means the session does not expire.
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
KEEPALIVE_S = 30
CONNECT_TIMEOUT_S = 5.0
#: stop() gives up waiting after this long in total (offline status, DISCONNECT, join).
STOP_TIMEOUT_S = 2.0
#: A connection that lasted less than this does not reset the backoff: a broker that
#: accepts and then drops us (another process with our client id, an ACL kick) must not
#: turn into a reconnect loop.
STABLE_AFTER_S = 10.0
#: Bytes asked of the socket per read (paho asks for one packet part at a time).
READ_SIZE = 65536
#: Most messages in one queue item: the queue (bounded by messages) and a commit batch
#: (``pipeline.batch_max``) may overshoot their bound by less than this.
MAX_BATCH = 256
_PUBACK = bytes((PUBACK, 2))  # fixed header of a PUBACK without reason code: type, length

# CONNACK / DISCONNECT reason codes (MQTT 5 §3.2.2.2, §3.14.2.1) that retrying cannot fix.
_CLIENT_ID_NOT_VALID = 133
_BAD_CREDENTIALS = 134
_NOT_AUTHORIZED = 135
_BANNED = 138
_BAD_AUTH_METHOD = 140
_SESSION_TAKEN_OVER = 142
_CREDENTIAL_HINT = (
    "check sources.mqtt.username and sources.mqtt.password (or sources.mqtt.password_file, "
    "or SATOYAMA_SOURCES__MQTT__PASSWORD), and the broker's password file / ACL"
)
_REFUSAL_HINTS = {
    _CLIENT_ID_NOT_VALID: "check sources.mqtt.client_id (or gateway_id, which it defaults from)",
    _BAD_CREDENTIALS: _CREDENTIAL_HINT,
    _NOT_AUTHORIZED: _CREDENTIAL_HINT,
    _BANNED: "the broker bans this client; check sources.mqtt.client_id and the broker config",
    _BAD_AUTH_METHOD: "the broker wants another authentication method; check sources.mqtt",
    _SESSION_TAKEN_OVER: "another process connected with the same client id; every gateway "
    "needs its own gateway_id (or sources.mqtt.client_id)",
}
_SAME_CLIENT_ID_HINT = "each gateway needs its own gateway_id or sources.mqtt.client_id"


def _package_version() -> str:
    try:
        return version("satoyama")
    except PackageNotFoundError:
        return "0+unknown"


class MqttConfigError(ValueError):
    """The MQTT settings cannot be used (e.g. an unreadable TLS file); names the key."""


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays. ``delay(n)`` for the n-th consecutive failure (0 first)."""

    initial_s: float = 1.0
    max_s: float = 30.0
    refused_s: float = 60.0  # a refusal only a config change fixes

    def delay(self, failures: int, *, refused: bool, rand: Callable[[], float]) -> float:
        nominal = self.refused_s if refused else min(
            self.max_s, self.initial_s * 2 ** min(failures, 30)
        )
        # "Equal jitter": never less than half the nominal delay (no hammering), and
        # gateways cut off by the same broker restart come back spread over the other half.
        return nominal * (0.5 + 0.5 * rand())


class Reconnects:
    """When an MQTT client of the gateway tries again, and whether it says so.

    The one reconnect policy of this source and the alert publisher
    (gateway/sinks/mqtt_alerts.py): delays from :class:`Backoff`; an outage lasts until a
    connection has held for :data:`STABLE_AFTER_S`, so a broker that accepts and then
    drops the client (another process with its client id) does not reset the backoff, and
    within one outage each reason is reported once, not on every retry.
    """

    def __init__(self, backoff: Backoff, rand: Callable[[], float] = random.random) -> None:
        self.backoff = backoff
        self._rand = rand
        self.failures = 0  # consecutive, since the last stable connection
        self._reported: set[Hashable] = set()

    def connection_ended(self, lasted_s: float) -> bool:
        """A connection that had been accepted ended after ``lasted_s``: whether it was
        stable (then the outage starting now is a new one)."""
        stable = lasted_s >= STABLE_AFTER_S
        if stable:
            self.failures = 0
            self._reported.clear()
        return stable

    def next_delay(self, *, refused: bool = False) -> float:
        """The wait before the next attempt after one more failure."""
        delay = self.backoff.delay(self.failures, refused=refused, rand=self._rand)
        self.failures += 1
        return delay

    def first_report(self, key: Hashable) -> bool:
        """True the first time ``key`` (a reason, or what makes two reasons the same) comes
        up in the current outage: log it then, not on every retry."""
        if key in self._reported:
            return False
        self._reported.add(key)
        return True


@dataclass(frozen=True)
class MqttSourceStats:
    name: str
    url: str
    client_id: str
    connected: bool
    connect_attempts: int
    connects: int
    refusals: int
    messages_received: int
    acks_sent: int
    stale_acks: int
    messages_not_queued: int
    queue_full_waits: int
    last_error: str | None


def tls_context(cfg: MqttSourceConfig) -> ssl.SSLContext | None:
    """The SSLContext for ``cfg`` (None without TLS). Raises MqttConfigError naming the key."""
    if not cfg.uses_tls:
        return None
    tls = cfg.tls
    ca = tls.ca_file if tls is not None else None
    try:
        ctx = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise MqttConfigError(
            f"sources.mqtt.tls.ca_file {ca}: cannot load CA certificates: {exc}"
        ) from exc
    if tls is not None and tls.cert_file is not None and tls.key_file is not None:
        try:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise MqttConfigError(
                f"sources.mqtt.tls.cert_file {tls.cert_file} / key_file {tls.key_file}: "
                f"cannot load the client certificate: {exc}"
            ) from exc
    if tls is not None and tls.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def describe_connect_error(exc: BaseException, cfg: MqttSourceConfig) -> tuple[str, bool]:
    """(message for people, whether only a config change can fix it) for a failed connect."""
    where = f"{cfg.host}:{cfg.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS: the broker's certificate is not trusted ({exc.verify_message}); check "
            "sources.mqtt.tls.ca_file (the CA that signed the broker's certificate) and "
            "that the URL's host name is in the certificate",
            True,
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS handshake with {where} failed ({exc.reason or exc}); check that the port "
            "speaks TLS and sources.mqtt.tls (cert_file/key_file if the broker requires a "
            "client certificate)",
            True,
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {where} refused (is the broker running there?)", False
    text = str(exc) or type(exc).__name__
    return f"cannot connect to {where}: {text}", False


def describe_refusal(code: ReasonCode | int, *, connack: bool) -> tuple[str, bool]:
    value = code.value if isinstance(code, ReasonCode) else int(code)
    name = code.getName() if isinstance(code, ReasonCode) else str(code)
    hint = _REFUSAL_HINTS.get(value)
    what = "refused the connection" if connack else "disconnected us"
    if hint is None:
        return f"broker {what}: {name} ({value})", False
    return f"broker {what}: {name} ({value}); {hint}", True


def describe_disconnect(code: ReasonCode, lasted_s: float, client_id: str
                        ) -> tuple[str, bool]:
    """(message for people, whether only a config change can fix it) for a connection the
    broker ended after accepting it, ``lasted_s`` later.

    A DISCONNECT 142 *Session taken over* names the cause; Mosquitto 2.0 sends none and
    just closes the older connection, so a short-lived one gets the same hint.
    """
    if code.value == _SESSION_TAKEN_OVER:
        return describe_refusal(code, connack=False)
    detail = f"connection lost: {code.getName()}"
    if lasted_s < STABLE_AFTER_S:
        detail += (f" after {lasted_s:.1f} s (if this repeats: another process connecting "
                   f"as {client_id!r}? {_SAME_CLIENT_ID_HINT})")
    return detail, False


class MqttSource(QueueFeeder):
    """Subscribe to ``cfg.topics`` and put one :class:`Message` per PUBLISH on ``out``."""

    def __init__(
        self,
        name: str,
        cfg: MqttSourceConfig,
        out: queue.Queue[Any],
        *,
        site: str,
        gateway_id: str,
        stop: threading.Event | None = None,
        receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM,
        backoff: Backoff | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not 1 <= receive_maximum <= 65535:
            raise ValueError(f"receive_maximum must be 1..65535, got {receive_maximum}")
        super().__init__(name, out, stop)
        self.cfg = cfg
        self.client_id = cfg.client_id or f"satoyama-{gateway_id}"
        self.gateway_id = gateway_id
        self.site = site
        self.status_topic = f"satoyama/{site}/gateway/{gateway_id}/status"
        self.receive_maximum = receive_maximum
        self.backoff = backoff or Backoff()
        self._rand = rand
        self._version = _package_version()

        # One paho client per connection: an ack closure holds the client its message came
        # from and is sent only while that client is the current, connected one.
        self._ack_lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._up: mqtt.Client | None = None  # the client whose CONNACK was a success
        self._up_since = 0.0  # monotonic time of that CONNACK
        self._ever_connected = False
        self._refusal: tuple[str, bool] | None = None  # set by on_connect / on_disconnect
        self._session_over = threading.Event()

        self.connect_attempts = 0
        self.connects = 0
        self.refusals = 0
        self.messages_received = 0
        self.acks_sent = 0
        self.stale_acks = 0
        self.messages_not_queued = 0  # arrived after stop: left unacknowledged for next run
        # The current read's messages (paho's network thread only), put by _flush.
        self._batch: list[tuple[str, bytes]] = []
        self._batch_mids: list[Hashable] = []
        self._batch_send: Callable[[Sequence[Hashable]], None] | None = None
        self._batch_ns = 0
        self._batch_mono = 0
        self.last_error: str | None = None

        if cfg.qos == 2:
            logger.warning(
                "mqtt source %s: sources.mqtt.qos 2 sends PUBREC before the message is "
                "committed, so a crash in between loses it; qos 1 is safer here (dedup "
                "makes its redeliveries harmless)", name,
            )
        self._tls = tls_context(cfg)  # raises MqttConfigError for unusable TLS files
        self._password_text = self._password()

    # -- setup ----------------------------------------------------------------------------

    def _password(self) -> str | None:
        if self.cfg.password is not None:
            return self.cfg.password.get_secret_value()
        if self.cfg.password_file is not None:  # the loader normally resolved it already
            try:
                return self.cfg.password_file.read_text().strip()
            except OSError as exc:
                raise MqttConfigError(
                    f"sources.mqtt.password_file {self.cfg.password_file}: {exc.strerror}"
                ) from exc
        return None

    def _make_client(self) -> _Client:
        client = _Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=False,  # _run reconnects, with jitter, on a new client
        )
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.suppress_exceptions = True  # a bug in a callback must not kill the thread
        client.enable_logger(_paho_log)
        if self._tls is not None:
            client.tls_set_context(self._tls)
        if self.cfg.username is not None or self._password_text is not None:
            client.username_pw_set(self.cfg.username, self._password_text)
        client.will_set(self.status_topic, self._status("offline", "connection lost"),
                        qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_qos1_publish = functools.partial(self._receive, client)
        client.on_read_done = self._flush
        for qos in (1, 2):
            client.ackers[qos] = functools.partial(self._send_acks, client, qos)
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        props.ReceiveMaximum = self.receive_maximum
        return props

    def _status(self, state: str, reason: str | None = None, *, at: bool = False) -> bytes:
        body: dict[str, Any] = {"state": state, "gateway": self.gateway_id, "site": self.site}
        if at:
            body["time"] = format_timestamp(time.time_ns())
        if state == "online":
            body["version"] = self._version
        if reason:
            body["reason"] = reason
        return json.dumps(body, separators=(",", ":")).encode()

    # -- control (any thread) -------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"mqtt source {self.name!r} already started")
        self._thread = threading.Thread(target=self._run, name=f"mqtt-source-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Publish ``offline`` (retained), disconnect and end the threads, within ``timeout``.

        Call it after the pipeline's last commit, so its acknowledgements still go out.
        """
        deadline = time.monotonic() + timeout
        self._stop_requested.set()
        client = self._client
        if client is not None:
            if self._connected:
                try:
                    info = client.publish(self.status_topic,
                                          self._status("offline", "shutdown", at=True),
                                          qos=1, retain=True)
                    info.wait_for_publish(max(0.0, min(1.0, deadline - time.monotonic() - 0.5)))
                except (RuntimeError, ValueError) as exc:  # the connection went away meanwhile
                    logger.debug("mqtt source %s: offline status not sent: %s", self.name, exc)
            client.disconnect()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():
                logger.warning("mqtt source %s: still busy after %.1f s; leaving it (daemon)",
                               self.name, timeout)

    def stats(self) -> MqttSourceStats:
        return MqttSourceStats(
            name=self.name, url=self.cfg.url, client_id=self.client_id,
            connected=self._connected, connect_attempts=self.connect_attempts,
            connects=self.connects, refusals=self.refusals,
            messages_received=self.messages_received, acks_sent=self.acks_sent,
            stale_acks=self.stale_acks, messages_not_queued=self.messages_not_queued,
            queue_full_waits=self.queue_full_waits, last_error=self.last_error,
        )

    # -- supervisor thread ----------------------------------------------------------------

    def _closing(self) -> bool:
        return self._stop_requested.is_set()

    stall_message = ("mqtt source %s: queue full for %.1f s; not reading from the broker "
                     "until the pipeline catches up")

    def _draining(self) -> bool:
        """No more intake or reconnects: stop() was called or the shared event is set."""
        return self._stopping()

    def _session(self) -> tuple[str, bool] | None:
        """One connection, from CONNECT to its end: the problem, or None if it was up."""
        client = self._make_client()
        self._refusal = None
        self._session_over.clear()
        try:
            client.connect(self.cfg.host, self.cfg.port, keepalive=KEEPALIVE_S,
                           clean_start=False, properties=self._connect_properties())
        except Exception as exc:  # OSError, ssl.SSLError, socket.gaierror: all retried
            return describe_connect_error(exc, self.cfg)
        with self._ack_lock:
            self._client = client
        client.loop_start()  # paho's network thread for this connection
        try:
            while not self._session_over.wait(POLL_INTERVAL_S):
                if self._closing():
                    break
        finally:
            if self._closing() and self._up is not client:
                client.disconnect()  # stopped while the CONNACK was on its way
            client.loop_stop()
        if self._refusal is not None:
            return self._refusal
        if self._up is client or self._closing():
            return None
        return "the broker closed the connection before accepting it", False

    def _run(self) -> None:
        reconnects = Reconnects(self.backoff, self._rand)
        while not self._draining():
            self.connect_attempts += 1
            problem = self._session()
            if self._closing():
                break
            if self._up is not None:  # the connection was up
                self._up = None
                reconnects.connection_ended(time.monotonic() - self._up_since)
            if problem is None:  # lost: on_disconnect logged it and put "disconnected"
                self._sleep(reconnects.next_delay())
                continue
            reason, refused = problem
            self.last_error = reason
            self.refusals += refused
            delay = reconnects.next_delay(refused=refused)
            if reconnects.first_report(reason):
                logger.log(logging.ERROR if refused else logging.WARNING,
                           "mqtt source %s: %s; retrying in %.1f s", self.name, reason, delay)
                self._put(SourceEvent(self.name, "error", reason))
            else:
                logger.debug("mqtt source %s: %s; retrying in %.1f s", self.name, reason, delay)
            self._sleep(delay)
        self._connected = False
        logger.debug("mqtt source %s: stopped", self.name)

    # -- paho callbacks (paho's network thread) --------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, _properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._refusal = describe_refusal(reason_code, connack=True)
            return
        with self._ack_lock:
            self._connected = True
        self._up = client
        self._up_since = time.monotonic()
        self.connects += 1
        topics = self.cfg.subscriptions
        # retainHandling 1: retained messages only for a subscription that is new, not
        # again for one the resumed session already had.
        client.subscribe([(t, SubscribeOptions(qos=self.cfg.qos, retainHandling=1))
                          for t in topics])
        client.publish(self.status_topic, self._status("online", at=True), qos=1, retain=True)
        session = "resumed" if flags.session_present else "new"
        if self.last_error is not None:
            logger.warning("mqtt source %s: connected to %s again (session %s)", self.name,
                           self.cfg.url, session)
        else:
            logger.info("mqtt source %s: connected to %s as %s (session %s), subscribed to %s",
                        self.name, self.cfg.url, self.client_id, session, ", ".join(topics))
        if self._ever_connected and not flags.session_present:
            logger.warning(
                "mqtt source %s: the broker had lost our session; messages published while "
                "we were away were not kept (broker restarted without persistence?)", self.name)
        self._ever_connected = True
        self.last_error = None
        self._flush()
        self._put(SourceEvent(self.name, "connected", f"{self.cfg.url} session {session}"))

    def _on_disconnect(self, client: mqtt.Client, _userdata: Any,
                       _flags: mqtt.DisconnectFlags, reason_code: ReasonCode,
                       _properties: Properties | None) -> None:
        try:
            with self._ack_lock:
                was_connected, self._connected = self._connected, False
            if self._closing() or not was_connected:
                return
            detail, refused = describe_disconnect(
                reason_code, time.monotonic() - self._up_since, self.client_id)
            if refused:  # session taken over: _run waits the refused interval
                self._refusal = detail, refused
            else:
                self.last_error = detail
            logger.warning("mqtt source %s: %s", self.name, detail)
            self._flush()  # what was read before the link went down goes first
            self._put(SourceEvent(self.name, "disconnected", detail))
        finally:
            self._session_over.set()

    def _on_message(self, client: mqtt.Client, _userdata: Any,
                    message: mqtt.MQTTMessage) -> None:
        self._receive(cast(_Client, client), message.topic, bytes(message.payload),
                      message.qos, message.mid)

    def _receive(self, client: _Client, topic: str, payload: bytes, qos: int, mid: int) -> None:
        """Add a message to the current read's batch (paho's network thread only)."""
        self.messages_received += 1
        send = client.ackers[qos] if qos > 0 else None
        batch = self._batch
        if batch and (send is not self._batch_send or len(batch) >= MAX_BATCH):
            self._flush()
            batch = self._batch
        if not batch:
            self._batch_send = send
            self._batch_ns = time.time_ns()
            self._batch_mono = time.monotonic_ns()
        batch.append((topic, payload))
        if send is not None:
            self._batch_mids.append(mid)

    def _flush(self) -> None:
        """Put the batch collected so far on the queue (at the end of each read, and before
        a link event, so the queue keeps arrival order)."""
        batch = self._batch
        if not batch:
            return
        mids = self._batch_mids
        self._batch, self._batch_mids = [], []
        send = self._batch_send
        item = MessageBatch(self.name, batch, self._batch_ns, self._batch_mono,
                            ack=BatchAck(send, mids) if send is not None else None)
        if self._draining() or not self._put(item):
            # Not queued, so never acknowledged: the broker sends them again next time.
            self.messages_not_queued += len(batch)

    def _send_acks(self, client: _Client, qos: int, mids: Sequence[Hashable]) -> None:
        """Acknowledge committed messages, if ``client`` is still the connection they came
        from (see "Stale acknowledgements")."""
        with self._ack_lock:
            if client is not self._client or not self._connected:
                self.stale_acks += len(mids)
                return
            if qos == 1:
                client.puback_all(mids)
            else:
                for mid in mids:
                    client.ack(cast(int, mid), qos)
            self.acks_sent += len(mids)


class _Client(mqtt.Client):
    """paho's client with two shortcuts for a stream of small messages.

    - Reads: paho reads each packet with three ``recv`` calls (type byte, length, body)
      and a ``select`` before each packet. Here ``recv`` takes up to 64 KiB at a time and
      hands paho its bytes from that buffer, and a read goes on while the buffer holds
      any, so the next ``select`` never waits for bytes that are already here.
    - QoS 1 PUBLISH: parsed here straight into ``on_qos1_publish(topic, payload, qos,
      mid)``, without paho's MQTTMessage, MQTT 5 Properties object and topic matcher (the
      source uses no per-topic callbacks, and asks for no topic aliases). Anything unusual
      (bad UTF-8 in the topic, a malformed packet) goes the normal way through paho.
    - PUBACKs: ``puback_all`` queues a batch's PUBACKs as one write (the same 4 bytes per
      message that paho's ``ack`` sends, MQTT 5 §3.4.2.1: reason code 0 may be left out),
      instead of one queue entry, one wake-up and one ``send`` per message.

    Both rely on paho 2.x internals (``_sock_recv``, ``_packet_queue``); the MQTT tests
    against a real Mosquitto cover them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self.ackers: dict[int, Callable[[Sequence[Hashable]], None]] = {}
        self.on_qos1_publish: Callable[[str, bytes, int, int], None] | None = None
        self.on_read_done: Callable[[], None] | None = None

    def _packet_read(self) -> mqtt.MQTTErrorCode:
        """Every complete QoS 1 PUBLISH already in the read buffer, in one loop; anything
        else (another packet type, a packet cut by the end of the buffer, a malformed one)
        goes through paho's own reader, one packet at a time, as it always does."""
        handler = self.on_qos1_publish
        if handler is None or self._in_packet["command"] or self._protocol != mqtt.MQTTv5:
            return super()._packet_read()
        buf, pos = self._rbuf, self._rpos
        end = len(buf)
        handled = 0
        with self._in_callback_mutex:
            while pos < end and buf[pos] & 0xF6 == _PUBLISH_QOS1:  # any DUP and RETAIN flag
                parsed = _parse_qos1_publish(buf, pos, end)
                if parsed is None:
                    break
                pos, topic, mid, payload = parsed
                self._rpos = pos
                handled += 1
                self._call_handler(handler, topic, payload, mid)
        if not handled:
            return super()._packet_read()
        with self._msgtime_mutex:
            self._last_bytes_received = _paho_time()
        return mqtt.MQTT_ERR_SUCCESS

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        """A QoS 1 PUBLISH that came through paho's reader (split across reads)."""
        handler = self.on_qos1_publish
        command = self._in_packet["command"]
        if handler is None or command & 0x06 != 0x02 or self._protocol != mqtt.MQTTv5:
            return super()._handle_publish()
        packet = bytes(self._in_packet["packet"])
        try:
            topic, mid, payload = _publish_body(packet, 0, len(packet))
        except (IndexError, ValueError):  # paho's own path reports it as it always does
            return super()._handle_publish()
        with self._in_callback_mutex:
            self._call_handler(handler, topic, payload, mid)
        return mqtt.MQTT_ERR_SUCCESS

    def _call_handler(self, handler: Callable[[str, bytes, int, int], None], topic: str,
                      payload: bytes, mid: int) -> None:
        """Hand one QoS 1 message over, reporting a handler's error as paho does."""
        try:
            handler(topic, payload, 1, mid)
        except Exception as err:
            self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
            if not self.suppress_exceptions:
                raise

    def _sock_recv(self, bufsize: int) -> bytes:
        pos = self._rpos
        if pos >= len(self._rbuf):
            data = super()._sock_recv(READ_SIZE)
            if not data:
                return data  # connection closed
            self._rbuf, pos = data, 0
        self._rpos = pos + bufsize
        return self._rbuf[pos:pos + bufsize]

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        try:
            rc = super().loop_read(max_packets)
            while (rc == mqtt.MQTT_ERR_SUCCESS and self._rpos < len(self._rbuf)
                   and self._sock is not None):
                rc = super().loop_read(max_packets)
        finally:
            if self.on_read_done is not None:
                self.on_read_done()  # the read's messages go on the queue as one batch
        return rc

    def _sock_close(self) -> None:
        self._rbuf, self._rpos = b"", 0
        super()._sock_close()

    def puback_all(self, mids: Sequence[Hashable]) -> None:
        packet = b"".join([_PUBACK + cast(int, mid).to_bytes(2, "big") for mid in mids])
        self._packet_queue(PUBACK, packet, 0, 1)


_PUBLISH_QOS1 = 0x32  # fixed header of a PUBLISH with QoS 1, DUP and RETAIN masked out
_paho_time = mqtt.time_func  # the clock paho's keepalive compares _last_bytes_received with


def _publish_body(buf: bytes, start: int, end: int) -> tuple[str, int, bytes]:
    """(topic, packet id, payload) of the MQTT 5 QoS 1 PUBLISH body ``buf[start:end]``
    (after the fixed header). Raises IndexError or ValueError if it is malformed."""
    topic_end = start + 2 + (buf[start] << 8 | buf[start + 1])
    topic = buf[start + 2:topic_end].decode()
    mid = buf[topic_end] << 8 | buf[topic_end + 1]
    pos, props, shift = topic_end + 2, 0, 0
    while True:  # properties length, a variable byte integer (MQTT 5 §1.5.5)
        byte = buf[pos]
        props |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            break
        shift += 7
        if shift > 21:
            raise ValueError("properties length")
    if pos + props > end or not topic:
        raise ValueError("short packet")
    return topic, mid, buf[pos + props:end]


def _parse_qos1_publish(buf: bytes, pos: int, end: int) -> tuple[int, str, int, bytes] | None:
    """The QoS 1 PUBLISH starting at ``buf[pos]``: (position after it, topic, packet id,
    payload), or None if it does not end within ``buf[:end]`` or is malformed."""
    length, shift, i = 0, 0, pos + 1
    while True:  # remaining length, a variable byte integer of at most 4 bytes
        if i >= end:
            return None
        byte = buf[i]
        i += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 21:
            return None
    if i + length > end:
        return None
    try:
        topic, mid, payload = _publish_body(buf, i, i + length)
    except (IndexError, ValueError):
        return None
    return i + length, topic, mid, payload


class PahoNoise(logging.Filter):
    """paho 2.2 runs its loop once more after a clean DISCONNECT and logs that at ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_paho_log = logging.getLogger(__name__ + ".paho")
_paho_log.addFilter(PahoNoise())
