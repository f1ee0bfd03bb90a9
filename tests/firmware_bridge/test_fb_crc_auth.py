"""CRC-16/CCITT-FALSE and the frame HMAC tag."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.auth import sign, verify
from firmware_bridge.crc import CHECK_VALUE, crc16, crc16_ccitt_false
from firmware_bridge.frame import decode_frame, encode_frame
from gateway.packet import Packet, Rejection

KEY = bytes(range(16))


def test_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == CHECK_VALUE == 0x29B1
    assert crc16(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


@given(st.binary(max_size=300))
def test_fast_crc_matches_table_reference(data: bytes) -> None:
    assert crc16(data) == crc16_ccitt_false(data)


def test_running_crc() -> None:
    assert crc16_ccitt_false(b"6789", crc16_ccitt_false(b"12345")) == 0x29B1


def _signed_packet() -> Packet:
    frame = encode_frame(9, 77, {("temperature_c", "main"): 18.25}, battery_v=3.7,
                         node_time_s=1_790_000_000, key=KEY)
    packet = decode_frame(frame)
    assert isinstance(packet, Packet)
    return packet


def test_sign_and_verify() -> None:
    packet = _signed_packet()
    assert packet.auth_tag is not None and len(packet.auth_tag) == 8
    assert packet.signed is not None
    assert packet.signed == packet.raw[3:-10]
    assert packet.auth_tag == sign(KEY, packet.signed)
    assert verify(packet, KEY)
    assert not verify(packet, b"another key")


def test_unsigned_packet_does_not_verify() -> None:
    packet = decode_frame(encode_frame(9, 77, {("temperature_c", "main"): 18.25}))
    assert isinstance(packet, Packet)
    assert packet.auth_tag is None and packet.signed is None
    assert not verify(packet, KEY)


def test_tampering_is_detected() -> None:
    """An attacker who changes a value and recomputes the CRC still fails the tag."""
    frame = bytearray(encode_frame(9, 77, {("temperature_c", "main"): 18.25}, key=KEY))
    frame[9] ^= 0x01  # inside the temperature value
    body = bytes(frame[2:-2])
    frame[-2:] = crc16(body).to_bytes(2, "big")
    packet = decode_frame(bytes(frame))
    assert isinstance(packet, Packet)  # the CRC is right...
    assert not verify(packet, KEY)  # ...the tag is not


def test_tag_over_random_keys() -> None:
    for _ in range(20):
        key = os.urandom(32)
        packet = decode_frame(encode_frame(1, 2, [], key=key))
        assert isinstance(packet, Packet) and verify(packet, key)
        bad = Packet(**{**{f: getattr(packet, f) for f in Packet.__slots__},
                        "auth_tag": bytes(8)})
        assert not verify(bad, key)


def test_tag_flag_with_short_len_is_bad_length() -> None:
    # flags say "tag present" but LEN only covers the header
    body = bytes([0x12, 0, 1, 0, 1])
    frame = b"\xa5\x5a" + bytes([len(body)]) + body
    frame += crc16(frame[2:]).to_bytes(2, "big")
    result = decode_frame(frame)
    assert isinstance(result, Rejection) and result.reason == "bad_length"
