"""`satoyama simulate --mqtt URL`: field nodes publishing native uplinks to a broker.

Each simulated uplink is one message on ``satoyama/<site>/<node>/up`` (DESIGN.md, "Native
MQTT uplink"), QoS 1, so a gateway subscribed to ``satoyama/+/+/up`` takes it as it would a
real node's. The broker connection takes the settings of a gateway's ``sources.mqtt``
(``mqtt://``/``mqtts://`` URL, user name, password file, CA file) and is checked the same way.

**In-flight bound.** paho queues QoS 1 publishes without limit, numbers them with 16 bits and
quietly stops sending once more than 65,535 are unacknowledged (paho 2.2), so
:class:`UplinkPublisher` waits while ``window`` publishes await their PUBACK (and while the
connection is down; paho reconnects and resends what was in flight). The command ends only
when the broker has acknowledged every message, or after ``ack_timeout_s`` says how many it
did not (exit 1).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from firmware_bridge.simulator import FaultPlan, Simulator, Tally
from gateway.config.models import MqttSourceConfig, TlsConfig
from gateway.sources.mqtt import (
    MqttConfigError,
    describe_connect_error,
    describe_refusal,
    tls_context,
)

#: Publishes awaiting their PUBACK at most (paho's own in-flight limit is set to the same).
DEFAULT_WINDOW = 1000
CONNECT_TIMEOUT_S = 10.0


class PublishError(Exception):
    """The broker cannot be reached or refused us; the message says why and what to check."""


class UplinkPublisher:
    """QoS 1 publisher with a bounded backlog of unacknowledged messages."""

    def __init__(self, cfg: MqttSourceConfig, *, client_id: str, password: str | None,
                 window: int = DEFAULT_WINDOW) -> None:
        self.cfg = cfg
        self.window = window
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(window)
        self.client.reconnect_delay_set(1, 5)
        tls = tls_context(cfg)  # MqttConfigError for an unreadable CA file
        if tls is not None:
            self.client.tls_set_context(tls)
        if cfg.username is not None or password is not None:
            self.client.username_pw_set(cfg.username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._cond = threading.Condition()
        self._connected = False
        self._refusal: str | None = None
        self._pending: set[int] = set()  # mids awaiting their PUBACK
        self._early: set[int] = set()  # mids acknowledged before publish() recorded them
        self.published = 0
        self.acknowledged = 0
        self.not_queued = 0  # paho refused the message outright (never sent)

    def connect(self) -> None:
        try:
            self.client.connect(self.cfg.host, self.cfg.port, keepalive=30)
        except OSError as exc:
            raise PublishError(describe_connect_error(exc, self.cfg)[0]) from exc
        self.client.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self._connected or self._refusal is not None,
                                CONNECT_TIMEOUT_S)
            if self._connected:
                return
            refusal = self._refusal
        self.close()
        raise PublishError(refusal or f"no answer from {self.cfg.host}:{self.cfg.port} "
                           f"within {CONNECT_TIMEOUT_S:g} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        with self._cond:
            if rc.is_failure:
                self._refusal = describe_refusal(rc, connack=True)[0]
            else:
                self._connected = True
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        with self._cond:
            self._connected = False

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._cond:
            if mid in self._pending:
                self._pending.discard(mid)
            else:
                self._early.add(mid)
            self.acknowledged += 1
            self._cond.notify_all()

    def publish(self, topic: str, body: bytes, timeout: float = 60.0) -> None:
        with self._cond:
            if not self._cond.wait_for(
                    lambda: self._connected and len(self._pending) < self.window, timeout):
                raise PublishError(f"the broker acknowledged nothing for {timeout:g} s "
                                   f"({len(self._pending)} messages waiting)")
        # Not under our lock: paho calls on_publish holding its own, which publish() takes.
        info = self.client.publish(topic, body, qos=1)
        with self._cond:
            self.published += 1
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                self.not_queued += 1  # NO_CONN: paho keeps it and sends it after reconnecting
            elif info.mid in self._early:
                self._early.discard(info.mid)
            else:
                self._pending.add(info.mid)

    def finish(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for every PUBACK; return how many never came."""
        with self._cond:
            self._cond.wait_for(lambda: not self._pending, timeout)
            return len(self._pending) + self.not_queued


def broker_config(url: str, *, username: str | None, password_file: str | None,
                  ca_file: str | None) -> MqttSourceConfig:
    """The connection settings, checked like a gateway's ``sources.mqtt``."""
    try:
        return MqttSourceConfig(
            url=url, username=username,
            password_file=Path(password_file) if password_file else None,
            tls=TlsConfig(ca_file=Path(ca_file)) if ca_file else None,
        )
    except ValidationError as exc:
        raise PublishError("; ".join(str(e["msg"]) for e in exc.errors())) from None


def read_password(cfg: MqttSourceConfig) -> str | None:
    if cfg.password_file is None:
        return None
    try:
        return cfg.password_file.read_text().strip()
    except OSError as exc:
        raise PublishError(f"--password-file {cfg.password_file}: {exc.strerror}") from exc


def run_simulate_mqtt(
    url: str,
    *,
    site: str,
    nodes: int,
    rate: float,
    count: int | None,
    duration: float | None,
    faults: bool,
    seed: int,
    username: str | None = None,
    password_file: str | None = None,
    ca_file: str | None = None,
    ack_timeout_s: float = 30.0,
    as_json: bool = False,
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
) -> int:
    try:
        cfg = broker_config(url, username=username, password_file=password_file,
                            ca_file=ca_file)
        publisher = UplinkPublisher(cfg, client_id=f"satoyama-simulate-{site}-{seed}",
                                    password=read_password(cfg))
        publisher.connect()
    except (PublishError, MqttConfigError) as exc:
        print(f"simulate: {exc}", file=err)
        return 2 if isinstance(exc, MqttConfigError) else 1
    sim = Simulator(nodes, seed, start_time_s=time.time(), interval_s=1.0 / rate, fmt="mqtt",
                    faults=FaultPlan.uniform(0.02) if faults else None)
    print(f"simulate: {nodes} nodes publishing to {url} as satoyama/{site}/<node>/up",
          file=err)
    tally = Tally()
    failure = None
    end = None if duration is None else time.monotonic() + duration
    next_at = time.monotonic()
    rounds = 0
    try:
        while (count is None or rounds < count) and (end is None or time.monotonic() < end):
            emissions = sim.tick(time.time())
            for i, emission in enumerate(emissions):
                # injected garbage has no node: it goes out on the topic of the uplink that
                # follows it, as if that node's firmware had sent it
                node = emission.node or emissions[i + 1].node
                publisher.publish(f"satoyama/{site}/{node}/up", emission.data)
                tally.add(emission)
            rounds += 1
            next_at += sim.interval_s
            time.sleep(max(0.0, next_at - time.monotonic()))
    except KeyboardInterrupt:
        pass
    except PublishError as exc:
        failure = str(exc)
    unacked = publisher.finish(ack_timeout_s)
    publisher.close()
    report = {"messages": tally.messages, "acknowledged": tally.messages - unacked,
              "unacknowledged": unacked, "faults": tally.faults, "expected": tally.expected}
    print(f"simulate: {tally.messages} messages from {nodes} nodes, "
          f"{tally.messages - unacked} acknowledged by the broker", file=err)
    if tally.faults:
        print("simulate: faults injected: " + ", ".join(
            f"{k} {v}" for k, v in sorted(tally.faults.items())), file=err)
    print("simulate: a gateway should count: " + ", ".join(
        f"{k} {v}" for k, v in sorted(tally.expected.items())), file=err)
    if failure:
        print(f"simulate: stopped early: {failure}", file=err)
    if unacked:
        print(f"simulate: {unacked} messages were not acknowledged within "
              f"{ack_timeout_s:g} s", file=err)
    if as_json:
        print(json.dumps(report, sort_keys=True), file=out)
    return 1 if failure or unacked else 0
