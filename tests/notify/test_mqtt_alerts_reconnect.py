"""The alert publisher reconnects by the MQTT source's policy (gateway.sources.mqtt
``Reconnects``): against a real Mosquitto, two gateways that share a ``gateway_id`` (so the
alert client id) must not take the session from each other every second."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_for
from notify_events import event
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from servers.mosquitto import Mosquitto

from gateway.config.models import MqttAlertsConfig, MqttSourceConfig
from gateway.sinks.mqtt_alerts import CONSUMER, MqttAlertPublisher
from gateway.sources.mqtt import STABLE_AFTER_S, Backoff, Reconnects, describe_disconnect
from gateway.store.sqlite import Store


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.kill()


def test_two_gateways_with_one_gateway_id_back_off_instead_of_a_reconnect_loop(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Mosquitto 2.0.11 closes the older of two connections with one client id (no
    DISCONNECT 142). paho's own reconnect started again from 1 s after every CONNACK: the
    two connected about once a second between them, ~21 times in 20 s, forever. Now each
    connection that lasted under 10 s doubles the wait (1, 2, 4, 8, 16 s, each 50-100 %):
    at most 6 connections each in 20 s (delays of at least 0.5 + 1 + 2 + 4 + 8 s), about
    4 in practice, and one warning each naming the setting."""
    broker_cfg = MqttSourceConfig(url=broker.url)
    publishers = []
    for name in ("gw-a", "gw-b"):
        Store(tmp_path / f"{name}.db").close()
        publishers.append(MqttAlertPublisher(tmp_path / f"{name}.db", broker_cfg,
                                             MqttAlertsConfig(), gateway_id="farm1"))
    assert publishers[0].client_id == publishers[1].client_id == "satoyama-farm1-alerts"
    with caplog.at_level(logging.DEBUG, logger="gateway.sinks.mqtt_alerts"):
        for p in publishers:
            p.start()
        try:
            time.sleep(20.0)
        finally:
            for p in publishers:
                p.stop(1.0)
    accepted = re.findall(r"New client connected from \S+ as satoyama-farm1-alerts ",
                          broker.log())
    assert 3 <= len(accepted) <= 12  # at least one take-over each way; not one a second
    connects = [p.connects for p in publishers]
    assert sum(connects) == len(accepted) and all(1 <= n <= 6 for n in connects), connects
    said = [r for r in caplog.records
            if r.name == "gateway.sinks.mqtt_alerts" and r.levelno >= logging.WARNING]
    assert 1 <= len(said) <= 2, [r.getMessage() for r in said]  # once per publisher
    for record in said:
        text = record.getMessage()
        assert "satoyama-farm1-alerts" in text and "gateway_id" in text
        assert "sources.mqtt.client_id" in text and "retrying in" in text


def test_publisher_reconnects_soon_after_a_lost_connection_and_delivers(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """Its own reconnect loop keeps the one paho client, so what was waiting is delivered
    after the broker returns."""
    store = Store(tmp_path / "s.db")
    publisher = MqttAlertPublisher(store.path, MqttSourceConfig(url=broker.url),
                                   MqttAlertsConfig(), gateway_id="gw-test", poll_s=0.02,
                                   backoff=Backoff(initial_s=0.2, max_s=1.0))
    publisher.start()
    try:
        wait_for(lambda: publisher._connected.is_set(), 5, "connected")
        broker.restart()
        store.rules_step("rules", {}, {}, [event(plot=f"p{i}") for i in range(3)])
        wait_for(lambda: store.cursor(CONSUMER, "alert") == 3, 10, "published after restart")
        assert publisher.connects == 2
    finally:
        publisher.stop()


def test_session_taken_over_is_a_refusal_naming_gateway_id() -> None:
    """Brokers that send DISCONNECT 142 (MQTT 5) name the cause: the refused interval."""
    message, refused = describe_disconnect(
        ReasonCode(PacketTypes.DISCONNECT, identifier=142), 0.5, "satoyama-farm1-alerts")
    assert refused and "gateway_id" in message and "(142)" in message
    lost, refused = describe_disconnect(
        ReasonCode(PacketTypes.DISCONNECT, identifier=128), 0.5, "satoyama-farm1-alerts")
    assert not refused and "'satoyama-farm1-alerts'" in lost and "gateway_id" in lost
    assert describe_disconnect(ReasonCode(PacketTypes.DISCONNECT, identifier=128),
                               STABLE_AFTER_S, "x") == ("connection lost: Unspecified error",
                                                        False)


def test_reconnects_short_connections_keep_the_outage_and_its_backoff() -> None:
    r = Reconnects(Backoff(initial_s=1.0, max_s=30.0, refused_s=60.0), rand=lambda: 1.0)
    delays = []
    for _ in range(6):  # accepted, then dropped after 0.5 s, again and again
        assert not r.connection_ended(0.5)
        delays.append(r.next_delay())
    assert delays == [1, 2, 4, 8, 16, 30]
    assert r.first_report("lost") and not r.first_report("lost")
    assert r.first_report("refused")  # another reason is said once too
    assert r.connection_ended(STABLE_AFTER_S)  # held: the next outage starts afresh
    assert r.next_delay() == 1 and r.first_report("lost")
    assert r.next_delay(refused=True) == 60
