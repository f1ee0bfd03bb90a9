"""Native, The Things Stack, ChirpStack and rtl_433 messages on one broker connection.

A real Mosquitto (tests/servers) and the real gateway: four subscriptions, each with its
payload format, messages published by a plain MQTT client, then exact rows in the SQLite
store (tags from the device registry, LoRaWAN nodes by DevEUI), the quarantine with its
reasons and the topics the messages came on, ignored events counted, and every message
acknowledged after its commit. The payload bytes are the ThingsBoard converter cases of
../shared/corpus/lorawan (Milesight EM500-SMTC) and an rtl_433 22.11 line of
../shared/corpus/rtl433, written inline so that this runs without it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for
from servers.mosquitto import Mosquitto
from servers.mqtt_publisher import Publisher

from gateway.app import Gateway
from gateway.config import Settings
from gateway.store.sqlite import Store

NOW = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tts_uplink(device_id: str, dev_eui: str, f_cnt: int, **payload: Any) -> bytes:
    return json.dumps({
        "end_device_ids": {"device_id": device_id, "dev_eui": dev_eui,
                           "application_ids": {"application_id": "soil"}},
        "received_at": NOW,
        "uplink_message": {"f_port": 85, "f_cnt": f_cnt, "received_at": NOW,
                           "rx_metadata": [{"rssi": -35, "snr": 13.2},
                                           {"rssi": -101, "snr": -4.0}], **payload},
    }).encode()


def chirpstack_event(dev_eui: str, name: str, **fields: Any) -> bytes:
    return json.dumps({"deduplicationId": "3ac7e3c4", "time": NOW,
                       "deviceInfo": {"devEui": dev_eui, "deviceName": name,
                                      "applicationId": "17c82e96"},
                       **fields}).encode()


TTS_TOPIC = "v3/soil@ttn/devices/{}/up"
CS_TOPIC = "application/17c82e96/device/{}/event/{}"
MESSAGES: list[tuple[str, bytes]] = [
    ("satoyama/hill/n1/up",
     b'{"node": "n1", "seq": 5, "readings": {"temperature_c": 21.5}, "battery_v": 3.6}'),
    # EM500-SMTC bytes decoded by the topic's codec; DevEUI registered as terrace-3
    (TTS_TOPIC.format("eui-1000000000000001"),
     tts_uplink("eui-1000000000000001", "1000000000000001", 10335,
                frm_payload="AXVkA2cZAQRocwV/8AA=")),
    # The same topic filter, another device (its DevEUI registered) with its own codec
    (TTS_TOPIC.format("th-1"),
     tts_uplink("th-1", "2000000000000002", 4, frm_payload="AXVcA2c0AQRoZQ==")),
    (CS_TOPIC.format("a84041000181c61f", "up"),
     chirpstack_event("a84041000181c61f", "lse01 a", fCnt=12, fPort=2,
                      rxInfo=[{"rssi": -97, "snr": 6.5}],
                      object={"Bat": "3.384 V", "water_SOIL": "19.57", "temp_SOIL": "24.59",
                              "conduct_SOIL": 120})),
    (CS_TOPIC.format("a84041000181c61f", "status"),
     chirpstack_event("a84041000181c61f", "lse01 a", batteryLevel=88.3, margin=10)),
    (CS_TOPIC.format("a84041000181c61f", "join"),
     chirpstack_event("a84041000181c61f", "lse01 a", devAddr="00189440")),
    ("rtl_433/pi/events",
     b'{"time" : "2026-11-23 09:11:36", "model" : "Fineoffset-WH51", "id" : "006b58", '
     b'"battery_ok" : 0.778, "battery_mV" : 1400, "moisture" : 36, "boost" : 3, '
     b'"ad_raw" : 210, "mic" : "CRC"}'),
    # refused: kept in quarantine with the reason, acknowledged like the rest
    (TTS_TOPIC.format("eui-1000000000000001"), b'{"end_device_ids": {truncated'),
    (CS_TOPIC.format("0101010101010101", "up"),
     chirpstack_event("0101010101010101", "Test device", fPort=1, data="qg==",
                      rxInfo=[{"rssi": -36, "snr": 10.5}])),
]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.kill()


def settings(tmp_path: Path, url: str) -> Settings:
    return Settings.model_validate({
        "site": "testfarm", "data_dir": str(tmp_path / "data"), "gateway_id": "gw-test",
        "pipeline": {"batch_interval_ms": 50},
        "sources": {"mqtt": {"url": url, "topics": [
            "satoyama/+/+/up",
            {"topic": "v3/+/devices/+/up", "format": "ttn", "codec": "milesight-em500-smtc"},
            {"topic": "application/+/device/+/event/+", "format": "chirpstack"},
            {"topic": "rtl_433/+/events", "format": "rtl433"},
        ]}},
        "devices": {
            "terrace-3": {"plot": "upper", "ids": ["lorawan:1000000000000001"]},
            "th-1": {"plot": "greenhouse", "codec": "milesight-em300-th",
                     "ids": ["lorawan:2000000000000002"]},
            "wh51-bed": {"plot": "beds", "ids": ["rtl433:Fineoffset-WH51/006b58"]},
        },
    })


def test_four_formats_on_one_connection_stored_with_registry_tags(
    tmp_path: Path, broker: Mosquitto
) -> None:
    gw = Gateway(settings(tmp_path, broker.url))
    gw.start()
    try:
        wait_for(lambda: gw.mqtt is not None and gw.mqtt.connected, 10, "gateway connected")
        with Publisher(broker.url) as pub:
            for k, (topic, body) in enumerate(MESSAGES):
                pub.publish(k, topic, body)
            pub.finish()
        wait_for(lambda: gw.mqtt is not None and gw.mqtt.acks_sent >= len(MESSAGES), 15,
                 "every message acknowledged")
    finally:
        gw.stop()
    assert gw.mqtt is not None and gw.mqtt.acks_sent == len(MESSAGES)
    db = Store(gw.store.path, readonly=True)

    packets = db.execute("SELECT node, seq, site, plot, format FROM packet ORDER BY node")
    assert packets == [
        ("eui-a84041000181c61f", 12, "testfarm", "unassigned", "chirpstack"),
        ("n1", 5, "hill", "unassigned", "native"),
        ("terrace-3", 10335, "testfarm", "upper", "ttn"),
        ("th-1", 4, "testfarm", "greenhouse", "ttn"),
        ("wh51-bed", None, "testfarm", "beds", "rtl433"),
    ]
    readings = db.execute(
        "SELECT node, sensor, temperature_c, humidity_pct, soil_moisture_pct, "
        "soil_temperature_c, soil_ec_ms_cm FROM reading ORDER BY node, sensor")
    assert readings == [
        ("eui-a84041000181c61f", "main", None, None, 19.57, 24.59, 0.12),
        ("n1", "main", 21.5, None, None, None, None),
        ("terrace-3", "main", None, None, 57.5, 28.1, 0.24),  # EM500-SMTC: soil
        ("th-1", "main", 30.8, 50.5, None, None, None),  # the device's EM300-TH codec
        ("wh51-bed", "main", None, None, 36.0, None, None),
    ]
    device = db.execute("SELECT node, battery_v, rssi_dbm, snr_db FROM device ORDER BY node")
    assert device == [("eui-a84041000181c61f", 3.384, -97.0, 6.5), ("n1", 3.6, None, None),
                      ("terrace-3", None, -35.0, 13.2), ("th-1", None, -35.0, 13.2),
                      ("wh51-bed", 1.4, None, None)]
    # The network server's receive time is the reading's time (within the skew bound).
    times = dict(db.execute("SELECT node, time_source FROM packet"))
    assert times["terrace-3"] == "node" and times["wh51-bed"] == "gateway"

    assert db.quarantine_counts() == {"bad_json": 1, "no_codec": 1}
    quarantined = {q["reason"]: q for q in db.quarantine()}
    assert quarantined["bad_json"]["format"] == "ttn"
    # The body names no device: the topic it came on does.
    assert quarantined["bad_json"]["topic"] == TTS_TOPIC.format("eui-1000000000000001")
    assert quarantined["no_codec"]["topic"] == CS_TOPIC.format("0101010101010101", "up")
    assert bytes(quarantined["bad_json"]["raw"]) == b'{"end_device_ids": {truncated'
    assert (quarantined["no_codec"]["format"], quarantined["no_codec"]["node"]) == (
        "chirpstack", "eui-0101010101010101")
    counters = db.counters()
    assert counters["ignored.not_uplink"] == 2  # status and join: counted, not quarantined

    # Acknowledged after commit: nothing comes back on a new connection.
    gw = Gateway(settings(tmp_path, broker.url))
    gw.start()
    try:
        wait_for(lambda: gw.mqtt is not None and gw.mqtt.connected, 10, "connected again")
        time.sleep(1.0)
    finally:
        gw.stop()
    assert db.count("packet") == 5 and db.count("quarantine") == 2
    assert gw.pipeline.totals.get("received.packets", 0) == 0
