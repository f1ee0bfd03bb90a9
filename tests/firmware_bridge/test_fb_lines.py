"""Line formats carrying binary frames: REYAX RYLR module output and frame-hex replay."""

from __future__ import annotations

import pytest

from firmware_bridge import reasons
from firmware_bridge.frame import encode_frame
from firmware_bridge.hexline import decode_frame_hex, encode_frame_hex
from firmware_bridge.rylr import decode_rylr_line, encode_rylr_line
from gateway.packet import Packet, Rejection

FRAME = encode_frame(12, 345, {("temperature_c", "main"): 8.5,
                               ("soil_moisture_pct", "soil_30cm"): 33.3},
                     battery_v=3.71, node_time_s=1_790_000_000)


def test_rylr_round_trip() -> None:
    line = encode_rylr_line(FRAME, 12, -104, -3.5)
    assert line.startswith(b"+RCV=12,") and line.endswith(b",-104,-3.5\r\n")
    packet = decode_rylr_line(line)
    assert isinstance(packet, Packet)
    assert packet.format == "rylr" and packet.raw == FRAME
    assert (packet.node, packet.seq) == ("n12", 345)
    assert (packet.rssi_dbm, packet.snr_db) == (-104.0, -3.5)
    assert packet.readings[("soil_moisture_pct", "soil_30cm")] == 33.3
    assert packet.unknown_fields == ()


def test_rylr_lowercase_hex_and_integer_snr() -> None:
    data = FRAME.hex()
    packet = decode_rylr_line(f"+RCV=12,{len(data)},{data},-80,7\n".encode())
    assert isinstance(packet, Packet) and packet.snr_db == 7.0


def test_rylr_address_disagreeing_with_frame_is_kept() -> None:
    packet = decode_rylr_line(encode_rylr_line(FRAME, 99, -90, 5))
    assert isinstance(packet, Packet)
    assert packet.node == "n12"
    assert packet.unknown_fields == ("rylr_addr=99",)


@pytest.mark.parametrize("line", [b"+OK\r\n", b"+ERR=4\r\n", b"+READY\r\n",
                                  b"+ADDRESS=12\r\n", b"\r\n", b""])
def test_rylr_module_replies_are_ignored(line: bytes) -> None:
    assert decode_rylr_line(line) is None


def _rcv(data: str, length: int | None = None, tail: str = "-90,5") -> bytes:
    return f"+RCV=12,{len(data) if length is None else length},{data},{tail}\r\n".encode()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"hello world\r\n", reasons.GARBAGE),
        (b"\x00\xff\x13\r\n", reasons.GARBAGE),
        (b"+RCV=12,4,ABCD,-90\r\n", reasons.BAD_RYLR),
        (b"+RCV=12,4,AB,CD,-90,5\r\n", reasons.BAD_RYLR),
        (_rcv(FRAME.hex(), tail="loud,5"), reasons.BAD_RYLR),
        (_rcv(FRAME.hex(), tail="-90,"), reasons.BAD_RYLR),
        (_rcv(FRAME.hex(), length=10), reasons.LENGTH_MISMATCH),
        (_rcv(FRAME.hex()[:-1]), reasons.BAD_HEX),
        (_rcv("zz" + FRAME.hex()[2:]), reasons.BAD_HEX),
        (_rcv(FRAME.hex()[:-2] + "00"), reasons.BAD_CRC),
        (_rcv(FRAME.hex()[:30]), reasons.TRUNCATED),
        (_rcv("5aa5" + FRAME.hex()[4:]), reasons.BAD_SYNC),
        (b"+RCV=" + b"1" * 700 + b"\r\n", reasons.BAD_LENGTH),
    ],
)
def test_rylr_rejections(line: bytes, reason: str) -> None:
    result = decode_rylr_line(line)
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result.detail
    assert result.format == "rylr"
    assert result.raw == line


def test_frame_hex_round_trip_and_comments() -> None:
    line = encode_frame_hex(FRAME)
    packet = decode_frame_hex(line)
    assert isinstance(packet, Packet) and packet.raw == FRAME and packet.format == "frame-hex"
    assert decode_frame_hex(FRAME.hex(" ")) == packet  # str with spaces, lowercase
    for ignored in ("", "   \n", "# captured 2026-10-02 on terrace 3", b"#x\n"):
        assert decode_frame_hex(ignored) is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("A55", reasons.BAD_HEX),
        ("hello", reasons.BAD_HEX),
        ("5AA5", reasons.BAD_SYNC),
        (FRAME.hex()[:-2] + "00", reasons.BAD_CRC),
        (FRAME.hex()[:20], reasons.TRUNCATED),
        ("00" * 1000, reasons.BAD_LENGTH),
    ],
)
def test_frame_hex_rejections(line: str, reason: str) -> None:
    result = decode_frame_hex(line)
    assert isinstance(result, Rejection) and result.reason == reason, result
    assert result.format == "frame-hex"
