"""From uplinks to a farmer's message: Mosquitto -> gateway -> rules engine (tomato preset)
-> notifier -> a real webhook, and the same alerts on the broker's alert topics."""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from helpers import wait_for
from servers.mosquitto import Mosquitto
from servers.mqtt_publisher import Publisher
from servers.receivers import Webhook

from firmware_bridge.native import encode_native
from gateway.app import Gateway
from gateway.config import Settings

PLOTS = 5


def test_five_dry_tomato_plots_make_one_message_and_five_retained_alerts(
    tmp_path: Path
) -> None:
    broker = Mosquitto(tmp_path / "broker").start()
    hook = Webhook().start()
    alerts: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="alert-watcher")
    watcher.on_message = lambda _c, _u, m: alerts.put((m.topic, json.loads(m.payload)))
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("satoyama/+/alerts/#", 1)
    watcher.loop_start()
    settings = Settings(
        site="farm", data_dir=tmp_path / "data", gateway_id="gw-e2e",
        sources={"mqtt": {"url": broker.url}},  # type: ignore[arg-type]
        validation={"max_clock_skew_s": 4 * 3600},  # type: ignore[arg-type]
        pipeline={"batch_interval_ms": 50},  # type: ignore[arg-type]
        rules=[Path("preset:common"), Path("preset:tomato")],
        devices={f"n{i}": {"plot": f"p{i}", "crop": "tomato"}  # type: ignore[misc]
                 for i in range(1, PLOTS + 1)},
        notifications={"recipients": {"grower": {  # type: ignore[arg-type]
            "urls": [hook.url()], "language": "ja"}},
            "grouping": {"group_wait_s": 3}},
    )
    gw = Gateway(settings)
    gw.start()
    try:
        now = time.time_ns()
        with Publisher(broker.url) as pub:
            # Two hours of dry soil (20 %, refill point 22.2 %) every 15 minutes per plot.
            for step in range(9):
                ts = now - (8 - step) * 900 * 10**9
                for i in range(1, PLOTS + 1):
                    body = encode_native(f"n{i}", step, {("soil_moisture_pct", "soil_10cm"): 20.0},
                                         ts_ns=ts, battery_v=3.7)
                    pub.publish((i, step), f"satoyama/farm/n{i}/up", body)
            wait_for(lambda: len(pub.acked) == 9 * PLOTS, 20, "every uplink acknowledged")
        wait_for(lambda: len(hook.requests) >= 1, 20, "the grower's message")
        firing: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 10
        while len(firing) < PLOTS and time.monotonic() < deadline:
            topic, payload = alerts.get(timeout=10)
            if payload["state"] == "firing":
                firing[topic] = payload
    finally:
        gw.stop()
        watcher.disconnect()
        watcher.loop_stop()
        hook.stop()
        broker.stop()

    [message] = hook.bodies()
    assert message["title"].startswith("[注意] farm: p")
    assert message["title"].endswith("（他4件）")
    assert message["message"].startswith("発生中（5件）:")
    for i in range(1, PLOTS + 1):
        assert f"p{i} 夏秋トマト: 深さ10 cmの土壌水分が 20.0 %" in message["message"]
    assert sorted(firing) == [
        f"satoyama/farm/alerts/tomato.soil_dry/n{i}/soil_10cm" for i in range(1, PLOTS + 1)]
    assert {p["severity"] for p in firing.values()} == {"warning"}
