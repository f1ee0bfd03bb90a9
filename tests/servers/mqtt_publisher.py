"""A QoS 1 test publisher that never loses track of a message.

paho queues QoS 1 messages without limit, and paho 2.2 silently stops sending once more than
65,535 are unacknowledged, so ``publish`` waits while ``window`` messages are unacknowledged
(and while disconnected). paho reconnects by itself and resends what was in flight;
``finish`` waits for every PUBACK and publishes again whatever the broker never
acknowledged (a duplicate at worst, which the gateway's dedup absorbs).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from firmware_bridge.native import encode_native

NODES = 5


def native_uplink(i: int, site: str = "hill") -> tuple[tuple[str, int], str, bytes]:
    """The i-th uplink of a test stream: ((node, seq), topic, native JSON body)."""
    node, seq = f"n{i % NODES + 1}", i // NODES
    body = encode_native(node, seq, {("temperature_c", "main"): 15 + (i % 100) / 10,
                                     ("soil_moisture_pct", "soil_10cm"): 20 + (i % 300) / 10},
                         battery_v=3.6, rssi_dbm=-90.0)
    return (node, seq), f"satoyama/{site}/{node}/up", body


def publish_uplinks(pub: Publisher, start: int, stop: int) -> None:
    for i in range(start, stop):
        key, topic, body = native_uplink(i)
        pub.publish(key, topic, body)


class Publisher:
    def __init__(
        self,
        url: str,
        *,
        client_id: str = "test-publisher",
        window: int = 500,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.window = window
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(window)
        self.client.reconnect_delay_set(1, 1)
        if username is not None:
            self.client.username_pw_set(username, password)
        if parts.scheme == "mqtts":
            self.client.tls_set_context(ssl.create_default_context(cafile=ca_file))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._cond = threading.Condition()
        self._connected = False
        self._pending: dict[int, tuple[Hashable, str, bytes]] = {}  # mid -> key, topic, body
        self._lost: list[tuple[Hashable, str, bytes]] = []  # publish() refused: send again
        self._early: set[int] = set()
        self.acked: set[Hashable] = set()
        self.published = 0
        self.connects = 0

    def __enter__(self) -> Publisher:
        self.client.connect_async(self.host, self.port)
        self.client.loop_start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._connected, 10):
                raise TimeoutError("publisher could not connect")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        with self._cond:
            self._connected = not rc.is_failure
            self.connects += 1
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        with self._cond:
            self._connected = False

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._cond:
            entry = self._pending.pop(mid, None)
            if entry is None:
                self._early.add(mid)  # acknowledged before publish() recorded it
            else:
                self.acked.add(entry[0])
            self._cond.notify_all()

    def publish(self, key: Hashable, topic: str, body: bytes, timeout: float = 30) -> None:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._connected and len(self._pending) < self.window, timeout)
            if not ok:
                raise TimeoutError("publisher stalled: broker not acknowledging")
        # Not under our lock: paho calls on_publish holding its own, and publish() takes it.
        info = self.client.publish(topic, body, qos=1)
        with self._cond:
            if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                # NO_CONN: paho keeps a QoS 1 message and sends it after reconnecting.
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self.acked.add(key)
                else:
                    self._pending[info.mid] = (key, topic, body)
            else:
                self._lost.append((key, topic, body))
            self.published += 1

    @property
    def unacked(self) -> int:
        with self._cond:
            return len(self._pending) + len(self._lost)

    def finish(self, timeout: float = 30) -> None:
        """Wait until the broker acknowledged everything, publishing again what it lost."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                self._cond.wait_for(lambda: not self._pending and not self._lost,
                                    min(3.0, max(0.0, deadline - time.monotonic())))
                if not self._pending and not self._lost:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(self._pending)} messages never acknowledged")
                again = [e for e in [*self._pending.values(), *self._lost]
                         if e[0] not in self.acked]
                self._pending.clear()
                self._lost.clear()
            for key, topic, body in again:
                self.publish(key, topic, body, timeout=max(1.0, deadline - time.monotonic()))
