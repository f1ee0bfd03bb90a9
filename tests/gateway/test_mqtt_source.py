"""MQTT ingest against a real Mosquitto: exactly once in storage, whatever happens to the link.

The gateway runs in this process (``Gateway``) with the shipped broker limits; a paho
publisher plays the field nodes (QoS 1, at most 500 unacknowledged). Counts are exact:
every published message is one row in ``packet``, never two.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from helpers import wait_for
from servers.mosquitto import Certs, Mosquitto, make_certs
from servers.mqtt_publisher import NODES, Publisher, native_uplink, publish_uplinks

from gateway.app import Gateway
from gateway.config import Settings
from gateway.config.models import MqttSourceConfig
from gateway.sources.items import SourceEvent
from gateway.sources.mqtt import Backoff, MqttSource
from gateway.store.sqlite import Store

SITE = "hill"
uplink = native_uplink
publish_range = publish_uplinks


def settings(tmp_path: Path, url: str, **mqtt_cfg: Any) -> Settings:
    return Settings(
        site="testfarm", data_dir=tmp_path / "data", gateway_id="gw-test",
        sources={"mqtt": {"url": url, **mqtt_cfg}},
        pipeline={"batch_interval_ms": 50},
    )


def db(gw: Gateway) -> Store:
    """The gateway's store, read-only: usable after ``gw.stop()`` closed its own."""
    return Store(gw.store.path, readonly=True)


def packets(gw: Gateway) -> list[tuple[Any, ...]]:
    return db(gw).execute("SELECT node, seq FROM packet")


def retained(broker: Mosquitto, topic: str, timeout: float = 5.0) -> dict[str, Any]:
    got: queue.Queue[bytes] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="status-reader")
    client.on_message = lambda _c, _u, m: got.put(m.payload)
    client.connect("127.0.0.1", broker.port)
    client.subscribe(topic, 1)
    client.loop_start()
    try:
        return dict(json.loads(got.get(timeout=timeout)))
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.kill()


def start_gateway(gateways: list[Gateway], cfg: Settings) -> Gateway:
    gw = Gateway(cfg)
    gateways.append(gw)
    gw.start()
    assert gw.mqtt is not None
    wait_for(lambda: gw.mqtt is not None and gw.mqtt.connected, 10, "gateway connected")
    return gw


# --------------------------------------------------------------------------- end to end


def test_every_message_stored_exactly_once_with_design_tags_and_fields(
    tmp_path: Path, broker: Mosquitto, gateways: list[Gateway]
) -> None:
    n = 3000
    gw = start_gateway(gateways, settings(tmp_path, broker.url))
    assert retained(broker, "satoyama/testfarm/gateway/gw-test/status")["state"] == "online"
    with Publisher(broker.url) as pub:
        publish_range(pub, 0, n)
        pub.finish()
    wait_for(lambda: gw.store.count("packet") >= n, 30, "all stored")
    gw.stop()
    assert gw.mqtt is not None

    rows = packets(gw)
    assert len(rows) == n and set(rows) == {uplink(i)[0] for i in range(n)}
    assert gw.pipeline.totals.get("duplicates", 0) == 0
    assert gw.mqtt.acks_sent == n and gw.mqtt.stale_acks == 0
    # DESIGN.md storage: reading(site, plot, node, sensor; one field per quantity) and
    # device(site, plot, node; battery_v, rssi_dbm, seq...). Site from the topic.
    reading = db(gw).execute(
        "SELECT reading.site, reading.plot, reading.node, sensor, temperature_c, "
        "soil_moisture_pct FROM reading "
        "JOIN packet ON packet.id = reading.packet_id WHERE packet.node='n2' AND packet.seq=7 "
        "ORDER BY sensor")
    i = 7 * NODES + 1
    assert reading == [
        (SITE, "unassigned", "n2", "main", 15 + (i % 100) / 10, None),
        (SITE, "unassigned", "n2", "soil_10cm", None, 20 + (i % 300) / 10),
    ]
    device = db(gw).execute("SELECT device.site, device.node, battery_v, rssi_dbm FROM device "
                              "JOIN packet ON packet.id = device.packet_id "
                              "WHERE packet.node='n2' AND packet.seq=7")
    assert device == [(SITE, "n2", 3.6, -90.0)]
    status = retained(broker, "satoyama/testfarm/gateway/gw-test/status")
    assert status["state"] == "offline" and status["reason"] == "shutdown"


def test_messages_published_while_the_gateway_is_down_arrive_when_it_returns(
    tmp_path: Path, broker: Mosquitto, gateways: list[Gateway]
) -> None:
    cfg = settings(tmp_path, broker.url)
    gw = start_gateway(gateways, cfg)
    gw.stop()
    n = 2000
    with Publisher(broker.url) as pub:
        publish_range(pub, 0, n)
        pub.finish()  # the broker holds them for the gateway's session
    gw = start_gateway(gateways, cfg)
    wait_for(lambda: gw.store.count("packet") >= n, 30, "backlog delivered")
    gw.stop()
    assert len(packets(gw)) == n
    assert gw.pipeline.totals.get("duplicates", 0) == 0


def test_broker_restart_mid_stream_loses_nothing_acknowledged(
    tmp_path: Path, broker: Mosquitto, gateways: list[Gateway]
) -> None:
    n = 6000
    gw = start_gateway(gateways, settings(tmp_path, broker.url))
    assert gw.mqtt is not None
    with Publisher(broker.url) as pub:
        streamer = threading.Thread(target=publish_range, args=(pub, 0, n))
        streamer.start()
        wait_for(lambda: gw.store.count("packet") >= 1500, 30, "stream flowing")
        broker.restart()  # SIGTERM: the broker saves its sessions and queues
        streamer.join(60)
        pub.finish(60)
        assert pub.connects >= 2
    wait_for(lambda: gw.store.count("packet") >= n, 30, "all stored after the restart")
    time.sleep(0.3)  # redeliveries still on their way would show up as duplicates
    gw.stop()
    mqtt_stats = gw.mqtt.stats()
    assert len(packets(gw)) == n
    assert mqtt_stats.connects == 2
    # Every ack that could not be sent (connection gone) was redelivered and found to be a
    # duplicate: committed once, stored once.
    assert gw.pipeline.totals.get("duplicates", 0) >= mqtt_stats.stale_acks
    assert gw.pipeline.totals["source.disconnected"] == 1


def test_v5_publish_properties_and_payloads_longer_than_one_read_arrive_intact(
    tmp_path: Path, broker: Mosquitto, gateways: list[Gateway]
) -> None:
    """The source parses QoS 1 PUBLISH itself and reads the socket 64 KiB at a time: MQTT 5
    properties (a length over 127 takes two bytes) are skipped, and a payload that spans
    several reads is kept whole (here a 100 kB one, quarantined with its raw bytes)."""
    gw = start_gateway(gateways, settings(tmp_path, broker.url))
    _key, topic, body = uplink(0)
    huge = b'{"node": "n1", "pad": "' + b"x" * 100_000 + b'"}'
    props = mqtt.Properties(mqtt.PacketTypes.PUBLISH)
    props.UserProperty = [("origin", "y" * 300)]
    props.ContentType = "application/json"
    props.MessageExpiryInterval = 3600
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="v5-publisher",
                      protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        infos = [pub.publish(topic, body, qos=1, properties=props),
                 pub.publish(topic, huge, qos=1, properties=props)]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        pub.disconnect()
        pub.loop_stop()
    wait_for(lambda: gw.store.count("packet") >= 1 and gw.store.count("quarantine") >= 1, 10,
             "both handled")
    gw.stop()
    assert packets(gw) == [("n1", 0)]
    assert db(gw).execute("SELECT temperature_c FROM reading WHERE sensor='main'") == [(15.0,)]
    [q] = db(gw).quarantine()
    assert q["reason"] == "bad_length" and bytes(q["raw"]) == huge
    assert gw.mqtt is not None and gw.mqtt.acks_sent == 2


def test_malformed_payloads_are_quarantined_and_acknowledged_not_redelivered(
    tmp_path: Path, broker: Mosquitto, gateways: list[Gateway]
) -> None:
    cfg = settings(tmp_path, broker.url)
    gw = start_gateway(gateways, cfg)
    bad = [
        ("satoyama/hill/n1/up", b"{truncated"),
        ("satoyama/hill/n1/up", b'{"node": "n1", "readings": {"temperature_c": "warm"}}'),
        ("satoyama/hill/n9/up", b'{"node": "n1", "seq": 1, "readings": {}}'),
        ("satoyama/hill/n1/up", b"\xff\xfe"),
    ]
    with Publisher(broker.url) as pub:
        for k, (topic, payload) in enumerate(bad):
            pub.publish(("bad", k), topic, payload)
        publish_range(pub, 0, 10)
        # No node in the body: the topic names it.
        pub.publish(("n3", 99), "satoyama/hill/n3/up", b'{"seq": 99, "readings": {"rain_mm": 0.2}}')
        pub.finish()
    wait_for(lambda: gw.store.count("packet") >= 11 and gw.store.count("quarantine") >= 4, 10,
             "all handled")
    gw.stop()
    assert gw.mqtt is not None and gw.mqtt.acks_sent == len(bad) + 11
    assert db(gw).quarantine_counts() == {"bad_json": 2, "schema": 1, "topic_mismatch": 1}
    raws = {bytes(q["raw"]) for q in db(gw).quarantine(limit=10)}
    assert raws == {p for _t, p in bad}

    gw = start_gateway(gateways, cfg)  # acknowledged, so nothing comes back
    time.sleep(1.0)
    gw.stop()
    assert db(gw).count("quarantine") == 4 and db(gw).count("packet") == 11
    assert gw.pipeline.totals.get("received.packets", 0) == 0


def test_shared_subscription_splits_the_stream_between_two_gateways(
    tmp_path: Path, broker: Mosquitto, gateways: list[Gateway]
) -> None:
    one = start_gateway(gateways, settings(tmp_path / "a", broker.url,
                                           shared_group="ingest", client_id="ingest-1"))
    two = start_gateway(gateways, settings(tmp_path / "b", broker.url,
                                           shared_group="ingest", client_id="ingest-2"))
    n = 1000
    with Publisher(broker.url) as pub:
        publish_range(pub, 0, n)
        pub.finish()
    wait_for(lambda: one.store.count("packet") + two.store.count("packet") >= n, 20, "split")
    one.stop()
    two.stop()
    a, b = set(packets(one)), set(packets(two))
    assert a and b and not a & b and len(a | b) == n


# --------------------------------------------------------------------------- auth and TLS


def source(cfg: dict[str, Any], **kw: Any) -> tuple[MqttSource, queue.Queue[Any]]:
    out: queue.Queue[Any] = queue.Queue(maxsize=100)
    src = MqttSource("mqtt", MqttSourceConfig(**cfg), out, site="testfarm",
                     gateway_id="gw-test", **kw)
    return src, out


def events(out: queue.Queue[Any]) -> list[SourceEvent]:
    items = []
    while not out.empty():
        item = out.get_nowait()
        if isinstance(item, SourceEvent):
            items.append(item)
    return items


def stop_quickly(src: MqttSource) -> None:
    assert src.running, "the source thread died"
    t0 = time.monotonic()
    src.stop()
    assert time.monotonic() - t0 < 2.1
    assert not src.running


def test_wrong_password_is_one_clear_error_and_a_long_wait_not_a_crash_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = Mosquitto(tmp_path / "broker", users={"gateway": "right-password"}).start()
    try:
        src, out = source({"url": broker.url, "username": "gateway",
                           "password": "wrong-password"})
        with caplog.at_level(logging.INFO, logger="gateway.sources.mqtt"):
            src.start()
            wait_for(lambda: src.refusals >= 1, 5, "refusal")
            time.sleep(2.0)  # a crash loop would have retried many times by now
            stop_quickly(src)
        assert src.connect_attempts == 1 and broker.refused_not_authorised() == 1
        (event,) = events(out)
        assert event.kind == "error" and "sources.mqtt.password" in event.detail
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert "Not authorized" in errors[0] and "sources.mqtt.username" in errors[0]
        assert "retrying in" in errors[0]
        assert "wrong-password" not in caplog.text
    finally:
        broker.stop()


def test_refused_connections_are_retried_at_the_refused_interval_with_jitter(
    tmp_path: Path,
) -> None:
    broker = Mosquitto(tmp_path / "broker", users={"gateway": "right"}).start()
    try:
        src, _out = source({"url": broker.url, "username": "gateway", "password": "wrong"},
                           backoff=Backoff(initial_s=0.01, refused_s=1.0))
        src.start()
        time.sleep(3.0)
        stop_quickly(src)
        # Delays are drawn from [0.5, 1.0] s: about 4 to 7 attempts in 3 s, never a tight loop.
        assert 3 <= src.connect_attempts <= 7
        assert broker.refused_not_authorised() == src.connect_attempts
    finally:
        broker.stop()


def test_backoff_doubles_to_its_cap_and_jitters_within_half() -> None:
    b = Backoff(initial_s=1.0, max_s=30.0, refused_s=60.0)
    assert [b.delay(n, refused=False, rand=lambda: 1.0) for n in range(7)] == [
        1, 2, 4, 8, 16, 30, 30]
    assert b.delay(3, refused=False, rand=lambda: 0.0) == 4
    assert b.delay(0, refused=True, rand=lambda: 0.0) == 30
    assert b.delay(9, refused=True, rand=lambda: 1.0) == 60


def test_unreachable_broker_does_not_block_stop(tmp_path: Path) -> None:
    src, out = source({"url": "mqtt://127.0.0.1:1"})  # nothing listens on port 1
    src.start()
    wait_for(lambda: src.connect_attempts >= 1 and not out.empty(), 5, "first attempt")
    stop_quickly(src)
    (event,) = events(out)
    assert event.kind == "error" and "refused" in event.detail


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("pki"))


def test_tls_with_the_test_ca_and_a_password(tmp_path: Path, certs: Certs,
                                             gateways: list[Gateway]) -> None:
    broker = Mosquitto(tmp_path / "broker", users={"gateway": "s3cret"}, certs=certs).start()
    try:
        assert broker.url.startswith("mqtts://")
        gw = start_gateway(gateways, settings(
            tmp_path, broker.url, username="gateway", password="s3cret",
            tls={"ca_file": str(certs.ca)}))
        with Publisher(broker.url, username="gateway", password="s3cret",
                       ca_file=certs.ca) as pub:
            publish_range(pub, 0, 200)
            pub.finish()
        wait_for(lambda: gw.store.count("packet") >= 200, 10, "stored over TLS")
        gw.stop()
        assert db(gw).count("packet") == 200
    finally:
        broker.stop()


def test_tls_client_certificate(tmp_path: Path, certs: Certs) -> None:
    broker = Mosquitto(tmp_path / "broker", certs=certs, require_client_cert=True).start()
    try:
        src, out = source({"url": broker.url, "tls": {
            "ca_file": str(certs.ca), "cert_file": str(certs.client_cert),
            "key_file": str(certs.client_key)}})
        src.start()
        wait_for(lambda: src.connected, 10, "connected with a client certificate")
        stop_quickly(src)
        assert [e.kind for e in events(out)] == ["connected"]
    finally:
        broker.stop()


def test_tls_wrong_ca_is_a_clear_error_and_insecure_skips_the_check(
    tmp_path: Path, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    broker = Mosquitto(tmp_path / "broker", certs=certs).start()
    try:
        src, out = source({"url": broker.url, "tls": {"ca_file": str(certs.other_ca)}})
        with caplog.at_level(logging.ERROR, logger="gateway.sources.mqtt"):
            src.start()
            wait_for(lambda: src.refusals >= 1, 10, "TLS refusal")
            time.sleep(1.0)
            stop_quickly(src)
        assert src.connect_attempts == 1 and src.connects == 0
        (event,) = events(out)
        assert "certificate is not trusted" in event.detail
        assert "sources.mqtt.tls.ca_file" in caplog.text

        insecure, out = source({"url": broker.url,
                                "tls": {"ca_file": str(certs.other_ca), "insecure": True}})
        insecure.start()
        wait_for(lambda: insecure.connected, 10, "connected without verification")
        stop_quickly(insecure)
    finally:
        broker.stop()
