"""The native MQTT format: site and node from body, topic or config; mismatches refused."""

from __future__ import annotations

import json

import pytest

from gateway.packet import Packet, Rejection
from gateway.sources.mqtt_formats import MESSAGE_FORMATS, decode_native_message, message_decoder

BODY = {"node": "n17", "seq": 4211, "ts": "2026-07-01T04:10:00Z",
        "readings": {"temperature_c": 24.1, "soil_moisture_pct@10cm": 28.4},
        "battery_v": 3.62, "rssi_dbm": -97, "snr_db": 6.5}


def body(**changes: object) -> bytes:
    b = {**BODY, **changes}
    return json.dumps({k: v for k, v in b.items() if v is not None}).encode()


def one(topic: str, payload: bytes) -> Packet | Rejection:
    (result,) = decode_native_message(topic, payload, default_site="config-site")
    return result


@pytest.mark.parametrize(
    ("topic", "payload", "site", "node"),
    [
        ("satoyama/hill/n17/up", body(), "hill", "n17"),  # site from the topic
        ("satoyama/hill/n17/up", body(site="valley"), "valley", "n17"),  # body beats topic
        ("farm/raw", body(), "config-site", "n17"),  # not a native topic: config site
        ("satoyama/hill/n17/up", body(node=None), "hill", "n17"),  # node from the topic
    ],
)
def test_site_and_node_sources(topic: str, payload: bytes, site: str, node: str) -> None:
    result = one(topic, payload)
    assert isinstance(result, Packet)
    assert (result.site, result.node, result.seq) == (site, node, 4211)
    assert result.readings == {("temperature_c", "main"): 24.1,
                               ("soil_moisture_pct", "soil_10cm"): 28.4}
    assert result.raw == payload  # what was received is the evidence, not a re-encoding


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("satoyama/hill/n18/up", body(), "topic_mismatch"),
        ("satoyama/hill/n17/up", b"{not json", "bad_json"),
        ("satoyama/hill/n17/up", b"", "bad_json"),
        ("satoyama/hill/n17/up", body(readings={"temperature_c": "warm"}), "schema"),
        ("farm/raw", body(node=None), "schema"),  # no node anywhere
        ("satoyama/bad site/n17/up", body(), "bad_topic"),
        ("satoyama/hill/bad node/up", body(node=None), "bad_topic"),
    ],
)
def test_rejections(topic: str, payload: bytes, reason: str) -> None:
    result = one(topic, payload)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.raw == payload.strip()
    assert result.format == "native"


def test_topic_mismatch_names_both_nodes() -> None:
    result = one("satoyama/hill/n18/up", body())
    assert isinstance(result, Rejection)
    assert (result.node, result.seq) == ("n17", 4211)
    assert "'n17'" in result.detail and "'n18'" in result.detail


def test_invalid_topic_site_is_fine_when_the_body_names_its_site() -> None:
    result = one("satoyama/bad site/n17/up", body(site="hill"))
    assert isinstance(result, Packet) and result.site == "hill"


def test_registry_binds_the_default_site() -> None:
    assert MESSAGE_FORMATS["native"] is decode_native_message
    decode = message_decoder("native", default_site="farm")
    (result,) = decode("other/topic", body())
    assert isinstance(result, Packet) and result.site == "farm"
