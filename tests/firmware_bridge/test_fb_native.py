"""Native JSON decoder: table-driven from cases/native/*.json (a new case needs no code)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from unittest.mock import patch

import hypothesis
import pytest
from hypothesis import strategies as st

from firmware_bridge import native
from firmware_bridge.native import decode_native, encode_native, format_timestamp
from gateway.packet import Packet, Rejection, split_key

CASES = sorted((Path(__file__).parent / "cases" / "native").glob("*.json"))


def _line(case: dict[str, Any]) -> str:
    value = case["input"]
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def test_cases_exist() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_native_case(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    assert ("reason" in case) != ("expect" in case), "a case has either reason or expect"
    line = _line(case)
    for given in (line, line.encode("utf-8")):
        result = decode_native(given, default_site=case.get("default_site"))
        if "reason" in case:
            assert isinstance(result, Rejection), result
            assert result.reason == case["reason"], result.detail
            assert result.format == "native"
            assert result.raw == line.encode("utf-8").strip()
            for hint in ("node", "seq"):
                if hint in case:
                    assert getattr(result, hint) == case[hint]
            continue
        assert isinstance(result, Packet), result
        assert result.format == "native"
        assert result.raw == line.encode("utf-8").strip()
        expect = case["expect"]
        for name, value in expect.items():
            if name == "readings":
                assert result.readings == {split_key(k): v for k, v in value.items()}
            elif name == "unknown_fields":
                assert list(result.unknown_fields) == value
            else:
                assert getattr(result, name) == value, name


def test_encode_native_round_trip() -> None:
    readings = {("temperature_c", "main"): 24.1, ("soil_moisture_pct", "soil_10cm"): 28.4,
                ("soil_ec_ms_cm", "ch2"): 1.25}
    line = encode_native("n17", 4211, readings, ts_ns=1782879000_000000001, site="s1",
                         battery_v=3.62, rssi_dbm=-97, snr_db=6.5)
    assert b"soil_moisture_pct@10cm" in line and b"\n" not in line
    packet = decode_native(line)
    assert isinstance(packet, Packet)
    assert packet.readings == readings
    assert (packet.node, packet.seq, packet.site) == ("n17", 4211, "s1")
    assert packet.node_time_ns == 1782879000_000000001
    assert (packet.battery_v, packet.rssi_dbm, packet.snr_db) == (3.62, -97, 6.5)


def test_encode_native_refuses_nan() -> None:
    with pytest.raises(ValueError):
        encode_native("n1", 1, {("temperature_c", "main"): math.nan})


def test_format_timestamp() -> None:
    assert format_timestamp(1782879000_000000000) == "2026-07-01T04:10:00Z"
    assert format_timestamp(1782879000_120000000) == "2026-07-01T04:10:00.12Z"


def test_invalid_utf8_and_deep_nesting_are_bad_json() -> None:
    assert isinstance(r := decode_native(b'{"node":"\xff"}'), Rejection)
    assert r.reason == "bad_json"
    assert isinstance(r := decode_native("[" * 100_000), Rejection)
    assert r.reason in ("bad_json", "bad_length")


def test_overlong_line_is_bad_length() -> None:
    r = decode_native(b'{"node":"n1","readings":{}' + b" " * 70_000 + b"}")
    assert isinstance(r, Rejection) and r.reason == "bad_length"


# --- the msgspec path decides exactly as json and the pydantic model do -------------------

_names = st.sampled_from(["n1", "n17", "farm-a.b:c_1", "", "-n1", "n1\n", "n 1", "é", "x" * 64,
                          "x" * 65])
_numbers = (st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
            | st.sampled_from([0, -1, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, 2**63,
                               1_782_879_000, 1_782_879_000_000_000_000, 1.5, -0.0]))
_values = (st.none() | st.booleans() | _numbers | _names | st.text(max_size=6)
           | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3),
                                                                   st.integers(), max_size=2))
_reading_keys = st.sampled_from(["temperature_c", "temp", "humidity_pct", "rh", "battery_v",
                                 "bat", "rssi", "soil_moisture_pct@10cm", "moisture@10cm",
                                 "dew_point_c", "moon", "temperature_c@ch2", "snr_db"])
_bodies = st.fixed_dictionaries(
    {},
    optional={
        "node": _names | _values, "seq": _numbers | _values,
        "ts": _numbers | _values | st.sampled_from(["2026-07-01T04:10:00Z", "2026-07-01T04:10"]),
        "site": _names | _values, "battery_v": _numbers | _values, "rssi_dbm": _numbers,
        "snr_db": _values, "extra": _values,
        "readings": st.dictionaries(_reading_keys | st.text(max_size=5), _numbers | _values,
                                    max_size=5) | _values,
    },
)


def _outcome(result: Packet | Rejection) -> tuple[object, ...]:
    if isinstance(result, Rejection):
        return ("rejection", result.reason, result.detail, result.node, result.seq, result.raw)
    return ("packet", result.node, result.seq, result.node_time_ns, result.site,
            list(result.readings.items()), result.battery_v, result.rssi_dbm, result.snr_db,
            result.unknown_fields, result.raw,
            [type(v) for v in result.readings.values()], type(result.battery_v))


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(_bodies)
@hypothesis.example({"node": "n1\n", "readings": {"temperature_c": 1.0}})
@hypothesis.example({"node": "n1", "site": "s\n", "readings": {"temperature_c": 1.0}})
@hypothesis.example({"node": "n1", "seq": 2**63, "readings": {"temperature_c": 1.0}})
@hypothesis.example({"node": "n1", "seq": True, "readings": {"temperature_c": 1.0}})
@hypothesis.example({"node": "n1", "readings": {"temperature_c": True}})
@hypothesis.example({"node": "n1", "readings": {"temperature_c": 2**1030}})
@hypothesis.example({"node": "n1", "readings": {"temperature_c": 2**53 + 1}, "rssi_dbm": -90})
@hypothesis.example({"node": "n1", "readings": None})
@hypothesis.example({"node": "n1", "ts": 1_782_879_000_000, "readings": {"bat": 3.1},
                     "battery_v": 3.0})
def test_fast_path_matches_the_model(body: dict[str, Any]) -> None:
    for ascii_only in (True, False):  # escapes, and UTF-8 as it is
        try:
            line = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        except ValueError:
            return
        _assert_both_paths_agree(line)


def _assert_both_paths_agree(line: bytes) -> None:
    fast = decode_native(line, default_site="s")
    with patch.object(native, "_common_uplink", lambda raw: None):
        model = decode_native(line, default_site="s")
    assert _outcome(fast) == _outcome(model)


@pytest.mark.parametrize("line", [
    b'{"node":"a","node":"n1","readings":{"temperature_c":1}}',  # json: the last key wins
    b'{"node":"n1","readings":{"temperature_c":1,"temperature_c":2.5}}',
    b'{"node":"n1","readings":{"temperature_c":1e400}}',  # inf: a sensor fault, later
    b'{"node":"n1","readings":{"temperature_c":NaN}}',
    b'{"node":"n1","readings":{"temperature_c":-0.0,"humidity_pct":5e-324}}',
    b'{"node":"n1","seq":1.0,"readings":{"temperature_c":1}}',
    b'{"node":"n1","seq":123456789012345678901234567890,"readings":{"temperature_c":1}}',
    b'{"node":"n1","readings":{"temperature_c":9007199254740993}}',
    rb'{"node":"\ud800","readings":{"temperature_c":1}}',
    rb'{"node":"n1","readings":{"temperature_c@\udfff":1}}',
    b'\xef\xbb\xbf{"node":"n1","readings":{"temperature_c":1}}',  # a byte order mark
    b'{"node":"n1","readings":{"temperature_c":1}} x',
    b'{"node":"n1","readings":{"temperature_c":1}}  ',
    b'{"node":"n\xc3\xa9","readings":{"temperature_c":1}}',
    b'{"node":"n1","readings":{"temperature_c":"1"}}',
    b'{"node":"n1","readings":null}',
    b'{"node":"n1","ts":"2026-07-01T04:10:00+09:00","readings":{"rh":40}}',
    b'{"node":"n1","ts":1782879000.5,"readings":{"bat":3.1}}',
    b'[1,2]',
])
def test_bodies_msgspec_refuses_or_reads_alike_decode_as_json_does(line: bytes) -> None:
    """Where msgspec and ``json`` differ (surrogates, NaN, huge numbers, a byte order mark),
    msgspec refuses and ``json`` decides, so the outcome is the same either way."""
    _assert_both_paths_agree(line)
