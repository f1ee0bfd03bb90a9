"""Cayenne LPP decoder against third-party vectors, plus its catalogue mapping and refusals.

Every case of ../shared/corpus/cayenne_lpp/cayenne_lpp_vectors.json (transcribed from
TheThingsNetwork/go-cayenne-lib and smlng/pycayennelpp, cross-decoded with pycayennelpp
2.4.0) is checked; a clone without that folder skips them. Deliberate disagreement: the
go-cayenne-lib *downlink* vectors (channel + 2-byte value, no type byte) are TTN's downlink
layout, not an uplink, and this uplink decoder refuses them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import reasons
from firmware_bridge.cayenne_lpp import (
    MAX_PAYLOAD,
    TYPES,
    LppItem,
    decode_lpp,
    decode_lpp_hex_line,
    parse_lpp,
)
from gateway.packet import Packet, Rejection

CORPUS = (Path(__file__).resolve().parents[3] / "shared" / "corpus" / "cayenne_lpp"
          / "cayenne_lpp_vectors.json")
GO_ERRORS = {"ErrInvalidChannelType": reasons.UNKNOWN_READING_TYPE,
             "io.ErrUnexpectedEOF": reasons.TRUNCATED}


def _cases() -> list[Any]:
    if not CORPUS.exists():
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"Cayenne LPP corpus not present at {CORPUS}"))]
    cases = json.loads(CORPUS.read_text())["cases"]
    return [pytest.param(c, id=c["id"]) for c in cases]


def _values(value: Any) -> list[float]:
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]


def _assert_items(items: list[LppItem], expected: list[dict[str, Any]]) -> None:
    assert [(i.channel, i.type.type_id) for i in items] == \
        [(e["channel"], e["type_id"]) for e in expected]
    for item, e in zip(items, expected, strict=True):
        assert list(item.values) == pytest.approx(_values(e["value"]), abs=1e-9), e


@pytest.mark.parametrize("case", _cases())
def test_corpus_vector(case: dict[str, Any]) -> None:
    downlink = case["direction"].startswith("downlink")
    if "expected_hex" in case:  # an encoder vector: decoding it must give the input back
        result = parse_lpp(bytes.fromhex(case["expected_hex"]))
        if downlink:
            assert isinstance(result, Rejection), "TTN downlink layout is not an uplink"
            return
        assert isinstance(result, list) and len(result) == 1
        (item,) = result
        resolutions = [r for _, r, _ in item.type.axes]
        # The encoders round (or truncate) to the type's resolution.
        for got, want, res in zip(item.values, _values(case["input_value"]), resolutions,
                                  strict=True):
            assert abs(got - want) <= res + 1e-9, (got, want, res)
        return
    payload = bytes.fromhex(case["hex"])
    if "base64" in case:
        assert base64.b64decode(case["base64"]) == payload
    result = parse_lpp(payload)
    if "expected_error" in case:
        assert isinstance(result, Rejection)
        assert result.reason == GO_ERRORS[case["expected_error"]], result
        return
    if downlink:
        assert isinstance(result, Rejection)
        assert result.reason == reasons.UNKNOWN_READING_TYPE
        return
    assert isinstance(result, list), result
    if "expected" in case:
        _assert_items(result, case["expected"])
    if "expected_item_count" in case:
        assert len(result) == case["expected_item_count"]
    _assert_items(result, case["decoded_by_pycayennelpp_2.4.0"])


def test_spec_example_maps_to_catalogue_with_channel_tags() -> None:
    packet = decode_lpp(bytes.fromhex("03670110056700ff"), "lpp-node", seq=7)
    assert isinstance(packet, Packet)
    assert packet.readings == {("temperature_c", "ch3"): 27.2, ("temperature_c", "ch5"): 25.5}
    assert (packet.node, packet.seq, packet.format) == ("lpp-node", 7, "lpp")
    assert packet.unknown_fields == ()


def test_mixed_uplink_keeps_catalogue_values_and_lists_the_rest() -> None:
    # go-cayenne-lib's 13-channel uplink (also in the corpus; repeated so that the mapping
    # is tested in a clone without the corpus).
    payload = bytes.fromhex(
        "0100ff0201640302154a0403eab6056501f40666320767ff640868a00971fe58000f06820a7329ef"
        "0b8601630231fe660c8807fd8700bef500086a0d8807fd87ff410c00086a")
    packet = decode_lpp(payload, "n1")
    assert isinstance(packet, Packet)
    assert packet.readings == {
        ("illuminance_lux", "ch5"): 500.0, ("temperature_c", "ch7"): -15.6,
        ("humidity_pct", "ch8"): 80.0, ("pressure_hpa", "ch10"): 1073.5,
    }
    assert packet.unknown_fields == (
        "ch1:digital_input", "ch2:digital_output", "ch3:analog_input", "ch4:analog_output",
        "ch6:presence", "ch9:accelerometer", "ch11:gyrometer", "ch12:gps", "ch13:gps")
    assert packet.raw == payload


@pytest.mark.parametrize(("hex_payload", "reason"), [
    ("", reasons.BAD_LENGTH),
    ("00" * (MAX_PAYLOAD + 1), reasons.BAD_LENGTH),
    ("01", reasons.TRUNCATED),  # channel, no type
    ("0167ff", reasons.TRUNCATED),  # temperature needs 2 bytes
    ("0188000000000000", reasons.TRUNCATED),  # GPS needs 9
    ("01670110" + "01670110", reasons.DUPLICATE_READING),
    ("0167011001ff", reasons.UNKNOWN_READING_TYPE),  # good reading, then an unknown type
])
def test_malformed_payloads_are_refused_with_a_reason(hex_payload: str, reason: str) -> None:
    result = decode_lpp(bytes.fromhex(hex_payload), "n9", seq=3)
    assert isinstance(result, Rejection)
    assert (result.reason, result.format, result.node, result.seq) == (reason, "lpp", "n9", 3)
    assert result.raw == bytes.fromhex(hex_payload)
    assert result.detail


def test_same_type_on_two_channels_and_two_types_on_one_channel_are_fine() -> None:
    packet = decode_lpp(bytes.fromhex("0167011002670110" + "01687f"), "n2")
    assert isinstance(packet, Packet)
    assert packet.readings == {("temperature_c", "ch1"): 27.2, ("temperature_c", "ch2"): 27.2,
                               ("humidity_pct", "ch1"): 63.5}


def test_every_type_in_the_table_decodes_at_its_size() -> None:
    for kind in TYPES.values():
        result = parse_lpp(bytes([4, kind.type_id]) + b"\x01" * kind.size)
        assert isinstance(result, list) and len(result) == 1, kind
        short = parse_lpp(bytes([4, kind.type_id]) + b"\x01" * (kind.size - 1))
        assert isinstance(short, Rejection) and short.reason == reasons.TRUNCATED, kind


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    result = decode_lpp(payload, "fuzz")
    assert isinstance(result, Packet | Rejection)
    if isinstance(result, Rejection):
        assert result.reason in reasons.REASONS


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.sampled_from(sorted(TYPES)),
                          st.binary(min_size=9, max_size=9)), max_size=10,
                unique_by=lambda t: (t[0], t[1])))
def test_well_formed_payloads_always_decode(items: list[tuple[int, int, bytes]]) -> None:
    payload = b"".join(bytes([ch, t]) + body[:TYPES[t].size] for ch, t, body in items)
    result = parse_lpp(payload)
    if not payload:
        assert isinstance(result, Rejection)
        return
    assert isinstance(result, list), result
    assert [(i.channel, i.type.type_id) for i in result] == [(c, t) for c, t, _ in items]


def test_lpp_hex_line_names_the_node_and_keeps_the_line_as_evidence() -> None:
    packet = decode_lpp_hex_line(b"  field-7 0167FFD7\r\n", default_site="hill")
    assert isinstance(packet, Packet)
    assert (packet.node, packet.site, packet.format) == ("field-7", "hill", "lpp-hex")
    assert packet.readings == {("temperature_c", "ch1"): -4.1}
    assert packet.raw == b"field-7 0167FFD7"


@pytest.mark.parametrize(("line", "reason"), [
    (b"0167ffd7", reasons.BAD_LPP_LINE),
    (b"n1 0167ffd7 extra", reasons.BAD_LPP_LINE),
    (b"-bad 0167ffd7", reasons.BAD_LPP_LINE),
    (b"n1 0167ffd", reasons.BAD_HEX),
    (b"n1 0167zzd7", reasons.BAD_HEX),
    (b"n1 \xff\xfe", reasons.BAD_HEX),
    (b"n1 0167ff", reasons.TRUNCATED),
])
def test_bad_lpp_hex_lines(line: bytes, reason: str) -> None:
    result = decode_lpp_hex_line(line)
    assert isinstance(result, Rejection)
    assert (result.reason, result.format, result.raw) == (reason, "lpp-hex", line)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_lines_never_raise(line: bytes) -> None:
    assert isinstance(decode_lpp_hex_line(line), Packet | Rejection)
