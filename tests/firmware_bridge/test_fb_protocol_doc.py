"""PROTOCOL.md stays true: its tables come from the code and its examples decode."""

from __future__ import annotations

import math
from pathlib import Path

from firmware_bridge.auth import verify
from firmware_bridge.frame import decode_frame
from firmware_bridge.native import decode_native
from firmware_bridge.reading_types import type_table_markdown
from firmware_bridge.reasons import REASONS
from firmware_bridge.rylr import decode_rylr_line
from gateway.packet import Packet

DOC = (Path(__file__).parents[2] / "firmware_bridge" / "PROTOCOL.md").read_text("utf-8")


def test_type_table_matches_code() -> None:
    assert type_table_markdown() in DOC


def test_every_reason_is_documented() -> None:
    for code, meaning in REASONS.items():
        assert f"| `{code}` | {meaning} |" in DOC


def test_hex_examples_decode() -> None:
    frames = [bytes.fromhex(line) for line in DOC.splitlines() if line.startswith("A5 5A ")]
    assert len(frames) == 3
    packets = [decode_frame(f) for f in frames]
    assert all(isinstance(p, Packet) for p in packets)
    _heartbeat, design, signed = packets
    assert isinstance(design, Packet) and isinstance(signed, Packet)
    assert design.node == "n17" and design.seq == 4211 and design.battery_v == 3.62
    assert design.readings[("soil_moisture_pct", "soil_10cm")] == 28.4
    assert verify(signed, b"satoyama-demo-key")
    assert math.isnan(signed.readings[("soil_moisture_pct", "soil_10cm")])
    assert signed.readings[("temperature_c", "main")] == -3.5


def test_line_examples_decode() -> None:
    rcv = next(line for line in DOC.splitlines() if line.startswith("+RCV=3,"))
    packet = decode_rylr_line(rcv.encode() + b"\r\n")
    assert isinstance(packet, Packet) and packet.readings == {("temperature_c", "main"): 12.5}
    body = next(line for line in DOC.splitlines() if line.startswith('{"node":"n17"'))
    native = decode_native(body)
    assert isinstance(native, Packet) and native.node_time_ns == 1782879000 * 10**9
