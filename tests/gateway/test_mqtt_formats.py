"""The native MQTT format: site and node from body, topic or config; mismatches refused."""

from __future__ import annotations

import json

import pytest

from gateway.packet import Ignored, Packet, Rejection
from gateway.sources.mqtt_formats import (
    MESSAGE_FORMATS,
    _native,
    decode_native_message,
    message_decoder,
)

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


# --------------------------------------------------------------------------- per topic

TTS_BODY = json.dumps({
    "end_device_ids": {"device_id": "soil-1", "dev_eui": "1000000000000001"},
    "uplink_message": {"f_cnt": 3, "frm_payload": "AXVkA2cZAQRocwV/8AA=",
                       "received_at": "2026-07-01T04:10:00Z"},
}).encode()
RTL433_BODY = (b'{"model": "Fineoffset-WH51", "id": "006b58", "battery_mV": 1400, '
               b'"moisture": 36}')
TOPICS = [
    ("satoyama/+/+/up", "native", None),
    ("v3/+/devices/+/up", "ttn", "milesight-em500-smtc"),
    ("application/+/device/+/event/+", "chirpstack", None),
    ("rtl_433/+/events", "rtl433", None),
]


def test_native_only_is_one_direct_call() -> None:
    # The hot path: no topic matching, no cache, just the native decoder with the site.
    decode = message_decoder("native", default_site="farm", topics=[("a/#", "native", None)])
    assert decode.__code__ is _native("any").__code__  # no routing, no cache
    body = b'{"node":"n1","readings":{"temperature_c":20.5}}'
    assert decode("satoyama/x/n1/up", body) == decode_native_message(
        "satoyama/x/n1/up", body, "farm")
    assert decode("elsewhere", body)[0].site == "farm"  # type: ignore[union-attr]


def test_each_message_decoded_in_the_format_of_the_filter_its_topic_matches() -> None:
    decode = message_decoder("native", default_site="farm", topics=TOPICS,
                             ids={"lorawan:1000000000000001": "terrace-3",
                                  "rtl433:Fineoffset-WH51/006b58": "wh51-bed"})
    (native,) = decode("satoyama/hill/n17/up", body())
    (ttn,) = decode("v3/soil@ttn/devices/soil-1/up", TTS_BODY)
    (rtl,) = decode("rtl_433/pi/events", RTL433_BODY)
    (ignored,) = decode("application/1/device/0101010101010101/event/status",
                        b'{"deviceInfo": {"devEui": "0101010101010101"}, "batteryLevel": 9}')
    assert isinstance(native, Packet) and (native.format, native.node) == ("native", "n17")
    assert isinstance(ttn, Packet) and (ttn.format, ttn.node, ttn.site) == ("ttn", "terrace-3",
                                                                             "farm")
    assert ttn.readings[("soil_moisture_pct", "main")] == 57.5  # the topic's codec
    assert isinstance(rtl, Packet) and (rtl.format, rtl.node) == ("rtl433", "wh51-bed")
    assert type(ignored) is Ignored and ignored.format == "chirpstack"
    # A topic no filter matches (the broker should not send one) gets the section's format.
    (other,) = decode("elsewhere/x", body())
    assert isinstance(other, Packet) and other.format == "native"


def test_first_matching_filter_wins_and_the_topic_cache_is_bounded() -> None:
    decode = message_decoder("native", default_site="farm",
                             topics=[("rtl_433/+/events", "rtl433", None),
                                     ("rtl_433/#", "native", None)])
    (first,) = decode("rtl_433/pi/events", RTL433_BODY)
    assert isinstance(first, Packet) and first.format == "rtl433"
    for i in range(5000):  # topics come from the broker: the cache must not grow forever
        decode(f"rtl_433/host{i}/events", RTL433_BODY)
    # The decoder's one dict is its topic -> format cache.
    (cache,) = [c.cell_contents for c in decode.__closure__ or ()  # type: ignore[attr-defined]
                if type(c.cell_contents) is dict]
    assert 0 < len(cache) <= 4096


# --------------------------------------------------------------------------- evidence


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("satoyama/hill/n17/up", b"{not json", "bad_json"),  # decode_native's own
        ("satoyama/hill/n18/up", body(), "topic_mismatch"),
        ("satoyama/bad site/n17/up", body(), "bad_topic"),
        ("v3/orchard@ttn/devices/node-1/up", b'{"end_device_ids": {truncated', "bad_json"),
        ("v3/orchard@ttn/devices/node-1/up", TTS_BODY.replace(b"AXVk", b"!!!!"),
         "bad_payload"),
        ("application/7/device/0101010101010101/event/up", b"[]", "schema"),
        ("rtl_433/pi/events", b'{"model": "x"}', "schema"),
    ],
)
def test_a_rejection_keeps_the_topic_it_came_on(topic: str, payload: bytes,
                                                reason: str) -> None:
    """Garbage often names no node: the topic is the evidence of who sent it."""
    decode = message_decoder("native", default_site="farm", topics=TOPICS)
    (result,) = decode(topic, payload)
    assert isinstance(result, Rejection) and result.reason == reason
    assert result.topic == topic


def test_a_message_without_a_topic_keeps_none() -> None:
    """`satoyama replay --format ttn` without --topic decodes with the topic ''."""
    decode = message_decoder("ttn", default_site="farm")
    (result,) = decode("", b"{truncated")
    assert isinstance(result, Rejection) and result.topic is None
    (native,) = decode_native_message("", b"{truncated", "farm")
    assert isinstance(native, Rejection) and native.topic is None
