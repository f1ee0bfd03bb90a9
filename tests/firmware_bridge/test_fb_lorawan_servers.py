"""The Things Stack v3 and ChirpStack v4 messages against the shared corpus
(../shared/corpus/lorawan: TTS docs example, ChirpStack docs events, ThingsBoard's real
converter inputs), plus node naming, codec choice, decoded-object mapping and refusals.
A clone without the corpus skips the corpus cases.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import reasons
from firmware_bridge.cayenne_lpp import parse_lpp
from firmware_bridge.lorawan import decode_chirpstack, decode_ttn
from firmware_bridge.lorawan.codecs import decode_cayenne_lpp
from firmware_bridge.lorawan.common import Decoded
from firmware_bridge.lorawan.fields import decode_object
from firmware_bridge.native import parse_timestamp
from gateway.catalogue import BY_NAME
from gateway.packet import Ignored, Packet, Rejection
from gateway.pipeline.validate import Policy, validate

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "lorawan"
NO_CORPUS = pytest.mark.skipif(not CORPUS.exists(), reason=f"LoRaWAN corpus not at {CORPUS}")
TTS = CORPUS / "tts_v3"
CHIRPSTACK = CORPUS / "chirpstack_v4"
CODEC_OF_MODEL = {"EM500-SMTC": "milesight-em500-smtc", "EM300-TH": "milesight-em300-th",
                  "DL-5TM": "decentlab-dl-5tm", "DL-SMTP": "decentlab-dl-smtp"}


def packet(result: Packet | Rejection) -> Packet:
    assert isinstance(result, Packet), result
    return result


def ttn_body(**uplink: Any) -> dict[str, Any]:
    return {"end_device_ids": {"device_id": "soil-1", "dev_eui": "70B3D57BA0000BCE"},
            "received_at": "2026-07-01T04:10:01Z",
            "uplink_message": {"f_port": 85, "f_cnt": 7, "received_at": "2026-07-01T04:10:00Z",
                               "rx_metadata": [{"rssi": -110, "snr": -3.5},
                                               {"rssi": -90, "snr": 7.25},
                                               {"rssi": -80, "snr": 2.0}], **uplink}}


def cs_body(**fields: Any) -> dict[str, Any]:
    return {"deduplicationId": "x", "time": "2026-07-01T04:10:00+00:00",
            "deviceInfo": {"devEui": "0101010101010101", "deviceName": "Test device"},
            "rxInfo": [{"rssi": -36, "snr": 10.5, "nsTime": "2026-07-01T04:10:00.5+00:00"}],
            **fields}


def dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()


# ---------------------------------------------------------------- The Things Stack


@NO_CORPUS
def test_tts_docs_example_is_invalid_json_as_published_and_decodes_with_one_comma() -> None:
    published = (TTS / "tts-docs_uplink_message_example.as_published.json").read_bytes()
    refused = decode_ttn(published)
    assert isinstance(refused, Rejection)
    assert (refused.reason, refused.format, refused.raw) == (reasons.BAD_JSON, "ttn",
                                                             published.strip())
    assert "line 79" in refused.detail
    fixed = published.replace(b'    }\n    "received_at"', b'    },\n    "received_at"')
    got = packet(decode_ttn(fixed))
    assert (got.node, got.seq, got.rssi_dbm, got.snr_db) == ("eui-0004a30b001c0530", 1,
                                                             -35, 5)
    assert got.node_time_ns == parse_timestamp("2020-02-12T15:15:45.789585559Z")
    assert got.readings == {("temperature_c", "main"): 1.0}  # decoded_payload
    assert got.unknown_fields == ("luminosity",)


def _tts_cases() -> list[Path]:
    return sorted((TTS / "thingsboard-data-converters").glob("*__payload*.json"))


@NO_CORPUS
def test_tts_thingsboard_uplinks_with_the_devices_codec() -> None:
    cases = _tts_cases()
    assert len(cases) == 12
    for path in cases:
        model = path.name.split("__")[1]
        body = json.loads(path.read_text())
        got = packet(decode_ttn(path.read_bytes(), codec=CODEC_OF_MODEL[model],
                                default_site="farm"))
        up = body["uplink_message"]
        assert got.node == f"eui-{body['end_device_ids']['dev_eui'].lower()}"
        assert got.seq == up["f_cnt"] and got.site == "farm" and got.format == "ttn"
        assert got.node_time_ns == parse_timestamp(up["received_at"])
        best = max(up["rx_metadata"], key=lambda gw: (gw["snr"], gw["rssi"]))
        assert (got.rssi_dbm, got.snr_db) == (best["rssi"], best["snr"])
        if model == "EM500-SMTC":
            assert got.readings == {("soil_temperature_c", "main"): 28.1,
                                    ("soil_moisture_pct", "main"): 57.5,
                                    ("soil_ec_ms_cm", "main"): 0.24}
        # The same bytes without a codec and without decoded_payload: kept, not guessed.
        refused = decode_ttn(path.read_bytes())
        assert isinstance(refused, Rejection) and refused.reason == reasons.NO_CODEC
        assert (refused.node, refused.seq) == (got.node, got.seq)


def test_tts_node_from_registry_else_deveui_never_the_device_id() -> None:
    body = ttn_body(decoded_payload={"temperature": 20.5})
    ids = {"lorawan:70b3d57ba0000bce": "terrace-3"}
    assert packet(decode_ttn(dumps(body), ids=ids)).node == "terrace-3"
    assert packet(decode_ttn(dumps(body))).node == "eui-70b3d57ba0000bce"
    body["end_device_ids"]["device_id"] = "not a name"
    assert packet(decode_ttn(dumps(body))).node == "eui-70b3d57ba0000bce"


def _app_device(app: str, device: str, eui: str | None, f_cnt: int = 5) -> bytes:
    body = ttn_body(f_cnt=f_cnt, decoded_payload={"temperature": 20.5})
    body["end_device_ids"] = {"device_id": device, "application_ids": {"application_id": app}}
    if eui is not None:
        body["end_device_ids"]["dev_eui"] = eui
    return dumps(body)


def test_tts_same_device_id_in_two_applications_are_two_nodes() -> None:
    """TTS device ids are unique only within an application: two applications' ``node-1``
    (different DevEUIs, same frame counter) must not become one node, nor take the name
    of a registered node that is another device."""
    orchard = packet(decode_ttn(_app_device("orchard", "node-1", "1111111111111111")))
    paddy = packet(decode_ttn(_app_device("paddy", "node-1", "2222222222222222")))
    assert (orchard.node, paddy.node) == ("eui-1111111111111111", "eui-2222222222222222")
    registered = {"lorawan:aaaaaaaaaaaaaaaa": "node-1"}  # the farm's node-1 is another device
    assert packet(decode_ttn(_app_device("paddy", "node-1", "2222222222222222"),
                             ids=registered)).node == "eui-2222222222222222"
    # Nor does the device get that node's codec by name.
    got = decode_ttn(_app_device("paddy", "node-1", "2222222222222222"),
                     device_codecs={"node-1": "cayenne-lpp"})
    assert packet(got).readings == {("temperature_c", "main"): 20.5}


def test_tts_device_without_deveui_is_named_by_application_and_device() -> None:
    orchard = packet(decode_ttn(_app_device("orchard", "node-1", None)))
    paddy = packet(decode_ttn(_app_device("paddy", "node-1", None)))
    assert (orchard.node, paddy.node) == ("ttn:orchard:node-1", "ttn:paddy:node-1")
    no_app = json.loads(_app_device("orchard", "node-1", None))
    del no_app["end_device_ids"]["application_ids"]
    refused = decode_ttn(dumps(no_app))
    assert isinstance(refused, Rejection) and refused.reason == reasons.SCHEMA
    too_long = decode_ttn(_app_device("a" * 36, "b" * 36, None))  # 77 > 64 characters
    assert isinstance(too_long, Rejection) and too_long.reason == reasons.SCHEMA


def test_tts_best_gateway_time_and_counter() -> None:
    got = packet(decode_ttn(dumps(ttn_body(decoded_payload={"temperature": 20.5}))))
    assert (got.rssi_dbm, got.snr_db, got.seq) == (-90, 7.25, 7)  # highest SNR wins
    assert got.node_time_ns == parse_timestamp("2026-07-01T04:10:00Z")  # NS, not AS time
    body = ttn_body(decoded_payload={"temperature": 20.5})
    del body["uplink_message"]["f_cnt"], body["uplink_message"]["received_at"]
    got = packet(decode_ttn(dumps(body)))
    assert got.seq == 0  # protobuf JSON leaves a zero counter out
    assert got.node_time_ns == parse_timestamp("2026-07-01T04:10:01Z")


def test_device_codec_beats_topic_codec_beats_decoded_payload() -> None:
    # 01 75 5c | 03 67 34 01 | 04 68 65: the same bytes are soil quantities on an
    # EM500-SMTC and air quantities on an EM300-TH; the server decoded them as "humidity".
    body = dumps(ttn_body(frm_payload="AXVcA2c0AQRoZQ==",
                          decoded_payload={"temperature": 30.8, "humidity": 50.5}))
    from_server = packet(decode_ttn(body))
    assert from_server.readings == {("temperature_c", "main"): 30.8,
                                    ("humidity_pct", "main"): 50.5}
    by_topic = packet(decode_ttn(body, codec="milesight-em500-smtc"))
    assert by_topic.readings == {("soil_temperature_c", "main"): 30.8,
                                 ("soil_moisture_pct", "main"): 50.5}
    by_device = packet(decode_ttn(body, codec="milesight-em500-smtc",
                                  device_codecs={"eui-70b3d57ba0000bce":
                                                 "milesight-em300-th"}))
    assert by_device.readings == from_server.readings
    other_device = packet(decode_ttn(body, codec="milesight-em500-smtc",
                                     device_codecs={"soil-2": "milesight-em300-th"}))
    assert other_device.readings == by_topic.readings


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", reasons.BAD_JSON),
        (b"[1, 2]", reasons.SCHEMA),
        (b'{"end_device_ids": {}}', reasons.SCHEMA),
        (dumps({"end_device_ids": {"device_id": "x y"}, "uplink_message": {}}), reasons.SCHEMA),
        (dumps(ttn_body(f_cnt=-1)), reasons.SCHEMA),
        (dumps(ttn_body(frm_payload="AXVk")), reasons.NO_CODEC),
        (dumps(ttn_body(decoded_payload={"temperature": "warm"})), reasons.SCHEMA),
        (b"x" * 70000, reasons.BAD_LENGTH),
    ],
)
def test_tts_refusals(body: bytes, reason: str) -> None:
    got = decode_ttn(body)
    assert isinstance(got, Rejection) and type(got) is not Ignored
    assert got.reason == reason and got.format == "ttn"


def test_tts_bad_base64_with_a_codec() -> None:
    got = decode_ttn(dumps(ttn_body(frm_payload="!!")), codec="cayenne-lpp")
    assert isinstance(got, Rejection) and got.reason == reasons.BAD_PAYLOAD


# A Milesight EM500-SMTC reply to "set the report interval to 1200 s" (fe 03 b0 04) and
# the device information it sends after joining: normal device traffic, no readings.
MILESIGHT_NO_READINGS = ["fe03b004", "ff0bff" "ff0101" "ff16" + "61" * 8 + "ff0f00"]


@NO_CORPUS
@pytest.mark.parametrize("hex_payload", MILESIGHT_NO_READINGS)
def test_milesight_uplinks_without_readings_are_ignored_not_rejected(hex_payload: str) -> None:
    """The corpus's real EM500-SMTC envelopes (TTS and ChirpStack) with a payload of no
    readings: ``Ignored`` (counted ``ignored.no_readings``), not a packet that validation
    refuses as ``empty`` nor a ``bad_payload``."""
    data = base64.b64encode(bytes.fromhex(hex_payload)).decode()
    name = "Milesight__EM500-SMTC__{}__payload.json"
    tts = json.loads((TTS / "thingsboard-data-converters" /
                      name.format("ThingsStackCommunity")).read_text())
    tts["uplink_message"]["frm_payload"] = data
    cs = json.loads((CHIRPSTACK / "thingsboard-data-converters" /
                     name.format("ChirpStack")).read_text())
    cs["data"] = data
    for got in (decode_ttn(dumps(tts), codec="milesight-em500-smtc"),
                decode_chirpstack(dumps(cs), codec="milesight-em500-smtc", event="up")):
        assert type(got) is Ignored, got
        assert got.reason == reasons.NO_READINGS and "EM500-SMTC" in got.detail
        assert got.node is not None and got.node.startswith("eui-") and got.seq is not None
    # The periodic uplink of the same envelope is still a packet.
    real = (TTS / "thingsboard-data-converters" / name.format("ThingsStackCommunity"))
    assert isinstance(decode_ttn(real.read_bytes(), codec="milesight-em500-smtc"), Packet)


def test_tts_join_and_downlink_messages_are_ignored_not_rejected() -> None:
    for key in ("join_accept", "downlink_ack", "location_solved"):
        got = decode_ttn(dumps({"end_device_ids": {"device_id": "a"}, key: {}}))
        assert type(got) is Ignored and got.reason == reasons.NOT_UPLINK and got.detail == key


# ---------------------------------------------------------------- ChirpStack


@NO_CORPUS
def test_chirpstack_docs_events_only_up_is_an_uplink() -> None:
    for path in sorted(CHIRPSTACK.glob("chirpstack-docs_event_*.json")):
        event = path.stem.removeprefix("chirpstack-docs_event_")
        got = decode_chirpstack(path.read_bytes())  # from the body alone, as replay does
        if event == "up":
            # data "qg==" and no object: nothing says how to read the byte.
            assert isinstance(got, Rejection) and got.reason == reasons.NO_CODEC
            assert (got.node, got.seq) == ("eui-0101010101010101", 0)
        else:
            assert type(got) is Ignored, (event, got)
            assert (got.reason, got.detail) == (reasons.NOT_UPLINK, f"{event} event")
        by_topic = decode_chirpstack(path.read_bytes(), event=event)
        assert type(by_topic) is type(got) and by_topic.reason == got.reason


@NO_CORPUS
def test_chirpstack_thingsboard_up_events_with_the_devices_codec() -> None:
    v4 = v3 = 0
    for path in sorted((CHIRPSTACK / "thingsboard-data-converters").glob("*__payload*.json")):
        model = path.name.split("__")[1]
        body = json.loads(path.read_text())
        got = decode_chirpstack(path.read_bytes(), codec=CODEC_OF_MODEL[model],
                                ids={"lorawan:70b3d57ba0003bb8": "profile-1"})
        if "deviceInfo" not in body:
            v3 += 1
            assert isinstance(got, Rejection) and got.reason == reasons.SCHEMA
            assert "ChirpStack v3" in got.detail
            continue
        v4 += 1
        got = packet(got)
        info = body["deviceInfo"]
        expected_node = "profile-1" if info["devEui"] == "70b3d57ba0003bb8" else \
            f"eui-{info['devEui']}"  # never deviceName: ChirpStack keeps it not unique
        assert got.node == expected_node
        assert got.seq == body.get("fCnt", 0)
        assert got.node_time_ns == parse_timestamp(body["time"])
        assert (got.rssi_dbm, got.snr_db) == (body["rxInfo"][0]["rssi"],
                                              body["rxInfo"][0]["snr"])
    assert (v4, v3) == (6, 4)


def test_chirpstack_object_status_and_names() -> None:
    got = packet(decode_chirpstack(dumps(cs_body(fCnt=3, object={"Bat": "3.384 V",
                                                                "water_SOIL": "19.57"}))))
    assert (got.node, got.seq, got.battery_v) == ("eui-0101010101010101", 3, 3.384)
    assert got.readings == {("soil_moisture_pct", "main"): 19.57}
    no_time = cs_body(object={"temperature": 1})
    del no_time["time"]
    assert packet(decode_chirpstack(dumps(no_time))).node_time_ns == \
        parse_timestamp("2026-07-01T04:10:00.5Z")
    status = decode_chirpstack(dumps({"deviceInfo": {"devEui": "0101010101010101"},
                                      "batteryLevel": 88.3, "margin": 10}))
    assert type(status) is Ignored and status.detail == "status event"
    assert decode_chirpstack(b'{"a": 1}').reason == reasons.SCHEMA  # no deviceInfo


def test_chirpstack_same_device_name_in_two_applications_are_two_nodes() -> None:
    """One ChirpStack MQTT integration publishes every application's events; device names
    are not unique there. The DevEUI is, so it names the node."""
    def up(app: str, eui: str) -> bytes:
        return dumps(cs_body(fCnt=5, object={"temperature": 20.5},
                             deviceInfo={"devEui": eui, "deviceName": "node-1",
                                         "applicationName": app}))
    orchard = packet(decode_chirpstack(up("orchard", "1111111111111111"), event="up"))
    paddy = packet(decode_chirpstack(up("paddy", "2222222222222222"), event="up"))
    assert (orchard.node, paddy.node) == ("eui-1111111111111111", "eui-2222222222222222")
    registered = {"lorawan:aaaaaaaaaaaaaaaa": "node-1"}
    assert packet(decode_chirpstack(up("paddy", "2222222222222222"), ids=registered,
                                    event="up")).node == "eui-2222222222222222"


# ---------------------------------------------------------------- decoded objects


@pytest.mark.parametrize(
    ("obj", "readings", "battery_v", "unknown"),
    [
        # Dragino LSE01 (TTN decoder output, real uplinks use unit strings)
        ({"Bat": "3.384 V", "TempC_DS18B20": "24.1", "conduct_SOIL": 28200,
          "temp_SOIL": "24.59", "water_SOIL": "19.57"},
         {("soil_ec_ms_cm", "main"): 28.2, ("soil_temperature_c", "main"): 24.59,
          ("soil_moisture_pct", "main"): 19.57}, 3.384, ["TempC_DS18B20"]),
        # Milesight: battery is a percentage, EC in µS/cm
        ({"battery": 100, "temperature": 28.1, "moisture": 57.5, "electricity": 240},
         {("temperature_c", "main"): 28.1, ("soil_moisture_pct", "main"): 57.5,
          ("soil_ec_ms_cm", "main"): 0.24}, None, ["battery"]),
        # Decentlab (TTN repository decoder): value objects with units
        ({"battery_voltage": {"unit": "V", "value": 3.168}, "device_id": 571,
          "volumetric_water_content": {"unit": "m³⋅m⁻³", "value": 0.25},
          "soil_temperature_at_depth_2": {"unit": "°C", "value": 12.5},
          "soil_moisture_at_depth_2": {"value": 1.2}},
         {("soil_moisture_pct", "main"): 25.0, ("soil_temperature_c", "depth2"): 12.5},
         3.168, ["device_id", "soil_moisture_at_depth_2"]),
        ({"temperature": "77 °F", "battery_v": "3300 mV", "soil_moisture_pct@10cm": 30,
          "flags": [1], "ok": True, "rssi": -40},
         {("temperature_c", "main"): 25.0, ("soil_moisture_pct", "soil_10cm"): 30.0},
         3.3, ["flags", "ok", "rssi"]),
        # A rain gauge's running total (the store derives rain_mm from it), in mm or inches.
        ({"rain_total": {"value": 2.5, "unit": "in"}, "rain_rate": "1.5 mm/h"},
         {("rain_total_mm", "main"): 63.5, ("rain_rate_mm_h", "main"): 1.5}, None, []),
    ],
)
def test_decoded_object_mapping(obj: dict[str, Any], readings: dict[tuple[str, str], float],
                                battery_v: float | None, unknown: list[str]) -> None:
    got = decode_object(obj)
    assert not isinstance(got, Rejection) and hasattr(got, "readings"), got
    assert got.readings == pytest.approx(readings)
    assert got.battery_v == battery_v and got.unknown == unknown


@pytest.mark.parametrize(
    ("obj", "detail"),
    [({"temperature": "20 kg"}, "unit 'kg'"), ({"temperature": "warm"}, "not a number"),
     ({"temperature": 1, "temp": 2}, "given twice"), ({"Bat": 3.1, "vbat": 3.2}, "twice"),
     ({"volumetric_water_content": 1e307}, "out of range"), ({"temp": "1e400"}, "not a number")],
)
def test_decoded_object_refusals(obj: dict[str, Any], detail: str) -> None:
    got = decode_object(obj)
    assert getattr(got, "reason", None) == reasons.SCHEMA and detail in got.detail  # type: ignore[union-attr]


# ------------------------------------------- The Things Stack's CayenneLPP formatter

# lorawan-stack pkg/messageprocessors/cayennelpp/keys.go: key prefix of each LPP type, and
# how go-cayenne-lib computes the value (float32 arithmetic, then JSON as float64).
_TTS_LPP: dict[int, tuple[str, float | None]] = {
    0x00: ("digital_in", None), 0x01: ("digital_out", None), 0x02: ("analog_in", 100),
    0x03: ("analog_out", 100), 0x65: ("luminosity", None), 0x66: ("presence", None),
    0x67: ("temperature", 10), 0x68: ("relative_humidity", 2),
    0x73: ("barometric_pressure", 10),
}


def _f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def tts_lpp_formatter(payload: bytes) -> dict[str, Any]:
    """decoded_payload as The Things Stack's CayenneLPP formatter writes it."""
    items = parse_lpp(payload)
    assert isinstance(items, list), items
    out: dict[str, Any] = {}
    for item in items:
        name, divisor = _TTS_LPP[item.type.type_id]
        raw = round(item.values[0] / item.type.axes[0][1])  # the integer on the wire
        out[f"{name}_{item.channel}"] = raw if divisor is None else _f32(_f32(raw) / divisor)
    return out


def test_tts_cayenne_lpp_formatter_docs_example_reads_as_the_lpp_codec() -> None:
    # The TTS docs example (integrations/payload-formatters/cayenne): 03 67 01 10 05 67 00 ff.
    payload = bytes([0x03, 0x67, 0x01, 0x10, 0x05, 0x67, 0x00, 0xFF])
    decoded = tts_lpp_formatter(payload)
    assert decoded == {"temperature_3": 27.200000762939453, "temperature_5": 25.5}
    body = ttn_body(f_port=8, frm_payload=base64.b64encode(payload).decode(),
                    decoded_payload=decoded)
    got = packet(decode_ttn(dumps(body)))
    assert got.readings == {("temperature_c", "ch3"): 27.2, ("temperature_c", "ch5"): 25.5}
    codec = packet(decode_ttn(dumps(body), codec="cayenne-lpp"))
    assert codec.readings == got.readings


def reads_as_the_lpp_codec(obj: dict[str, Any], payload: bytes) -> Decoded:
    """``decode_object(obj)``, checked to give the readings our cayenne-lpp codec gives for
    the bytes the network server decoded into ``obj``."""
    got = decode_object(obj)
    codec = decode_cayenne_lpp(payload, 8)
    assert isinstance(got, Decoded) and isinstance(codec, Decoded)
    assert got.readings == codec.readings
    return got


def test_tts_cayenne_lpp_formatter_keys_map_as_the_codec_maps_the_bytes() -> None:
    # ch0 barometer 1017.5 hPa, ch0 temperature 22.2, ch2 humidity 64.5 %, ch4 420 lx,
    # ch1 analog input 3.3, ch6 digital input 1, ch7 temperature -12.3 °C.
    payload = bytes.fromhex("007327bf" "006700de" "026881" "046501a4" "0102014a" "060001"
                            "0767ff85")
    decoded = tts_lpp_formatter(payload)
    assert decoded["barometric_pressure_0"] == 1017.5
    assert decoded["temperature_7"] == _f32(_f32(-123) / 10) != -12.3
    got = reads_as_the_lpp_codec(decoded, payload)
    assert got.readings == {
        ("pressure_hpa", "ch0"): 1017.5, ("temperature_c", "ch0"): 22.2,
        ("humidity_pct", "ch2"): 64.5, ("illuminance_lux", "ch4"): 420.0,
        ("temperature_c", "ch7"): -12.3}
    assert got.unknown == ["analog_in_1", "digital_in_6"]  # as the codec: not quantities


@settings(max_examples=300, deadline=None)
@given(items=st.lists(st.tuples(st.integers(0, 255), st.sampled_from([0x65, 0x67, 0x68, 0x73]),
                                st.integers(0, 2**16 - 1)),
                      max_size=8, unique_by=lambda t: (t[0], t[1])))
def test_tts_cayenne_lpp_formatter_values_equal_the_codecs(
    items: list[tuple[int, int, int]],
) -> None:
    payload = b""
    for channel, type_id, raw in items:
        if type_id == 0x68:
            value = (raw & 0xFF).to_bytes(1, "big")
        elif type_id == 0x73:  # go-cayenne-lib reads the barometer as int16, LPP as uint16
            value = (raw & 0x7FFF).to_bytes(2, "big")
        else:
            value = raw.to_bytes(2, "big")
        payload += bytes([channel, type_id]) + value
    if not payload:
        return
    got = decode_object(tts_lpp_formatter(payload))
    codec = decode_cayenne_lpp(payload, 8)
    assert isinstance(got, Decoded) and isinstance(codec, Decoded)
    assert got.readings == codec.readings


def test_tts_uplink_with_no_readings_names_the_fields_it_did_not_map() -> None:
    # An LPP device sending only analog and digital inputs: nothing to store, and the
    # quarantine says what was there instead.
    body = ttn_body(f_port=8, frm_payload="AQIBSgYAAQ==",
                    decoded_payload={"analog_in_1": 3.299999952316284, "digital_in_6": 1})
    got = packet(decode_ttn(dumps(body)))
    assert got.readings == {} and got.unknown_fields == ("analog_in_1", "digital_in_6")
    out = validate(got, 1_782_879_000 * 10**9, "mqtt", Policy("farm"), None,
                   clock_trusted=True)
    assert out.record is None
    assert [(r.reason, r.detail) for r in out.rejections] == [
        ("empty", "no readings in the packet; fields not mapped: analog_in_1, digital_in_6")]


# ------------------------------------------------ ChirpStack's Cayenne LPP codec

# chirpstack/chirpstack, chirpstack/src/codec/cayenne_lpp.rs (v4; the v3 Go codec,
# brocaar/chirpstack-application-server internal/codec/cayennelpp/cayennelpp.go, writes the
# same JSON): object key of each LPP type, and the divisor applied in f64 to the integer
# on the wire (illuminance, presence and digital in/out are that integer, as a number).
_CS_LPP: dict[int, tuple[str, tuple[str, ...] | None, tuple[float, ...]]] = {
    0x00: ("digitalInput", None, (1,)), 0x01: ("digitalOutput", None, (1,)),
    0x02: ("analogInput", None, (100,)), 0x03: ("analogOutput", None, (100,)),
    0x65: ("illuminanceSensor", None, (1,)), 0x66: ("presenceSensor", None, (1,)),
    0x67: ("temperatureSensor", None, (10,)), 0x68: ("humiditySensor", None, (2,)),
    0x71: ("accelerometer", ("x", "y", "z"), (1000, 1000, 1000)),
    0x73: ("barometer", None, (10,)),
    0x86: ("gyrometer", ("x", "y", "z"), (100, 100, 100)),
    0x88: ("gpsLocation", ("latitude", "longitude", "altitude"), (10000, 10000, 100)),
}


def chirpstack_lpp_codec(payload: bytes) -> dict[str, Any]:
    """``object`` as ChirpStack's Cayenne LPP codec writes it (``CayenneLpp::to_struct``):
    by type, then by channel as a decimal string, every value an f64."""
    items = parse_lpp(payload)
    assert isinstance(items, list), items
    out: dict[str, Any] = {}
    for item in items:
        name, axes, divisors = _CS_LPP[item.type.type_id]
        wire = [round(v / axis[1]) for v, axis in zip(item.values, item.type.axes, strict=True)]
        values = [float(w) / d for w, d in zip(wire, divisors, strict=True)]
        out.setdefault(name, {})[str(item.channel)] = \
            values[0] if axes is None else dict(zip(axes, values, strict=True))
    return out


# cayenne_lpp.rs ``test_lpp``: ChirpStack's own bytes and the object it expects for them.
_CS_TEST_LPP = bytes([
    3, 0, 100, 5, 0, 210, 3, 1, 100, 5, 1, 210, 3, 2, 0, 10, 5, 2, 3, 232,
    3, 3, 0, 10, 5, 3, 3, 232, 3, 101, 0, 10, 5, 101, 3, 232, 3, 102, 5, 5, 102, 3,
    3, 103, 1, 16, 5, 103, 0, 255, 3, 104, 41, 5, 104, 150,
    3, 113, 0, 1, 0, 2, 0, 3, 5, 113, 3, 234, 7, 211, 11, 187, 3, 115, 4, 31, 5, 115, 9, 196,
    3, 134, 0, 1, 0, 2, 0, 3, 5, 134, 3, 233, 7, 210, 11, 187,
    1, 136, 6, 118, 95, 242, 150, 10, 0, 3, 232,
])
_CS_TEST_OBJECT: dict[str, Any] = {
    "digitalInput": {"3": 100.0, "5": 210.0}, "digitalOutput": {"3": 100.0, "5": 210.0},
    "analogInput": {"3": 0.1, "5": 10.0}, "analogOutput": {"3": 0.1, "5": 10.0},
    "illuminanceSensor": {"3": 10.0, "5": 1000.0}, "presenceSensor": {"3": 5.0, "5": 3.0},
    "temperatureSensor": {"3": 27.2, "5": 25.5}, "humiditySensor": {"3": 20.5, "5": 75.0},
    "accelerometer": {"3": {"x": 0.001, "y": 0.002, "z": 0.003},
                      "5": {"x": 1.002, "y": 2.003, "z": 3.003}},
    "barometer": {"3": 105.5, "5": 250.0},
    "gyrometer": {"3": {"x": 0.01, "y": 0.02, "z": 0.03},
                  "5": {"x": 10.01, "y": 20.02, "z": 30.03}},
    "gpsLocation": {"1": {"latitude": 42.3519, "longitude": -87.9094, "altitude": 10.0}},
}


def test_chirpstack_cayenne_lpp_test_vector_reads_as_the_lpp_codec() -> None:
    assert chirpstack_lpp_codec(_CS_TEST_LPP) == _CS_TEST_OBJECT  # the model is ChirpStack's
    got = reads_as_the_lpp_codec(_CS_TEST_OBJECT, _CS_TEST_LPP)
    assert got.readings == {
        ("illuminance_lux", "ch3"): 10.0, ("illuminance_lux", "ch5"): 1000.0,
        ("temperature_c", "ch3"): 27.2, ("temperature_c", "ch5"): 25.5,
        ("humidity_pct", "ch3"): 20.5, ("humidity_pct", "ch5"): 75.0,
        ("pressure_hpa", "ch3"): 105.5, ("pressure_hpa", "ch5"): 250.0}
    assert got.unknown == [f"{name}.{ch}" for name in (
        "digitalInput", "digitalOutput", "analogInput", "analogOutput", "presenceSensor",
        "accelerometer", "gyrometer") for ch in ("3", "5")] + ["gpsLocation.1"]
    assert got.battery_v is None


def test_chirpstack_cayenne_lpp_object_in_an_up_event_reads_as_the_lpp_codec() -> None:
    # ch0 barometer 1017.5 hPa, ch3 temperature 27.2, ch5 humidity 60.5 %, ch4 300 lx,
    # ch1 analog input 3.3, ch6 digital input 1, ch7 temperature -12.3 °C.
    payload = bytes.fromhex("007327bf" "03670110" "056879" "0465012c" "0102014a" "060001"
                            "0767ff85")
    obj = chirpstack_lpp_codec(payload)
    assert obj == {"barometer": {"0": 1017.5}, "temperatureSensor": {"3": 27.2, "7": -12.3},
                   "humiditySensor": {"5": 60.5}, "illuminanceSensor": {"4": 300.0},
                   "analogInput": {"1": 3.3}, "digitalInput": {"6": 1.0}}
    body = cs_body(fCnt=4, fPort=8, data=base64.b64encode(payload).decode(), object=obj)
    got = packet(decode_chirpstack(dumps(body)))
    assert got.readings == {
        ("pressure_hpa", "ch0"): 1017.5, ("temperature_c", "ch3"): 27.2,
        ("temperature_c", "ch7"): -12.3, ("humidity_pct", "ch5"): 60.5,
        ("illuminance_lux", "ch4"): 300.0}
    assert got.unknown_fields == ("analogInput.1", "digitalInput.6")
    codec = packet(decode_chirpstack(dumps(body), codec="cayenne-lpp"))
    assert codec.readings == got.readings


@settings(max_examples=300, deadline=None)
@given(items=st.lists(st.tuples(st.integers(0, 255), st.sampled_from([0x65, 0x67, 0x68, 0x73]),
                                st.integers(0, 2**16 - 1)),
                      max_size=8, unique_by=lambda t: (t[0], t[1])))
def test_chirpstack_cayenne_lpp_values_equal_the_codecs(items: list[tuple[int, int, int]]) -> None:
    # ChirpStack reads the barometer as u16, as LPP does: the whole range, unlike TTS.
    payload = b""
    for channel, type_id, raw in items:
        value = (raw & 0xFF).to_bytes(1, "big") if type_id == 0x68 else raw.to_bytes(2, "big")
        payload += bytes([channel, type_id]) + value
    if not payload:
        return
    got = decode_object(json.loads(dumps(chirpstack_lpp_codec(payload))))  # through JSON
    codec = decode_cayenne_lpp(payload, 8)
    assert isinstance(got, Decoded) and isinstance(codec, Decoded)
    assert got.readings == codec.readings and got.unknown == codec.unknown == []


@pytest.mark.parametrize(
    ("obj", "readings", "unknown"),
    [
        # Channel keys as ChirpStack writes a u8; anything else is not a channel.
        ({"temperatureSensor": {"0": 20.0, "255": 21.5, "03": 1.0, "256": 2.0, "x": 3.0,
                                "\u0663": 4.0}},  # an Arabic-Indic 3: int() reads it, not ours
         {("temperature_c", "ch0"): 20.0, ("temperature_c", "ch255"): 21.5},
         ["temperatureSensor.03", "temperatureSensor.256", "temperatureSensor.x",
          "temperatureSensor.\u0663"]),
        # A value off the LPP grid (float32 in a custom JS codec) goes back onto it.
        ({"humiditySensor": {"2": 64.5}, "barometer": {"1": 1017.5000610351562}},
         {("humidity_pct", "ch2"): 64.5, ("pressure_hpa", "ch1"): 1017.5}, []),
        # Values of no reading shape are listed, as top-level keys are.
        ({"temperatureSensor": {"1": None, "2": [1]}, "illuminanceSensor": {}},
         {}, ["temperatureSensor.1", "temperatureSensor.2", "illuminanceSensor"]),
        # Not a ChirpStack type object: the ordinary rules (a Decentlab-style value object).
        ({"barometer": 1017.5, "temperatureSensor": {"value": 20.0}}, {},
         ["barometer", "temperatureSensor"]),
    ],
)
def test_chirpstack_cayenne_lpp_object_edges(obj: dict[str, Any],
                                             readings: dict[tuple[str, str], float],
                                             unknown: list[str]) -> None:
    got = decode_object(obj)
    assert isinstance(got, Decoded), got
    assert got.readings == readings and got.unknown == unknown


@pytest.mark.parametrize(
    ("obj", "detail"),
    [({"temperatureSensor": {"3": "warm"}}, "temperatureSensor.3: 'warm' is not a number"),
     ({"temperatureSensor": {"3": 27.2}, "temperature_3": 27.2}, "given twice"),
     ({"humiditySensor": {"3": "60 kg"}}, "unit 'kg'")],
)
def test_chirpstack_cayenne_lpp_object_refusals(obj: dict[str, Any], detail: str) -> None:
    got = decode_object(obj)
    assert getattr(got, "reason", None) == reasons.SCHEMA and detail in got.detail  # type: ignore[union-attr]


# ---------------------------------------------------------------- never raise

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(["uplink_message", "end_device_ids", "decoded_payload", "frm_payload",
                        "f_cnt", "rx_metadata", "deviceInfo", "devEui", "object", "data",
                        "fCnt", "rxInfo", "time", "received_at", "Bat", "temperature",
                        "dev_eui", "device_id", "rssi", "snr"])
SHAPED = st.recursive(
    JSON_VALUES,
    lambda inner: st.dictionaries(KEYS, inner, max_size=6) | st.lists(inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(obj=SHAPED, codec=st.none() | st.sampled_from(["cayenne-lpp", "dragino-lse01"]),
       event=st.none() | st.sampled_from(["up", "status"]))
def test_arbitrary_json_never_raises(obj: object, codec: str | None, event: str | None) -> None:
    body = json.dumps(obj).encode()
    for got in (decode_ttn(body, codec=codec), decode_chirpstack(body, codec=codec,
                                                                 event=event)):
        assert isinstance(got, Packet | Rejection)
        if isinstance(got, Rejection):
            assert got.reason in reasons.REASONS and got.raw == body.strip()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    for got in (decode_ttn(data), decode_chirpstack(data)):
        assert isinstance(got, Packet | Rejection)


FIELD_KEYS = st.sampled_from(["temperature", "Bat", "battery", "water_SOIL", "conduct_SOIL",
                              "soil_temperature_at_depth_3", "soil_moisture_pct@10cm",
                              "volumetric_water_content", "rssi", "pressure", "unknown",
                              "temperature_3", "relative_humidity_255", "luminosity_4",
                              "barometric_pressure_0", "analog_in_1", "temperature_256",
                              "temperatureSensor", "humiditySensor", "barometer",
                              "illuminanceSensor", "analogInput", "gpsLocation"])
CHANNEL_KEYS = st.sampled_from(["0", "3", "255", "256", "03", "-1", "value"]) | st.text(max_size=3)
FIELD_VALUES = JSON_VALUES | st.builds(
    lambda number, unit: f"{number}{unit}",
    st.floats(allow_nan=True, allow_infinity=True) | st.integers(),
    st.sampled_from(["", " V", "mV", " °C", "°F", " uS/cm", " %", " kPa", " m³/m³", " x"]),
) | st.fixed_dictionaries({"value": JSON_VALUES}, optional={"unit": JSON_VALUES})
FIELD_VALUES = FIELD_VALUES | st.dictionaries(CHANNEL_KEYS, FIELD_VALUES, max_size=4)


@settings(max_examples=400, deadline=None)
@given(obj=st.dictionaries(FIELD_KEYS | st.text(max_size=6), FIELD_VALUES, max_size=6))
def test_decoded_objects_never_raise_and_give_finite_catalogue_values(
    obj: dict[str, Any],
) -> None:
    got = decode_object(obj)
    if isinstance(got, Decoded):
        for (quantity, _sensor), value in got.readings.items():
            assert quantity in BY_NAME and math.isfinite(value)
        assert got.battery_v is None or math.isfinite(got.battery_v)
    else:
        assert got.reason in reasons.REASONS


def test_tts_formatter_channels_are_ascii_digits() -> None:
    """re's \\d also takes other scripts' digits: temperature_٣ is no channel 3."""
    got = decode_object({"temperature_\u0663": 21.5, "temperature_3": 20.0})
    assert isinstance(got, Decoded)
    assert got.readings == {("temperature_c", "ch3"): 20.0}
    assert got.unknown == ["temperature_\u0663"]


def test_dragino_decoder_output_without_a_probe_is_a_fault_not_zeros() -> None:
    """Dragino's LSE01 decoder (TTS decoded_payload) with s_flag 0 prints the missing
    probe's zeros: they are faults, as the bytes decoded by decode_lse01 are."""
    body = {"Bat": "3.625 V", "water_SOIL": "0.00", "temp_SOIL": "0.00",
            "conduct_SOIL": 0, "s_flag": 0, "i_flag": 0, "Mod": 0}
    got = decode_object(body)
    assert isinstance(got, Decoded) and got.battery_v == 3.625
    assert sorted(got.readings) == [("soil_ec_ms_cm", "main"), ("soil_moisture_pct", "main"),
                                    ("soil_temperature_c", "main")]
    assert all(math.isnan(v) for v in got.readings.values())
    probe = decode_object({**body, "s_flag": 1})
    assert isinstance(probe, Decoded)
    assert probe.readings[("soil_moisture_pct", "main")] == 0.0
    old_firmware = decode_object({**body, "water_SOIL": "21.02"})  # byte 10 was no flags
    assert isinstance(old_firmware, Decoded)
    assert old_firmware.readings[("soil_moisture_pct", "main")] == 21.02
