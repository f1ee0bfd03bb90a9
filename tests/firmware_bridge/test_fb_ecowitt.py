"""Ecowitt upload bodies against the third-party corpus, with hand-checked values.

The corpus (../shared/corpus/ecowitt, see its README) holds ecowitt2mqtt's fixture bodies
(JSON, MIT), the form bodies derived from them, and three request bodies captured by
aioecowitt (Apache-2.0); a clone without that folder skips those cases. The GW1100B body is
also in tests/firmware_bridge/cases/ecowitt (with its licence notice), so the main case
runs everywhere.

Expected values are worked out by hand from the body: °C = (°F - 32) × 5/9, hPa = inHg ×
33.8638866667, m/s = mph × 0.44704.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import reasons
from firmware_bridge.ecowitt import decode_ecowitt, default_node, registry_names
from gateway.packet import Packet, Rejection

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "ecowitt"
NO_CORPUS = pytest.mark.skipif(not CORPUS.exists(), reason=f"Ecowitt corpus not at {CORPUS}")
CASES = Path(__file__).parent / "cases" / "ecowitt"
STATION = "ecowitt-xxxxxxxxxxxx"  # the fixtures' PASSKEY is 32 x's
T_GW1100B = 1629760421 * 10**9  # dateutc=2021-08-23 23:13:41


def _decode(body: bytes, **kw: object) -> dict[str, Packet]:
    items = decode_ecowitt(body, **kw)  # type: ignore[arg-type]
    rejections = [i for i in items if isinstance(i, Rejection)]
    assert not rejections, rejections
    packets = {i.node: i for i in items if isinstance(i, Packet)}
    assert len(packets) == len(items), "two packets for one node"
    return packets


def _form(name: str) -> bytes:
    return (CORPUS / "form_bodies_derived" / f"payload_{name}.form.txt").read_bytes()


def test_gw1100b_every_node_and_value() -> None:
    packets = _decode((CASES / "gw1100b.form.txt").read_bytes(), default_site="farm")
    soil = {("soil_moisture_pct", "main")}
    assert {n: (p.readings, p.battery_v) for n, p in packets.items()} == {
        STATION: ({("temperature_c", "indoor"): 24.72,  # tempinf 76.5 °F
                   ("humidity_pct", "indoor"): 46.0,
                   ("pressure_hpa", "main"): 990.32,  # baromabsin 29.244 inHg
                   ("temperature_c", "main"): 33.0,  # tempf 91.4 °F
                   ("humidity_pct", "main"): 48.0,
                   ("rain_total_mm", "main"): 1232.0016,  # totalrainin 48.504 in
                   ("rain_rate_mm_h", "main"): 0.0}, None),  # rainratein 0.000 in/h
        f"{STATION}-ch1": ({("temperature_c", "main"): 25.39,  # temp1f 77.7 °F
                            ("humidity_pct", "main"): 51.0}, None),  # batt1=1 is a flag
        f"{STATION}-soil1": (dict.fromkeys(soil, 40.0), 1.5),
        f"{STATION}-soil2": (dict.fromkeys(soil, 56.0), 1.8),
        **{f"{STATION}-tf{ch}": ({("soil_temperature_c", "main"): c}, v) for ch, c, v in (
            (1, 29.28, 1.6), (2, 28.28, 1.47), (3, 28.89, 1.6), (4, 29.0, 1.6),  # 84.7 82.9..
            (5, 29.5, 1.2), (6, 29.0, 1.77), (7, 29.06, 1.6), (8, 29.0, 1.3))},
    }
    for p in packets.values():
        assert p.node_time_ns == T_GW1100B
        assert p.site == "farm" and p.seq is None and p.format == "ecowitt"
        assert p.raw == (CASES / "gw1100b.form.txt").read_bytes()
    # Rain totals other than the one kept, sea-level pressure and battery flags are not
    # readings.
    assert set(packets[STATION].unknown_fields) == {
        "baromrelin", "eventrainin", "hourlyrainin", "dailyrainin", "weeklyrainin",
        "monthlyrainin", "yearlyrainin", "wh40batt", "wh26batt", "batt1"}


@NO_CORPUS
def test_every_corpus_body_decodes_and_matches_its_json_fixture() -> None:
    forms = sorted((CORPUS / "form_bodies_derived").glob("*.form.txt"))
    assert len(forms) == 15
    refused = []
    for form in forms:
        name = form.name.removesuffix(".form.txt")
        fields = json.loads((CORPUS / "ecowitt2mqtt_fixtures" / f"{name}.json").read_text())
        from_json = decode_ecowitt(urlencode(fields).encode())
        from_form = decode_ecowitt(form.read_bytes())
        assert [(i.node, getattr(i, "readings", None)) for i in from_json] == \
            [(i.node, getattr(i, "readings", None)) for i in from_form]
        refused += [(name, i.reason) for i in from_form if isinstance(i, Rejection)]
        assert from_form
    # The Wunderground-protocol body (ID/PASSWORD) is the one that is no Ecowitt upload;
    # the "metric" one has its unit-bearing fields refused (below).
    assert refused == [("payload_gw1000bpro_metric", reasons.UNIT_MISMATCH),
                       ("payload_wunderground", reasons.SCHEMA)]


@NO_CORPUS
def test_ecowitt2mqtt_metric_fixture_is_refused_not_converted_twice() -> None:
    # ecowitt2mqtt's fixture for its input_unit_system=metric option: the GW1000B body with
    # metric numbers under the protocol's imperial names (tempinf=26.4 is the imperial
    # fixture's 79.52 °F, baromabsin=837.793 its 24.740 inHg, yearlyrainin=112.8 mm its
    # 4.441 in). Read as imperial, that was -3.11 °C indoors, 2865 mm of rain, 14.5 m/s.
    items = decode_ecowitt(_form("gw1000bpro_metric"))
    (refused,) = [i for i in items if isinstance(i, Rejection)]
    assert (refused.reason, refused.node) == (reasons.UNIT_MISMATCH, STATION)
    assert refused.detail.startswith("baromabsin=837.793 is no pressure in inHg")
    assert refused.detail.endswith("not stored: tempinf, baromabsin, tempf, windspeedmph, "
                                   "rainratein, yearlyrainin")
    (station,) = [i for i in items if isinstance(i, Packet)]
    assert station.readings == {("humidity_pct", "indoor"): 31.0,
                                ("humidity_pct", "main"): 74.0,
                                ("solar_radiation_wm2", "main"): 264.61}


@NO_CORPUS
def test_gw2000a_2_five_soil_probes_and_eight_wh31_channels() -> None:
    packets = _decode(_form("gw2000a_2"))
    soil = {n: (p.readings[("soil_moisture_pct", "main")], p.battery_v)
            for n, p in packets.items() if "-soil" in n}
    assert soil == {f"{STATION}-soil1": (53.0, 1.4), f"{STATION}-soil2": (57.0, 1.3),
                    f"{STATION}-soil3": (59.0, 1.3), f"{STATION}-soil4": (49.0, 1.3),
                    f"{STATION}-soil5": (52.0, 1.3)}
    channels = {n: p.readings for n, p in packets.items() if re.search(r"-ch\d$", n)}
    # temp1f..8f 71.2 71.2 70.5 73.0 70.7 72.7 67.1 68.0; humidity1..8 61 58 61 58 69 58 54 56
    temps = (21.78, 21.78, 21.39, 22.78, 21.5, 22.61, 19.5, 20.0)
    hums = (61, 58, 61, 58, 69, 58, 54, 56)
    assert channels == {
        f"{STATION}-ch{i + 1}": {("temperature_c", "main"): t, ("humidity_pct", "main"): h}
        for i, (t, h) in enumerate(zip(temps, hums, strict=True))}
    assert all(packets[n].battery_v is None for n in channels)  # batt1..8 are 0/1 flags
    station = packets[STATION].readings
    assert station[("wind_speed_ms", "main")] == 1.001  # 2.24 mph
    assert station[("pressure_hpa", "main")] == 999.29  # baromabsin 29.509 inHg
    assert station[("temperature_c", "main")] == 15.39  # 59.7 °F
    assert packets[STATION].battery_v is None  # wh80batt, wh90batt: other devices
    # No totalrainin / train_piezo from this firmware: the yearly totals, the WS90's piezo
    # gauge as its own sensor.
    assert station[("rain_total_mm", "main")] == 99.2886  # yearlyrainin 3.909 in
    assert station[("rain_total_mm", "piezo")] == 104.4956  # yrain_piezo 4.114 in
    assert station[("rain_rate_mm_h", "piezo")] == 0.0  # rrain_piezo
    unknown = set(packets[STATION].unknown_fields)
    assert {"erain_piezo", "drain_piezo", "mrain_piezo", "monthlyrainin"} <= unknown
    assert not {"yearlyrainin", "yrain_piezo", "rainratein", "rrain_piezo"} & unknown
    assert len(packets) == 1 + 8 + 5


@NO_CORPUS
def test_hp2550_soil_probe_and_gw2000a_leaf_wetness() -> None:
    packets = _decode(_form("pthp2550pro"))
    assert packets[f"{STATION}-soil1"].readings == {("soil_moisture_pct", "main"): 22.0}
    assert packets[f"{STATION}-soil1"].battery_v == 1.5
    assert packets[STATION].readings[("solar_radiation_wm2", "main")] == 174.81
    packets = _decode(_form("gw2000a_1"))
    assert packets[f"{STATION}-leaf1"].readings == {("leaf_wetness_pct", "main"): 14.0}
    assert packets[f"{STATION}-leaf1"].battery_v == 1.78


@NO_CORPUS
def test_aioecowitt_captured_bodies() -> None:
    text = (CORPUS / "aioecowitt" / "misc_example.data").read_text()
    bodies = [urlencode(re.findall(r"'([^']*)': '([^']*)'", m))
              for m in re.findall(r"MultiDict(?:Proxy)?\((.*?)\)>", text)]
    assert len(bodies) == 3
    hp3500 = _decode(bodies[0].encode())
    assert list(hp3500) == ["ecowitt-34271334ed1f"]  # PASSKEY 34271334ED1FADA6...
    r = hp3500["ecowitt-34271334ed1f"].readings
    assert r[("temperature_c", "main")] == 21.28  # 70.3 °F
    assert r[("pressure_hpa", "main")] == 967.93  # 28.583 inHg
    assert r[("wind_speed_ms", "main")] == 0.179  # 0.4 mph
    assert hp3500["ecowitt-34271334ed1f"].node_time_ns == 1588602866 * 10**9  # 2020-05-04 14:34:26
    assert list(_decode(bodies[1].encode())) == ["ecowitt-345544d8eaf4"]
    # The WN1980B body was printed after the library took PASSKEY out: no station id.
    (refused,) = decode_ecowitt(bodies[2].encode())
    assert isinstance(refused, Rejection) and refused.reason == reasons.SCHEMA
    assert "no PASSKEY or MAC" in refused.detail


def test_registry_names_the_nodes_without_regard_to_case() -> None:
    body = b"PASSKEY=AB12CD&dateutc=2026-11-23+05:00:00&tempf=50&soilmoisture3=30&soilbatt3=1.6"
    names = registry_names({"ecowitt:ab12cd/soil3": "terrace-3", "ecowitt:AB12CD": "station",
                            "rtl433:Fineoffset-WH51/0d2f1a": "other"})
    packets = _decode(body, names=names)
    assert set(packets) == {"terrace-3", "station"}
    assert packets["terrace-3"].battery_v == 1.6
    assert packets["station"].readings == {("temperature_c", "main"): 10.0}
    # MAC as the station id; default names keep letters and digits only.
    assert set(_decode(b"MAC=AA:BB:CC:DD:EE:FF&tempf=32")) == {"ecowitt-aabbccddeeff"}
    assert default_node("!!", None) is None


def test_allow_list() -> None:
    body = b"PASSKEY=AB12CD&tempf=50"
    assert set(_decode(body, stations=frozenset({"ab12cd"}))) == {"ecowitt-ab12cd"}
    (refused,) = decode_ecowitt(body, stations=frozenset({"other"}))
    assert isinstance(refused, Rejection) and refused.reason == reasons.UNKNOWN_STATION
    assert refused.raw == body


def test_time() -> None:
    def node_time(dateutc: str) -> int | None:
        (p,) = decode_ecowitt(b"PASSKEY=k&tempf=50&" + urlencode({"dateutc": dateutc}).encode())
        assert isinstance(p, Packet), p
        return p.node_time_ns

    assert node_time("2026-01-02 03:04:05") == 1767323045 * 10**9
    assert node_time("2026-01-02T03:04:05") == 1767323045 * 10**9
    assert node_time("now") is None  # Wunderground style: the gateway's receive time
    (p,) = decode_ecowitt(b"PASSKEY=k&tempf=50")
    assert isinstance(p, Packet) and p.node_time_ns is None
    for bad in ("2026-02-30 00:00:00", "yesterday", "0000-01-01 00:00:00", ""):
        (r,) = decode_ecowitt(b"PASSKEY=k&tempf=50&" + urlencode({"dateutc": bad}).encode())
        assert isinstance(r, Rejection) and r.reason == reasons.SCHEMA, bad


@pytest.mark.parametrize(("body", "reason", "detail"), [
    (b"", reasons.BAD_FORM, "empty body"),
    (b"PASSKEY=k&tempf=50&tempf=51", reasons.BAD_FORM, "'tempf' given twice"),
    (b"PASSKEY=k&tempf=50&junk", reasons.BAD_FORM, "bad query field"),
    (b"PASSKEY=k&tempf=\xff", reasons.BAD_FORM, "utf-8"),
    (b"PASSKEY=k&tempf=%ff", reasons.BAD_FORM, "utf-8"),
    (b"PASSKEY=k&" + b"a=1&" * 20000, reasons.BAD_FORM, "> 16384"),
    (b"ID=MCKEAN&PASSWORD=1909&tempf=89.42", reasons.SCHEMA, "protocol to Ecowitt"),
    (b"tempf=89.42", reasons.SCHEMA, "not an Ecowitt upload"),
    (b"PASSKEY=k&winddir=100&uv=2", reasons.SCHEMA, "unknown: winddir, uv"),
    (b"PASSKEY=***&tempf=50", reasons.SCHEMA, "no letters or digits"),
])
def test_refusals(body: bytes, reason: str, detail: str) -> None:
    (r,) = decode_ecowitt(body)
    assert isinstance(r, Rejection), r
    assert (r.reason, r.raw, r.format) == (reason, body, "ecowitt")
    assert detail.lower() in r.detail.lower()


def test_metric_values_under_imperial_names_keep_only_the_unit_free_fields() -> None:
    body = (b"PASSKEY=k&tempinf=22.5&humidityin=40&baromrelin=1013.2&baromabsin=1003.1"
            b"&tempf=18.0&humidity=60&windspeedmph=7.2&solarradiation=300.5&yearlyrainin=120.4"
            b"&soilmoisture1=31&soilbatt1=1.4&temp1f=17.5&humidity1=58&tf_ch1=15.0"
            b"&tf_batt1=1.5&yrain_piezo=80.0&rrain_piezo=0.0")
    items = decode_ecowitt(body)
    (refused,) = [i for i in items if isinstance(i, Rejection)]
    assert (refused.reason, refused.node, refused.raw) == (
        reasons.UNIT_MISMATCH, "ecowitt-k", body)
    # Every field whose name names (or implies: tf_chN, *_piezo) an imperial unit.
    assert refused.detail.split("not stored: ")[1].split(", ") == [
        "tempinf", "baromabsin", "tempf", "windspeedmph", "yearlyrainin", "temp1f", "tf_ch1",
        "yrain_piezo", "rrain_piezo"]
    packets = {i.node: (i.readings, i.battery_v) for i in items if isinstance(i, Packet)}
    assert packets == {
        "ecowitt-k": ({("humidity_pct", "indoor"): 40.0, ("humidity_pct", "main"): 60.0,
                       ("solar_radiation_wm2", "main"): 300.5}, None),
        "ecowitt-k-soil1": ({("soil_moisture_pct", "main"): 31.0}, 1.4),
        "ecowitt-k-ch1": ({("humidity_pct", "main"): 58.0}, None),
        "ecowitt-k-tf1": ({}, 1.5),
    }
    # baromrelin alone tells it too; a body with only unit-bearing fields has no packet.
    (only,) = decode_ecowitt(b"PASSKEY=k&baromrelin=1013.2&tempf=18.0")
    assert isinstance(only, Rejection) and only.reason == reasons.UNIT_MISMATCH
    assert only.detail.startswith("baromrelin=1013.2 is no pressure in inHg")
    # Pressures that can be inHg (the highest station pressure is 32.5 inHg), a broken
    # sensor's 0 among them, are no sign of other units: the validation judges them.
    for pressure in (b"32.48", b"0", b"14.0"):
        (p,) = decode_ecowitt(b"PASSKEY=k&tempf=50&baromabsin=" + pressure)
        assert isinstance(p, Packet) and p.readings[("temperature_c", "main")] == 10.0


def test_metric_names_are_not_protocol_fields_and_not_read_as_fahrenheit() -> None:
    # tempc, temp1c, tempinc are aioecowitt's conversions of tempf, temp1f, tempinf, never
    # posted by a gateway: like any unknown field they are listed, not stored or converted.
    (p,) = decode_ecowitt(b"PASSKEY=k&tempc=21.5&temp1c=20.0&tempinc=22.0&humidity=50")
    assert isinstance(p, Packet)
    assert p.readings == {("humidity_pct", "main"): 50.0}
    assert p.unknown_fields == ("tempc", "temp1c", "tempinc")


def test_max_body_is_the_callers() -> None:
    body = b"PASSKEY=k&tempf=50&x=" + b"1" * (20000 - 21)
    assert len(body) == 20000
    (refused,) = decode_ecowitt(body)  # the default, MAX_BODY
    assert isinstance(refused, Rejection) and refused.detail == "body of 20000 bytes > 16384"
    assert isinstance(decode_ecowitt(body, max_body=20000)[0], Packet)
    (refused,) = decode_ecowitt(body, max_body=19999)
    assert isinstance(refused, Rejection) and refused.reason == reasons.BAD_FORM


def test_a_value_that_is_no_number_is_refused_alone() -> None:
    items = decode_ecowitt(b"PASSKEY=k&tempf=abc&humidity=50&soilmoisture1=nan&soilbatt1=1.5")
    rejections = [i for i in items if isinstance(i, Rejection)]
    assert [(r.reason, r.node) for r in rejections] == [
        (reasons.SCHEMA, "ecowitt-k"), (reasons.SCHEMA, "ecowitt-k-soil1")]
    packets = {i.node: i for i in items if isinstance(i, Packet)}
    assert packets["ecowitt-k"].readings == {("humidity_pct", "main"): 50.0}
    assert packets["ecowitt-k-soil1"].readings == {} and packets["ecowitt-k-soil1"].battery_v == 1.5


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(body: bytes) -> None:
    for item in decode_ecowitt(body):
        assert isinstance(item, Packet | Rejection)


_KEYS = st.sampled_from(["PASSKEY", "MAC", "dateutc", "tempf", "humidity", "tempinf",
                         "baromabsin", "windspeedmph", "soilmoisture1", "soilbatt1",
                         "temp2f", "humidity2", "tf_ch9", "tf_batt9", "leafwetness_ch1",
                         "leaf_batt1", "soilmoisture99", "x"]) | st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, st.text(max_size=24) | st.floats().map(str), max_size=12))
def test_arbitrary_forms_never_raise(fields: dict[str, str]) -> None:
    items = decode_ecowitt(urlencode(fields).encode())
    assert items
    for item in items:
        assert isinstance(item, Packet | Rejection)
