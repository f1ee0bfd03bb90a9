"""`satoyama status` shows what the running gateway says about its sources and queue.

The wording from a report (pure), then a real `satoyama run` against a real Mosquitto:
running with the broker connected and the messages counted, the broker gone (NOT
CONNECTED), and stopped.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import start_gateway, wait_for
from servers.mosquitto import Mosquitto
from servers.mqtt_publisher import Publisher, publish_uplinks

from gateway import runtime
from gateway.sources.http import HttpSourceStats
from gateway.sources.mqtt import MqttSourceStats
from gateway.sources.serial import SerialSourceStats

S = 1_000_000_000
MQTT = MqttSourceStats(
    name="mqtt", url="mqtt://broker:1883", client_id="gw1", connected=True,
    connect_attempts=3, connects=2, refusals=0, messages_received=120, acks_sent=118,
    stale_acks=0, messages_not_queued=0, queue_full_waits=4, last_error=None)
SERIAL = SerialSourceStats(
    name="serial", port="/dev/ttyUSB0", connected=False, bytes_read=5000, chunks_read=40,
    reconnects=1, open_failures=7, queue_full_waits=0, bytes_discarded=0,
    last_error="[Errno 2] No such file or directory: '/dev/ttyUSB0'")
HTTP = HttpSourceStats(name="http", address=("0.0.0.0", 8080), requests=14, committed=14,
                       answered={200: 14, 400: 1}, connections=0)


def report(**over: Any) -> dict[str, Any]:
    made = runtime.snapshot(pid=4242, gateway_id="gw1", started_ns=1000 * S,
                            now_ns=1000 * S + 3 * 3600 * S, queue_items=12, queue_limit=2000,
                            paused=False, sources=[MQTT, SERIAL, HTTP])
    made.update(over)
    # what status reads back is what went through JSON (int keys become strings)
    decoded = runtime.decode(runtime.encode(made))
    assert decoded is not None
    return decoded


def test_a_running_gateway_is_described_with_each_source() -> None:
    now = 1000 * S + 3 * 3600 * S + 2 * S
    assert runtime.describe(report(), now) == [
        "gateway    running, pid 4242, up 3h 0m (reported 2s ago); queue 12 of 2000",
        "source     mqtt mqtt://broker:1883 (gw1): connected; 120 received, 118 "
        "acknowledged, 2 connects of 3 attempts, 4 waits on a full queue",
        "source     serial /dev/ttyUSB0: NOT OPEN; 5000 bytes in 40 reads, 1 reconnects, "
        "7 failed opens; last error: [Errno 2] No such file or directory: '/dev/ttyUSB0'",
        "source     http 0.0.0.0:8080: 14 uploads, 14 committed; answers 200×14 400×1",
    ]


def test_paused_stopped_silent_and_never_reported() -> None:
    now = 1000 * S + 3 * 3600 * S
    paused = report(queue={"items": 2000, "limit": 2000, "paused": True})
    assert runtime.describe(paused, now)[0].endswith(
        "queue 2000 of 2000; INGEST PAUSED: the store is full")
    stopped = runtime.describe(report(stopped=True), now + 600 * S)
    assert stopped[0] == "gateway    stopped 10m ago (was pid 4242)"
    assert stopped[1].startswith("source     (last report) mqtt mqtt://broker:1883")
    silent = runtime.describe(report(), now + int((runtime.STALE_AFTER_S + 1) * S))[0]
    assert silent.startswith("gateway    no report for 16s (pid 4242): not running, or stuck?")
    assert runtime.state(report(), now + int(runtime.STALE_AFTER_S * S)) == "running"
    assert runtime.describe(None, now)[0].startswith("gateway    no report yet")


def status(config: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "status", "-c", str(config),
                          "--json"], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def status_text(config: Path) -> str:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "status", "-c", str(config)],
                          capture_output=True, text=True, timeout=60, check=True).stdout


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "status", "-c", str(config),
                           "--check"], capture_output=True, text=True, timeout=60)


def test_status_shows_the_running_gateway_its_broker_link_and_its_stop(
    tmp_path: Path, write_config
) -> None:
    broker = Mosquitto(tmp_path / "broker").start()
    config = write_config(sources={"mqtt": {"url": broker.url, "client_id": "gw-status"}})
    proc = start_gateway(config, tmp_path / "gateway.log")
    try:
        def mqtt_source() -> dict[str, Any] | None:
            try:
                rt = status(config)["runtime"]
            except subprocess.CalledProcessError:  # no store yet
                return None
            return rt["sources"][0] if rt and rt["sources"] else None

        wait_for(lambda: (mqtt_source() or {}).get("connected") is True, 30, "connected")
        with Publisher(broker.url) as pub:
            publish_uplinks(pub, 0, 50)
            pub.finish(30)
        wait_for(lambda: (mqtt_source() or {}).get("messages_received") == 50, 30,
                 "50 messages in the report")
        rt = status(config)["runtime"]
        assert (rt["state"], rt["pid"], rt["queue"]["limit"]) == ("running", proc.pid, 2000)
        assert rt["sources"][0]["acks_sent"] == 50
        assert "(gw-status): connected; 50 received, 50 acknowledged" in status_text(config)
        assert check(config).returncode == 0

        broker.stop()  # the broker goes away: the report says so within an interval or two
        wait_for(lambda: (mqtt_source() or {}).get("connected") is False, 30, "disconnected")
        assert "NOT CONNECTED" in status_text(config)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        broker.stop()
    rt = status(config)["runtime"]
    assert rt["state"] == "stopped" and rt["stopped"] is True
    stopped = check(config)
    assert stopped.returncode == 1 and stopped.stdout.startswith("gateway    stopped")
    assert status_text(config).splitlines()[0].startswith("gateway    stopped")
