"""rtl_433 JSON events against real rtl_433 22.11 output, plus the mapping rules and refusals.

The corpus (../shared/corpus/rtl433, see its README) holds the JSON that Debian's rtl_433
22.11 printed for real I/Q captures of a SensibleLiving moisture probe and for the
demodulated example frames quoted in rtl_433's decoder sources (Fine Offset WH51/WH24/WH65B,
Ambient Weather WH31E, Bresser 6-in-1); a clone without that folder skips those cases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import reasons
from firmware_bridge.ecowitt import decode_ecowitt
from firmware_bridge.rtl433 import decode_rtl433_line
from gateway.packet import Packet, Rejection

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "rtl433"
NO_CORPUS = pytest.mark.skipif(not CORPUS.exists(), reason=f"rtl_433 corpus not at {CORPUS}")


def _demod() -> dict[str, list[dict[str, Any]]]:
    cases = json.loads((CORPUS / "demod_codes" / "decoded_doc_comment_codes.json").read_text())
    return {c["id"]: c["decoded_by_debian_rtl_433_22.11"] for c in cases}


def _packet(line: bytes | str) -> Packet:
    result = decode_rtl433_line(line)
    assert isinstance(result, Packet), result
    return result


@NO_CORPUS
def test_every_corpus_line_decodes() -> None:
    lines = [ln for f in sorted((CORPUS / "iq_captures").rglob("*.json"))
             for ln in f.read_bytes().splitlines() if ln.strip()]
    assert len(lines) == 8
    events = [e for decoded in _demod().values() for e in decoded]
    assert len(events) == 10
    lines += [json.dumps(e).encode() for e in events]
    for line in lines:
        _packet(line)


@NO_CORPUS
def test_sensible_living_iq_capture_lines_as_printed_by_rtl_433_22_11() -> None:
    for path in sorted((CORPUS / "iq_captures" / "sensible_living_moisture").glob("*.json")):
        packet = _packet(path.read_bytes().strip())
        assert packet.node == "SensibleLiving-Moisture:2:24621"
        assert packet.battery_v == pytest.approx(2.96)
        # sensor_value is the probe's raw count (1000 here), not a percentage: not mapped.
        assert packet.readings == {}
        assert packet.node_time_ns is None  # "@0.284576s": an offset into the file
        assert set(packet.unknown_fields) == {"time", "sensor_type", "sensor_count", "alarms",
                                              "sensor_value"}


@NO_CORPUS
def test_fine_offset_and_ambient_weather_events() -> None:
    demod = _demod()
    (wh51,) = demod["wh51_doc"]
    p = _packet(json.dumps(wh51))
    assert p.node == "Fineoffset-WH51:006b58"
    assert p.readings == {("soil_moisture_pct", "main"): 36.0}
    assert p.battery_v == pytest.approx(1.4)
    assert {"battery_ok", "boost", "ad_raw", "time"} <= set(p.unknown_fields)

    (wh24,) = demod["wh24_doc"]
    p = _packet(json.dumps(wh24))
    assert p.node == "Fineoffset-WH24:191"
    assert p.readings == {("temperature_c", "main"): 11.8, ("humidity_pct", "main"): 78.0,
                          ("wind_speed_ms", "main"): 1.12, ("illuminance_lux", "main"): 0.0,
                          ("rain_total_mm", "main"): 22.2}  # rtl_433's rain_mm: a total
    assert {"wind_dir_deg", "wind_max_m_s", "uv", "uvi"} <= set(p.unknown_fields)

    (a,), (b,) = demod["wh31e_a"], demod["wh31e_b"]
    pa, pb = _packet(json.dumps(a)), _packet(json.dumps(b))
    assert (pa.node, pb.node) == ("AmbientWeather-WH31E:195:ch1", "AmbientWeather-WH31E:68:ch2")
    assert pa.readings == {("temperature_c", "main"): 12.2, ("humidity_pct", "main"): 94.0}
    assert pb.readings == {("temperature_c", "main"): 13.8, ("humidity_pct", "main"): 57.0}


@NO_CORPUS
def test_bresser_events_and_frames_rtl_433_did_not_decode() -> None:
    demod = _demod()
    assert [k for k, v in demod.items() if k.startswith("bresser") and not v] == \
        ["bresser6in1_1", "bresser6in1_3", "bresser6in1_5"]
    (event,) = demod["bresser6in1_6"]
    p = _packet(json.dumps(event))
    assert p.node == "Bresser-6in1:411042499:ch0"
    assert p.readings == {("temperature_c", "main"): 2.7, ("humidity_pct", "main"): 96.0,
                          ("wind_speed_ms", "main"): 0.3}


def test_wn34_probe_temperature_is_a_soil_temperature_as_from_an_ecowitt_gateway() -> None:
    # rtl_433 src/devices/fineoffset_wn34.c: model, id, battery_ok, battery_mV,
    # temperature_C, mic; sub type 4 (WN34D) is "Fineoffset-WN34D".
    line = ('{"time": "2026-07-01 13:10:00", "model": "%s", "id": "2965", "battery_ok": 1.0,'
            ' "battery_mV": 1580, "temperature_C": 18.4, "mic": "CRC"}')
    (via_gateway,) = decode_ecowitt(b"PASSKEY=ABCDEF0123456789&dateutc=2026-07-01+04:10:00"
                                    b"&tf_ch1=65.1&tf_batt1=1.58")
    assert set(via_gateway.readings) == {("soil_temperature_c", "main")}
    for model in ("Fineoffset-WN34", "Fineoffset-WN34D"):
        p = _packet(line % model)
        assert p.readings == {("soil_temperature_c", "main"): 18.4}
        assert p.battery_v == pytest.approx(1.58) and p.node == f"{model}:2965"
    # Other models' temperature_C stays an air temperature.
    assert _packet(line % "Fineoffset-WH31").readings == {("temperature_c", "main"): 18.4}


def test_registry_ids_match_without_regard_to_case() -> None:
    """The config keeps ids lower-case; the decoder looks up the event's id lower-cased."""
    from gateway.config.models import Settings

    line = b'{"model":"Fineoffset-WH51","id":"006b58","battery_mV":1400,"moisture":36}'
    for ident in ("rtl433:Fineoffset-WH51/006b58", "rtl433:Fineoffset-WH51/006B58",
                  "rtl433:fineoffset-wh51/006b58", "rtl433:FINEOFFSET-WH51/006B58"):
        ids = Settings(site="s", devices={"bed-wh51": {"ids": [ident]}}).external_ids
        got = decode_rtl433_line(line, ids={**ids, "lorawan:0101010101010101": "x"})
        assert isinstance(got, Packet) and got.node == "bed-wh51", ident
    # With a channel; a registry built by hand in the event's own spelling.
    wh31 = b'{"model":"AmbientWeather-WH31E","id":195,"channel":1,"temperature_C":12.2}'
    got = decode_rtl433_line(wh31, ids={"rtl433:ambientweather-wh31e/195/1": "ch1"})
    assert isinstance(got, Packet) and got.node == "ch1"
    got = decode_rtl433_line(line, ids={"rtl433:Fineoffset-WH51/006b58": "exact"})
    assert isinstance(got, Packet) and got.node == "exact"
    # Not another device's id, nor another scheme's.
    got = decode_rtl433_line(line, ids={"rtl433:fineoffset-wh51/006b59": "no",
                                        "ecowitt:fineoffset-wh51/006b58": "no"})
    assert isinstance(got, Packet) and got.node == "Fineoffset-WH51:006b58"


def test_zoned_and_unix_times_are_node_times_and_local_wall_clock_is_not() -> None:
    base = '{"model": "Acurite-Tower", "id": 1, "temperature_C": 20.5, "time": "%s"}'
    assert _packet(base % "2026-07-01T04:10:00Z").node_time_ns == 1782879000 * 10**9
    assert _packet(base % "2026-07-01T13:10:00+09:00").node_time_ns == 1782879000 * 10**9
    assert _packet(base % "1782879000").node_time_ns == 1782879000 * 10**9
    local = _packet(base % "2026-07-01 13:10:00")
    assert local.node_time_ns is None and local.unknown_fields == ("time",)


def test_unit_conversions_and_fields_kept_out_on_purpose() -> None:
    p = _packet('{"model": "X", "id": 7, "temperature_F": 212, "pressure_kPa": 101.3, '
                '"wind_avg_km_h": 36, "rssi": -0.1, "snr": 12.5, "rain_in": 2.5, '
                '"rain_rate_in_h": 0.5, "battery": "OK", "mic": "CRC"}')
    assert p.readings[("temperature_c", "main")] == pytest.approx(100.0)
    assert p.readings[("pressure_hpa", "main")] == pytest.approx(1013.0)
    assert p.readings[("wind_speed_ms", "main")] == pytest.approx(10.0)
    assert p.readings[("rain_total_mm", "main")] == 63.5  # a running total, in mm
    assert p.readings[("rain_rate_mm_h", "main")] == pytest.approx(12.7)
    assert (p.snr_db, p.rssi_dbm) == (12.5, None)
    assert p.unknown_fields == ("rssi", "battery")


@pytest.mark.parametrize(("line", "reason"), [
    (b"", reasons.BAD_JSON),
    (b"{not json", reasons.BAD_JSON),
    (b"\xff\xfe", reasons.BAD_JSON),
    (b'{"model": "X", "id": 1, "temperature_C": NaN}', reasons.BAD_JSON),
    (b"[1, 2]", reasons.SCHEMA),
    (b'{"id": 1, "temperature_C": 3}', reasons.SCHEMA),  # no model
    (b'{"model": "X", "temperature_C": 3}', reasons.SCHEMA),  # no id
    (b'{"model": "X Y", "id": 1}', reasons.SCHEMA),  # not a node name
    (b'{"model": "X", "id": true}', reasons.SCHEMA),
    (b'{"model": "X", "id": 1, "temperature_C": "3"}', reasons.SCHEMA),
    (b'{"model": "X", "id": 1, "temperature_C": 3, "temperature_F": 40}', reasons.SCHEMA),
    (b'{"model": "X", "id": 1, "pad": "' + b"a" * 9000 + b'"}', reasons.BAD_LENGTH),
    (b'{"model": "X", "id": 1, "temperature_C": 1' + b"0" * 400 + b"}", reasons.SCHEMA),
    (b'{"model": "X", "id": 1, "temperature_F": -1' + b"0" * 400 + b"}", reasons.SCHEMA),
])
def test_refusals(line: bytes, reason: str) -> None:
    result = decode_rtl433_line(line)
    assert isinstance(result, Rejection), result
    assert (result.reason, result.format) == (reason, "rtl433")
    assert result.raw == line.strip()


json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**308)
                | st.floats(allow_nan=False) | st.text(max_size=8))
json_values = st.one_of(
    json_scalars,
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=6), json_scalars, max_size=3),
)
events = st.dictionaries(
    st.sampled_from(["model", "id", "channel", "time", "temperature_C", "humidity", "moisture",
                     "battery_mV", "battery_ok", "rain_mm", "snr", "house_id", "x"]),
    json_values, max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | events.map(lambda e: json.dumps(e).encode()))
def test_arbitrary_input_never_raises(line: bytes) -> None:
    result = decode_rtl433_line(line)
    assert isinstance(result, Packet | Rejection)
    if isinstance(result, Rejection):
        assert result.reason in reasons.REASONS
