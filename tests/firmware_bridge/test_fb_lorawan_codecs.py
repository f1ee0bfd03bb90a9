"""LoRaWAN payload codecs against the vendors' test vectors and documented layouts.

Vectors come from ../shared/corpus/lorawan/codec_vectors (the TTN device repository's
codec YAML files, Milesight's own codec JSON) and the ThingsBoard converter cases in
../shared/corpus/lorawan/*/thingsboard-data-converters (real payloads with the values
Decentlab's decoder gives); a clone without the corpus skips those. The byte examples in
the codec modules' docstrings are tested here without the corpus.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import reasons
from firmware_bridge.lorawan.codecs import CODECS
from firmware_bridge.lorawan.common import CodecError, Decoded
from gateway.config.models import PayloadCodec
from gateway.packet import Packet
from gateway.pipeline.validate import Policy, validate

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "lorawan"
NO_CORPUS = pytest.mark.skipif(not CORPUS.exists(), reason=f"LoRaWAN corpus not at {CORPUS}")
VECTORS = CORPUS / "codec_vectors"
CONVERTERS = CORPUS / "chirpstack_v4" / "thingsboard-data-converters"


def decode(codec: str, hex_payload: str, f_port: int | None = None) -> Decoded:
    result = CODECS[codec](bytes.fromhex(hex_payload), f_port)
    assert isinstance(result, Decoded), result
    return result


def refusal(codec: str, payload: bytes, f_port: int | None = None) -> CodecError:
    result = CODECS[codec](payload, f_port)
    assert isinstance(result, CodecError), result
    return result


def validated(got: Decoded) -> tuple[dict[str, dict[str, float]], dict[str, float],
                                     list[tuple[str, str]]]:
    """What validation stores of a decoded payload (readings, device fields) and refuses."""
    p = Packet("n1", 1, got.readings, "ttn", b"raw", battery_v=got.battery_v)
    out = validate(p, 1_782_879_000 * 10**9, "mqtt", Policy("farm"), None, clock_trusted=True)
    stored = out.record.readings if out.record else {}
    device = out.record.device if out.record else {}
    return stored, device, [(r.reason, r.detail) for r in out.rejections]


def test_config_names_every_codec() -> None:
    assert set(PayloadCodec.__args__) == set(CODECS)  # type: ignore[attr-defined]


def _yaml_examples(name: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load((VECTORS / name).read_text(encoding="utf-8"))["uplinkDecoder"]
    return list(doc.get("examples") or doc.get("example"))


# ---------------------------------------------------------------- Milesight


@NO_CORPUS
def test_milesight_em500_smtc_vector_of_milesights_codec_json() -> None:
    # Milesight's own codec JSON: battery 100 %, temperature 28.1, moisture 57.5, EC 240
    # (its decoder calls EC "electricity", its README "ec"; either way µS/cm).
    codec = json.loads((VECTORS / "milesight-em500-smtc-codec.json").read_text())
    values = {o["id"]: o["value"] for o in codec["object"] if o["value"]}
    got = decode("milesight-em500-smtc", codec["bytes"])
    assert got.readings == {
        ("soil_temperature_c", "main"): float(values["temperature"]),
        ("soil_moisture_pct", "main"): float(values["moisture"]),
        ("soil_ec_ms_cm", "main"): float(values["electricity"]) / 1000,
    }
    assert got.battery_v is None and got.unknown == ["battery_pct"]  # a percentage


@NO_CORPUS
def test_milesight_ttn_repository_vectors() -> None:
    # The TTN repository names the moisture "humidity" (its decoder is shared with the
    # EM500-SMT) and its expectation leaves out the EC its decoder emits: we check the
    # numbers, which agree, under the soil quantities the EM500-SMTC measures.
    examples = _yaml_examples("vendor__milesight-iot__em500-smtc-codec.yaml")
    examples += _yaml_examples("vendor__milesight-iot__em500-smt-codec.yaml")
    assert len(examples) == 2
    for ex in examples:
        got = decode("milesight-em500-smtc", bytes(ex["input"]["bytes"]).hex(),
                     ex["input"]["fPort"])
        data = ex["output"]["data"]
        assert got.readings[("soil_moisture_pct", "main")] == data["humidity"]
        if "temperature" in data:
            assert got.readings[("soil_temperature_c", "main")] == data["temperature"]


def test_milesight_layout_examples() -> None:
    smtc = decode("milesight-em500-smtc", "01756403671901046873057ff000")
    assert smtc.readings == {("soil_temperature_c", "main"): 28.1,
                             ("soil_moisture_pct", "main"): 57.5,
                             ("soil_ec_ms_cm", "main"): 0.24}
    th = decode("milesight-em300-th", "01755c03673401046865")
    assert th.readings == {("temperature_c", "main"): 30.8, ("humidity_pct", "main"): 50.5}
    negative = decode("milesight-em300-th", "0367f6ff")  # int16 LE 0xfff6 = -10 -> -1.0 °C
    assert negative.readings == {("temperature_c", "main"): -1.0}
    # Device information after a join: skipped by size, not readings.
    info = decode("milesight-em500-smtc", "ff0101ff090140ff0a0114ff0f00" + "ff16" + "00" * 8)
    assert info.readings == {} and info.unknown == ["ff01", "ff09", "ff0a", "ff0f", "ff16"]


def test_milesight_em500_smtc_moisture_at_0_01_percent() -> None:
    # 04 ca: uint16 LE / 100 (EM500-SMTC README, newer firmware); 0x1676 = 5750 -> 57.50 %.
    got = decode("milesight-em500-smtc", "017564" "03671901" "04ca7616" "057ff000")
    assert got.readings == {("soil_temperature_c", "main"): 28.1,
                            ("soil_moisture_pct", "main"): 57.5,
                            ("soil_ec_ms_cm", "main"): 0.24}
    assert decode("milesight-em500-smtc", "04ca0100").readings == \
        {("soil_moisture_pct", "main"): 0.01}
    error = refusal("milesight-em500-smtc", bytes.fromhex("046873" "04ca7616"))
    assert error.reason == reasons.BAD_PAYLOAD and "given twice" in error.detail


@pytest.mark.parametrize(
    ("hex_payload", "faulty"),
    [
        ("0367ffff" "046873", "soil_temperature_c"),  # raw 0xffff: "collection failed"
        ("0367fdff" "046873", "soil_temperature_c"),  # raw 0xfffd: "out of range"
        ("03671901" "04caffff", "soil_moisture_pct"),
        ("03671901" "04cafdff", "soil_moisture_pct"),
        ("03671901" "057fffff", "soil_ec_ms_cm"),
        ("03671901" "057ffdff", "soil_ec_ms_cm"),
    ],
)
def test_milesight_em500_smtc_fault_values_refuse_that_reading_alone(hex_payload: str,
                                                                      faulty: str) -> None:
    got = decode("milesight-em500-smtc", hex_payload)
    assert math.isnan(got.readings[(faulty, "main")])  # not -0.1 °C, 655.35 %, 65.535 mS/cm
    assert all(math.isfinite(v) for (q, _), v in got.readings.items() if q != faulty)
    stored, _, rejected = validated(got)
    assert faulty not in stored["main"] and len(stored["main"]) == 1  # the other one is kept
    assert rejected == [("sensor_fault", f"{faulty}@main: sensor fault (nan)")]


def test_milesight_em300_th_has_no_fault_values() -> None:
    # EM300-TH_Decoder.js reads plain int16: 0xffff there is an air temperature of -0.1 °C.
    assert decode("milesight-em300-th", "0367ffff").readings == \
        {("temperature_c", "main"): -0.1}


@pytest.mark.parametrize(
    ("codec", "hex_payload", "unknown"),
    [
        # EM500-SMTC temperature alarm (5 bytes), then the periodic readings.
        ("milesight-em500-smtc", "83d7" "1901" "0a00" "00" "03671901046873",
         ["temperature_alarm"]),
        # EM500-SMTC history record: time, EC, temperature, moisture (10 bytes).
        ("milesight-em500-smtc", "20ce" "9e744663" "f000" "1901" "7616" "03671901046873",
         ["history"]),
        # EM300-TH history record, the README's example (8 bytes), twice, then a reading.
        ("milesight-em300-th", "20ce9e74466310015d00" "20ce9e74466310015d00" "03671901",
         ["history"]),
        # Reset event and TSL version (device information), then the battery.
        ("milesight-em500-smtc", "fffe01" "ffff0100" "017564" "03671901046873",
         ["fffe", "ffff", "battery_pct"]),
        ("milesight-em300-th", "fffe01" "017564" "03671901", ["fffe", "battery_pct"]),
    ],
)
def test_milesight_documented_records_we_do_not_store_are_skipped_by_size(
    codec: str, hex_payload: str, unknown: list[str],
) -> None:
    got = decode(codec, hex_payload)
    quantity = "soil_temperature_c" if "em500" in codec else "temperature_c"
    assert got.readings[(quantity, "main")] == 28.1
    assert got.unknown == unknown


def test_milesight_em300_th_readme_history_example_alone() -> None:
    got = decode("milesight-em300-th", "20CE9E74466310015D00")
    assert got.readings == {} and got.unknown == ["history"]
    assert got.no_readings is None  # a past measurement: stays evidence, not "ignored"


@pytest.mark.parametrize(
    ("codec", "hex_payload", "unknown", "what"),
    [
        # Replies to downlink commands (EM500-SMTC_Decoder.js "DOWNLINK RESPONSE": channel
        # fe or ff, the command's type): report interval 0x04b0 = 1200 s, collection
        # interval 180 s, a reboot, time zone UTC+9 (90), retransmit interval (type, uint16).
        ("milesight-em500-smtc", "fe03b004", ["report_interval"], "downlink reply"),
        ("milesight-em500-smtc", "ff02b400", ["collection_interval"], "downlink reply"),
        ("milesight-em500-smtc", "fe10ff" "fe175a00" "fe6a00b400",
         ["reboot", "time_zone", "retransmit_interval"], "downlink reply"),
        # The alarm configuration reply is 9 bytes, calibration 4, the D2D key 8.
        ("milesight-em500-smtc", "fe06" "d2" + "00" * 8 + "fef1" "00010a00" "fe35" + "11" * 8,
         ["alarm_config", "calibration_settings", "d2d_key"], "downlink reply"),
        # Device information after a join, with the power-on status; the battery alone.
        ("milesight-em500-smtc", "ff0bff" "ff0101" "ff16" + "61" * 8 + "ff090140" "ff0a0114"
         "ff0f00", ["ff0b", "ff01", "ff16", "ff09", "ff0a", "ff0f"], "device information"),
        ("milesight-em300-th", "ff0bff" "ff0101", ["ff0b", "ff01"], "device information"),
        ("milesight-em500-smtc", "017564", ["battery_pct"], "battery level"),
        ("milesight-em500-smtc", "ff0bff" "017564" "fe03b004",
         ["ff0b", "battery_pct", "report_interval"],
         "battery level and device information and downlink reply"),
    ],
)
def test_milesight_uplinks_without_readings_are_device_traffic(
    codec: str, hex_payload: str, unknown: list[str], what: str,
) -> None:
    got = decode(codec, hex_payload)
    assert got.readings == {} and got.unknown == unknown
    assert got.no_readings is not None and f": {what} only (" in got.no_readings


def test_milesight_reply_beside_readings_is_read_past() -> None:
    got = decode("milesight-em500-smtc", "fe03b004" "017564" "03671901" "046873")
    assert got.readings == {("soil_temperature_c", "main"): 28.1,
                            ("soil_moisture_pct", "main"): 57.5}
    assert got.unknown == ["report_interval", "battery_pct"] and got.no_readings is None
    # The alarm (a measurement) alone is not device traffic without readings.
    assert decode("milesight-em500-smtc", "83d7" "1901" "0a00" "00").no_readings is None


# ---------------------------------------------------------------- Decentlab


@NO_CORPUS
def test_decentlab_dl_5tm_ttn_repository_vectors() -> None:
    examples = _yaml_examples("vendor__decentlab__dl-5tm-codec.yaml")
    assert len(examples) == 2
    for ex in examples:
        got = decode("decentlab-dl-5tm", bytes(ex["input"]["bytes"]).hex())
        data = ex["output"]["data"]
        assert got.battery_v == data["battery_voltage"]["value"]
        if "soil_temperature" in data:
            assert got.readings[("soil_temperature_c", "main")] == \
                data["soil_temperature"]["value"]
            assert got.readings[("soil_moisture_pct", "main")] == pytest.approx(
                data["volumetric_water_content"]["value"] * 100, abs=1e-8)
        else:
            assert got.readings == {}  # battery-only uplink (flags 0x0002)


def _converter_cases(model: str, codec: str) -> list[tuple[Decoded, dict[str, float]]]:
    """Our decoding of the v4 ChirpStack cases' payloads, with ThingsBoard's decoded values
    (Decentlab's decoder); battery volts checked here for both devices."""
    cases = []
    for payload in sorted(CONVERTERS.glob(f"Decentlab__{model}__ChirpStack__payload*.json")):
        event = json.loads(payload.read_text())
        if "deviceInfo" not in event:
            continue  # ChirpStack v3 events: tested as refusals with the envelope
        result = json.loads(payload.with_name(payload.name.replace("payload", "result"))
                            .read_text())
        values = result["telemetry"][0]["values"]
        got = CODECS[codec](base64.b64decode(event["data"]), event["fPort"])
        assert isinstance(got, Decoded) and got.battery_v == values["battery_voltage"]
        cases.append((got, values))
    assert len(cases) == 2
    return cases


@NO_CORPUS
def test_decentlab_dl_smtp_against_decoded_converter_results() -> None:
    for got, values in _converter_cases("DL-SMTP", "decentlab-dl-smtp"):
        expected = {("soil_temperature_c", f"depth{d}"): values[f"soil_temperature_at_depth_{d}"]
                    for d in range(8) if f"soil_temperature_at_depth_{d}" in values
                    and values[f"soil_temperature_at_depth_{d}"] != -327.68}  # not connected
        assert got.readings == expected
        # Six probes connected, or a battery-only uplink (flags 0x0002).
        depths = range(6) if "soil_temperature_at_depth_0" in values else range(0)
        assert sorted(expected) == [("soil_temperature_c", f"depth{d}") for d in depths]
        # The moisture index is unitless, not water content: named, not stored.
        assert got.unknown == [f"soil_moisture_at_depth_{d}" for d in depths]


@NO_CORPUS
def test_decentlab_dl_5tm_against_decoded_converter_results() -> None:
    for got, values in _converter_cases("DL-5TM", "decentlab-dl-5tm"):
        if "soil_temperature" in values:
            assert got.readings[("soil_temperature_c", "main")] == values["soil_temperature"]
        else:
            assert got.readings == {}


@pytest.mark.parametrize(
    ("codec", "hex_payload", "detail"),
    [
        ("milesight-em500-smtc", "", "empty"),
        ("milesight-em500-smtc", "01", "channel without type"),
        ("milesight-em500-smtc", "0367", "cut"),
        ("milesight-em500-smtc", "09ff00", "not in the EM500-SMTC layout"),
        ("milesight-em300-th", "057ff000", "not in the EM300-TH layout"),  # no EC on a TH
        ("milesight-em300-th", "0367010003670100", "given twice"),
        ("milesight-em300-th", "04ca7616", "not in the EM300-TH layout"),  # SMTC's only
        ("milesight-em300-th", "83d71901" "0a0000", "not in the EM300-TH layout"),
        ("milesight-em500-smtc", "ff2001", "not in the EM500-SMTC layout"),  # undocumented
        ("milesight-em500-smtc", "20ce" + "00" * 9, "history cut"),  # 10 bytes on the SMTC
        ("milesight-em500-smtc", "83d7" + "00" * 4, "temperature_alarm cut"),
        ("milesight-em300-th", "fffe", "fffe cut"),
        ("milesight-em500-smtc", "fe03b0", "report_interval cut"),
        ("milesight-em500-smtc", "fe2001", "not in the EM500-SMTC layout"),  # no such reply
        ("milesight-em300-th", "fe03b004", "not in the EM300-TH layout"),  # not documented
        ("decentlab-dl-5tm", "02023b00", "header is 5"),
        ("decentlab-dl-5tm", "03023b00020c60", "protocol version 3"),
        ("decentlab-dl-5tm", "02023b0004", "flags 0x0004"),
        ("decentlab-dl-5tm", "02023b000300370271", "group 1 cut"),
        ("decentlab-dl-5tm", "02023b00020c6000", "1 bytes after"),
        ("decentlab-dl-smtp", "020b500001" + "00" * 30, "group 0 cut"),
        ("dragino-lse01", "00" * 10, "10 bytes"),
    ],
)
def test_layout_refusals(codec: str, hex_payload: str, detail: str) -> None:
    error = refusal(codec, bytes.fromhex(hex_payload), None)
    assert error.reason == reasons.BAD_PAYLOAD and detail in error.detail


# ---------------------------------------------------------------- Dragino


@NO_CORPUS
def test_dragino_lse01_ttn_repository_vectors() -> None:
    calibrated, wrong_port = _yaml_examples("vendor__dragino__lse01-codec.yaml")
    payload = bytes(calibrated["input"]["bytes"])
    data = calibrated["output"]["data"]
    # The vector's flag byte 0x90 has bit 7 set: "Mod 1" (raw counts) for Dragino's
    # V1.2.1 decoder, which we follow; the old TTN decoder ignored that byte. Battery is
    # the same either way; the calibrated reading of the same bytes is mode 0.
    raw_mode = decode("dragino-lse01", payload.hex(), calibrated["input"]["fPort"])
    assert raw_mode.battery_v == data["Bat"] and raw_mode.readings == {}
    mode0 = decode("dragino-lse01", (payload[:10] + bytes([payload[10] & 0x7F])).hex(), 2)
    assert mode0.readings == {
        ("soil_moisture_pct", "main"): float(data["water_SOIL"]),
        ("soil_temperature_c", "main"): float(data["temp_SOIL"]),
        ("soil_ec_ms_cm", "main"): data["conduct_SOIL"] / 1000,
    }
    error = refusal("dragino-lse01", bytes(wrong_port["input"]["bytes"]),
                    wrong_port["input"]["fPort"])
    assert error.reason == reasons.BAD_PAYLOAD and "f_port 42" in error.detail


def test_dragino_lse01_without_a_probe_stores_only_the_battery() -> None:
    # Flag byte 0x00: mode 0, s_flag 0 ("No sensor was identified"); bytes 4..9 are zeros.
    got = decode("dragino-lse01", "ce29" "0000" "0000" "0000" "0000" "00", 2)
    assert got.battery_v == 3.625
    assert sorted(got.readings) == [("soil_ec_ms_cm", "main"), ("soil_moisture_pct", "main"),
                                    ("soil_temperature_c", "main")]
    assert all(math.isnan(v) for v in got.readings.values())  # never 0 %, 0 °C, 0 mS/cm
    stored, device, rejected = validated(got)
    assert stored == {} and device["battery_v"] == 3.625
    assert [reason for reason, _ in rejected] == ["sensor_fault"]
    assert all(q in rejected[0][1] for q in ("soil_moisture_pct", "soil_temperature_c",
                                             "soil_ec_ms_cm"))
    # The same probe bytes with s_flag 1 (0x10) are readings, zeros included.
    probe = decode("dragino-lse01", "ce29" "0000" "0000" "0000" "0000" "10", 2)
    assert probe.readings == {("soil_moisture_pct", "main"): 0.0,
                              ("soil_temperature_c", "main"): 0.0,
                              ("soil_ec_ms_cm", "main"): 0.0}
    # Firmware before the flags byte: byte 10 was the digital interrupt (0), with readings.
    old = decode("dragino-lse01", "ce29" "00f1" "07a5" "099b" "6e28" "00", 2)
    assert old.readings == {("soil_moisture_pct", "main"): 19.57,
                            ("soil_temperature_c", "main"): 24.59,
                            ("soil_ec_ms_cm", "main"): 28.2}
    # Mode 1 without a probe: the battery alone, as in mode 1 with one.
    raw_mode = decode("dragino-lse01", "ce29" "0000" "0000" "0000" "0000" "80", 2)
    assert raw_mode.readings == {} and raw_mode.battery_v == 3.625


# ---------------------------------------------------------------- Cayenne LPP


def test_cayenne_lpp_codec_keeps_the_lpp_decoders_mapping_and_refusals() -> None:
    got = decode("cayenne-lpp", "03670110056700ff")
    assert got.readings == {("temperature_c", "ch3"): 27.2, ("temperature_c", "ch5"): 25.5}
    assert refusal("cayenne-lpp", bytes.fromhex("01ff")).reason == \
        reasons.UNKNOWN_READING_TYPE


# ---------------------------------------------------------------- never raise


@pytest.mark.parametrize("codec", sorted(CODECS))
@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=64), f_port=st.none() | st.integers(0, 255))
def test_codecs_never_raise(codec: str, payload: bytes, f_port: int | None) -> None:
    result = CODECS[codec](payload, f_port)
    assert isinstance(result, Decoded | CodecError)
    if isinstance(result, CodecError):
        assert result.reason in reasons.REASONS
