"""Alert transitions on MQTT: a real Mosquitto (tests/servers/mosquitto.py), a real store,
subscribers that check topics, payloads and retained state."""

from __future__ import annotations

import json
import os
import queue
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from helpers import wait_for
from notify_events import T0, S, event
from servers.mosquitto import Mosquitto
from servers.receivers import Webhook

from gateway.app import Gateway
from gateway.config import Settings
from gateway.config.models import MqttAlertsConfig, MqttSourceConfig
from gateway.sinks.mqtt_alerts import CONSUMER, MqttAlertPublisher
from gateway.store.sqlite import Store

TOPIC = "satoyama/kamiyama/alerts/tomato.soil_dry/n-p3/soil_10cm"


class Subscriber:
    def __init__(self, broker: Mosquitto, name: str = "alert-reader",
                 password: str | None = None) -> None:
        self.got: queue.Queue[tuple[str, dict[str, Any], bool]] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        if password is not None:
            self.client.username_pw_set("gateway", password)
        self.client.on_message = lambda _c, _u, m: self.got.put(
            (m.topic, json.loads(m.payload), bool(m.retain)))
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe("satoyama/+/alerts/#", 1)
        self.client.loop_start()

    def take(self, n: int, timeout: float = 10.0) -> list[tuple[str, dict[str, Any], bool]]:
        return [self.got.get(timeout=timeout) for _ in range(n)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker", users={"gateway": "pw-alerts"}).start()
    yield b
    b.kill()


def _publisher(tmp_path: Path, broker: Mosquitto, **cfg: Any) -> MqttAlertPublisher:
    source = MqttSourceConfig(url=broker.url, username="gateway", password="pw-alerts")
    return MqttAlertPublisher(tmp_path / "s.db", source, MqttAlertsConfig(**cfg),
                              gateway_id="gw-test", poll_s=0.02)


def test_transitions_are_published_retained_with_the_documented_payload(
    tmp_path: Path, broker: Mosquitto
) -> None:
    store = Store(tmp_path / "s.db")
    live = Subscriber(broker, password="pw-alerts")
    publisher = _publisher(tmp_path, broker)
    publisher.start()
    try:
        store.rules_step("rules", {}, {}, [
            event("pending", t=T0 - 600 * S, since=T0 - 600 * S),
            event("firing", t=T0, since=T0 - 600 * S),
            event("firing", rule="strawberry.frost", severity="critical", plot="p5",
                  sensor="main", t=T0 + 5 * S, value=1.5),
        ])
        got = live.take(3)
        assert [(t, p["state"]) for t, p, _ in got] == [
            (TOPIC, "pending"), (TOPIC, "firing"),
            ("satoyama/kamiyama/alerts/strawberry.frost/n-p5/main", "firing")]
        assert got[1][1] == {
            "rule": "tomato.soil_dry", "severity": "warning", "state": "firing",
            "previous": "pending", "site": "kamiyama", "plot": "p3", "node": "n-p3",
            "sensor": "soil_10cm", "value": 21.5,
            "time": "2026-07-01T02:00:00Z", "since": "2026-07-01T01:50:00Z",
            "fingerprint": event().fingerprint,
            "message": {"en": "Plot p3: soil is dry (tomato.soil_dry)",
                        "ja": "p3: 土が乾いています（tomato.soil_dry）"},
            "why": {"en": "Roots stop taking up water below 25 %.",
                    "ja": "25 %を下回ると根が水を吸えません。"},
            "action": {"en": "Water today.", "ja": "今日中に水やりを。"},
            "labels": {"crop": "tomato"},
        }
        store.rules_step("rules", {}, {}, [event("resolved", t=T0 + 60 * S)])
        [(topic, payload, _)] = live.take(1)
        assert (topic, payload["state"], payload["previous"]) == (TOPIC, "resolved", "firing")
        wait_for(lambda: store.cursor(CONSUMER, "alert") == 4, 5, "cursor after PUBACKs")
    finally:
        publisher.stop()
        live.close()
    # A subscriber that starts now (Node-RED after a reboot) sees the latest state of each.
    late = Subscriber(broker, "late-reader", password="pw-alerts")
    try:
        retained = {t: (p["state"], r) for t, p, r in late.take(2)}
        assert retained == {
            TOPIC: ("resolved", True),
            "satoyama/kamiyama/alerts/strawberry.frost/n-p5/main": ("firing", True),
        }
    finally:
        late.close()


def test_broker_down_then_up_publishes_the_backlog_once_and_restarts_resume(
    tmp_path: Path, broker: Mosquitto
) -> None:
    store = Store(tmp_path / "s.db")
    broker.stop()
    publisher = _publisher(tmp_path, broker)
    publisher.start()
    try:
        store.rules_step("rules", {}, {}, [event(plot=f"p{i}") for i in range(10)])
        assert store.cursor(CONSUMER, "alert") == 0
        broker.start()
        wait_for(lambda: store.cursor(CONSUMER, "alert") == 10, 20, "backlog published")
    finally:
        publisher.stop()
    live = Subscriber(broker, password="pw-alerts")
    try:
        assert len(live.take(10)) == 10  # the retained ones
        again = _publisher(tmp_path, broker)
        again.start()
        store.rules_step("rules", {}, {}, [event("resolved", plot="p0")])
        [(topic, payload, retained)] = live.take(1)
        assert topic.endswith("/n-p0/soil_10cm") and payload["state"] == "resolved"
        assert not retained  # a live message, not the retained copy
        wait_for(lambda: store.cursor(CONSUMER, "alert") == 11, 5, "cursor")
        again.stop()
        assert live.got.empty()  # nothing published twice
        assert again.published == 1
    finally:
        live.close()


def test_in_flight_publishes_are_capped_while_the_broker_does_not_answer(
    tmp_path: Path, broker: Mosquitto
) -> None:
    store = Store(tmp_path / "s.db")
    publisher = _publisher(tmp_path, broker, max_in_flight=5)
    publisher.start()
    try:
        wait_for(lambda: publisher._connected.is_set(), 10, "connected")
        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)  # the broker hangs: no PUBACKs
        try:
            store.rules_step("rules", {}, {}, [event(plot=f"p{i}") for i in range(50)])
            wait_for(lambda: publisher.published == 5, 5, "the window filled")
            time.sleep(0.3)  # ~15 polls: it must not publish past the window meanwhile
            assert publisher.published == 5 and store.cursor(CONSUMER, "alert") == 0
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        wait_for(lambda: store.cursor(CONSUMER, "alert") == 50, 20, "all acknowledged")
        assert publisher.published == 50 and publisher.acknowledged == 50
    finally:
        publisher.stop()


def test_gateway_runs_both_alert_consumers(tmp_path: Path, broker: Mosquitto) -> None:
    hook = Webhook().start()
    settings = Settings(
        site="kamiyama", data_dir=tmp_path / "data", gateway_id="gw-test",
        sources={"mqtt": {"url": broker.url, "username": "gateway",  # type: ignore[arg-type]
                          "password": "pw-alerts"}},
        notifications={"recipients": {"officer": {  # type: ignore[arg-type]
            "urls": [hook.url()], "language": "en"}},
            "grouping": {"group_wait_s": 0}},
    )
    live = Subscriber(broker, password="pw-alerts")
    gw = Gateway(settings)
    gw.start()
    try:
        gw.store.rules_step("rules", {}, {}, [event(plot="p3")])
        [(topic, payload, _)] = live.take(1)
        assert topic == TOPIC and payload["state"] == "firing"
        wait_for(lambda: len(hook.requests) == 1, 10, "the notification")
        assert hook.bodies()[0]["title"].startswith("[Warning] kamiyama: Plot p3")
    finally:
        gw.stop()
        live.close()
        hook.stop()
