"""Binary frame: encode/decode round trips, boundaries and every rejection of decode_frame."""

from __future__ import annotations

import math

import pytest

from firmware_bridge import reasons
from firmware_bridge.frame import (
    FLAG_BOOT,
    decode_frame,
    encode_frame,
    is_boot,
    wrap_body,
)
from firmware_bridge.reading_types import BY_CODE, READING_TYPES, ReadingType
from gateway.catalogue import BY_NAME
from gateway.packet import Packet, Rejection


def _decode_ok(frame: bytes) -> Packet:
    result = decode_frame(frame)
    assert isinstance(result, Packet), result
    return result


def _reject(frame: bytes, reason: str) -> Rejection:
    result = decode_frame(frame)
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result.detail
    assert result.reason in reasons.REASONS
    return result


def test_type_table_is_consistent() -> None:
    assert len(BY_CODE) == len(READING_TYPES)
    for rt in READING_TYPES:
        assert rt.quantity in BY_NAME
        # the valid raw range covers the catalogue's plausible range, or most of it
        assert rt.min_value <= max(BY_NAME[rt.quantity].minimum, 0) or rt.kind == "int16"


def _boundaries(rt: ReadingType) -> list[float]:
    return [rt.min_value, rt.max_value, 0.0 if rt.min_raw <= 0 else rt.min_value,
            (rt.min_raw + 1) / rt.divisor, 1234 / rt.divisor]


@pytest.mark.parametrize("rt", READING_TYPES, ids=[t.quantity for t in READING_TYPES])
def test_round_trip_every_type_and_boundary(rt: ReadingType) -> None:
    for value in _boundaries(rt):
        if rt.quantity == "battery_v":
            packet = _decode_ok(encode_frame(1, 1, {}, battery_v=value))
            assert packet.battery_v == value
            assert packet.readings == {}
            continue
        for channel, tag in ((0, "main"), (10, "soil_10cm"), (250, "soil_250cm")):
            packet = _decode_ok(encode_frame(65535, 65535, [(rt.quantity, channel, value)]))
            assert packet.readings == {(rt.quantity, tag): value}
            assert packet.node == "n65535" and packet.seq == 65535


@pytest.mark.parametrize("rt", READING_TYPES, ids=[t.quantity for t in READING_TYPES])
def test_fault_sentinel_decodes_as_nan(rt: ReadingType) -> None:
    if rt.quantity == "battery_v":
        frame = encode_frame(1, 1, {("temperature_c", "main"): 20.0}, battery_v=math.nan)
        packet = _decode_ok(frame)
        assert packet.battery_v is not None and math.isnan(packet.battery_v)
        assert packet.readings == {("temperature_c", "main"): 20.0}
        return
    frame = encode_frame(1, 1, [(rt.quantity, 0, math.nan), ("humidity_pct", 30, 50.0)]
                         if rt.quantity != "humidity_pct" else [(rt.quantity, 0, math.nan)])
    raw_value = frame[10 : 10 + rt.size]
    assert raw_value == rt.codec.pack(rt.fault_raw)
    packet = _decode_ok(frame)
    assert math.isnan(packet.readings[(rt.quantity, "main")])
    if rt.quantity != "humidity_pct":
        assert packet.readings[("humidity_pct", "soil_30cm")] == 50.0


@pytest.mark.parametrize("rt", READING_TYPES, ids=[t.quantity for t in READING_TYPES])
def test_encoder_refuses_values_that_do_not_fit(rt: ReadingType) -> None:
    for value in (rt.max_value + 1 / rt.divisor, rt.min_value - 1 / rt.divisor):
        with pytest.raises(ValueError):
            encode_frame(1, 1, [(rt.quantity, 0, value)])


def test_full_frame_fields() -> None:
    readings = {("temperature_c", "main"): -12.34, ("soil_moisture_pct", "soil_10cm"): 28.4,
                ("soil_moisture_pct", "soil_30cm"): 31.07, ("illuminance_lux", "main"): 88000}
    frame = encode_frame(17, 70000, readings, battery_v=3.62, node_time_s=1782879000.9,
                         boot=True)
    packet = _decode_ok(frame)
    assert packet.node == "n17"
    assert packet.seq == 70000 % 65536  # seq wraps
    assert packet.readings == readings
    assert packet.battery_v == 3.62
    assert packet.node_time_ns == 1782879000 * 10**9
    assert packet.format == "frame" and packet.raw == frame
    assert packet.auth_tag is None and packet.signed is None
    assert is_boot(packet) and frame[3] & FLAG_BOOT
    assert not is_boot(_decode_ok(encode_frame(17, 1, {})))


def test_smallest_frame_and_known_vector() -> None:
    frame = encode_frame(3, 1, {})
    assert frame.hex() == "a55a051000030001" + frame[-2:].hex()
    assert len(frame) == 10
    packet = _decode_ok(frame)
    assert packet.readings == {} and packet.node_time_ns is None


def test_documented_example_vector() -> None:
    """The example in PROTOCOL.md, byte for byte."""
    frame = encode_frame(
        17, 4211,
        [("temperature_c", 0, 24.1), ("humidity_pct", 0, 71.0),
         ("soil_moisture_pct", 10, 28.4), ("soil_temperature_c", 10, 21.0)],
        battery_v=3.62, node_time_s=1782879000,
    )
    assert frame.hex(" ").upper() == (
        "A5 5A 1D 11 00 11 10 73 6A 44 93 18 01 00 09 6A 02 00 1B BC "
        "03 0A 0B 18 04 0A 08 34 20 00 0E 24 BE 70"
    )


def test_encoder_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        encode_frame(70000, 1, {})
    with pytest.raises(ValueError):
        encode_frame(1, -1, {})
    with pytest.raises(ValueError):
        encode_frame(1, 1, {("co2_ppm", "main"): 1.0})
    with pytest.raises(ValueError):
        encode_frame(1, 1, {("temperature_c", "ch2"): 1.0})
    with pytest.raises(ValueError):
        encode_frame(1, 1, [("temperature_c", 251, 1.0)])
    with pytest.raises(ValueError):
        encode_frame(1, 1, [("rain_mm", ch, 1.0) for ch in range(1, 70)])  # > 250 bytes
    with pytest.raises(ValueError):
        encode_frame(1, 1, {}, node_time_s=-1)


HEADER = bytes([0x10, 0x00, 0x01, 0x00, 0x02])  # version 1, no flags, node 1, seq 2


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", reasons.BAD_SYNC),
        (b"\xa5", reasons.BAD_SYNC),
        (b"\x5a\xa5\x05", reasons.BAD_SYNC),
        (b"\xa5\x5a", reasons.TRUNCATED),
        (b"\xa5\x5a\x04" + bytes(6), reasons.BAD_LENGTH),
        (b"\xa5\x5a\xfb" + bytes(256), reasons.BAD_LENGTH),
        (wrap_body(HEADER)[:-1], reasons.TRUNCATED),
        (wrap_body(HEADER) + b"\x00", reasons.BAD_LENGTH),
        (wrap_body(HEADER)[:-1] + b"\x00", reasons.BAD_CRC),
        (wrap_body(bytes([0x20]) + HEADER[1:]), reasons.UNSUPPORTED_VERSION),
        (wrap_body(bytes([0x00]) + HEADER[1:]), reasons.UNSUPPORTED_VERSION),
        (wrap_body(bytes([0x18]) + HEADER[1:]), reasons.UNSUPPORTED_VERSION),
        (wrap_body(HEADER + b"\x0d\x00\x00\x01"), reasons.UNKNOWN_READING_TYPE),
        (wrap_body(HEADER + b"\x01\x00\x00"), reasons.BAD_LENGTH),
        (wrap_body(HEADER + b"\x01"), reasons.BAD_LENGTH),
        (wrap_body(HEADER + b"\x06\x00\x00\x00\x01"), reasons.BAD_LENGTH),
        (wrap_body(bytes([0x11]) + HEADER[1:] + b"\x00\x00"), reasons.BAD_LENGTH),
        (wrap_body(HEADER + b"\x01\xfb\x00\x01"), reasons.BAD_CHANNEL),
        (wrap_body(HEADER + b"\x20\x01\x0e\x10"), reasons.BAD_CHANNEL),
        (wrap_body(HEADER + b"\x01\x0a\x00\x01\x01\x0a\x00\x02"), reasons.DUPLICATE_READING),
    ],
)
def test_decode_frame_rejections(frame: bytes, reason: str) -> None:
    rejection = _reject(frame, reason)
    assert rejection.raw == frame
    assert rejection.format == "frame"
    if reason in (reasons.UNKNOWN_READING_TYPE, reasons.BAD_CHANNEL):
        assert (rejection.node, rejection.seq) == ("n1", 2)


def test_decode_frame_accepts_bytearray_and_memoryview() -> None:
    frame = encode_frame(5, 6, {("rain_mm", "main"): 0.5})
    assert isinstance(decode_frame(bytearray(frame)), Packet)  # type: ignore[arg-type]
    assert isinstance(decode_frame(memoryview(frame)), Packet)  # type: ignore[arg-type]
