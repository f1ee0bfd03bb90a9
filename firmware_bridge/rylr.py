"""REYAX RYLR (RYLR896/RYLR998) LoRa modules on a serial line, carrying hex frames.

The module prints one line per received packet::

    +RCV=<addr>,<len>,<data>,<rssi>,<snr>\\r\\n

Satoyama nodes send the hex of one binary frame as <data> (either case), so <len> is the
number of hex characters; a mismatch means the module or the line lost characters.
RSSI and SNR measured by the module go to ``Packet.rssi_dbm``/``snr_db``. The node comes
from the frame; when the module address disagrees with it, ``rylr_addr=<addr>`` is listed in
``Packet.unknown_fields`` so the disagreement stays visible.

Module replies (``+OK``, ``+ERR=4``, ``+READY``, ``+ADDRESS=...``) are not uplinks:
``None``, not counted as garbage. Anything else is ``garbage`` or ``bad_rylr``.
"""

from __future__ import annotations

import re
from typing import Final

from gateway.packet import Packet, Rejection

from . import reasons
from .frame import decode_frame

FORMAT: Final = "rylr"
MAX_LINE: Final = 600  # +RCV= + 240 data characters + fields, with room to spare
_REPLY = re.compile(rb"^\+[A-Z]+(=.*)?$")
_UINT = re.compile(rb"^\d{1,6}$")
_INT = re.compile(rb"^[+-]?\d{1,4}$")
_NUM = re.compile(rb"^[+-]?\d{1,4}(\.\d{1,3})?$")


def decode_rylr_line(line: bytes) -> Packet | Rejection | None:
    raw = bytes(line)
    text = raw.strip()
    if not text:
        return None
    if len(text) > MAX_LINE:
        return Rejection(reasons.BAD_LENGTH, f"line of {len(text)} bytes", raw, FORMAT)
    if not text.startswith(b"+RCV="):
        if _REPLY.match(text):
            return None
        return Rejection(reasons.GARBAGE, f"{len(text)} bytes of non-module output", raw,
                         FORMAT)
    fields = text[5:].split(b",")
    if len(fields) != 5:
        return Rejection(reasons.BAD_RYLR, f"{len(fields)} fields, expected 5", raw, FORMAT)
    addr_b, len_b, data, rssi_b, snr_b = fields
    if not (_UINT.match(addr_b) and _UINT.match(len_b) and _INT.match(rssi_b)
            and _NUM.match(snr_b)):
        return Rejection(reasons.BAD_RYLR, "addr, len, rssi and snr must be numbers", raw,
                         FORMAT)
    addr, length = int(addr_b), int(len_b)
    if length != len(data):
        return Rejection(reasons.LENGTH_MISMATCH,
                         f"<len> {length} but {len(data)} data characters", raw, FORMAT)
    try:
        frame = bytes.fromhex(data.decode("ascii"))
    except ValueError as e:  # UnicodeDecodeError is a ValueError
        return Rejection(reasons.BAD_HEX, str(e), raw, FORMAT)
    result = decode_frame(frame, fmt=FORMAT)
    if isinstance(result, Rejection):
        result.raw = raw  # the module line is the better evidence: it has addr, rssi, snr
        return result
    result.rssi_dbm = float(int(rssi_b))
    result.snr_db = float(snr_b)
    if result.node != f"n{addr}":
        result.unknown_fields = (*result.unknown_fields, f"rylr_addr={addr}")
    return result


def encode_rylr_line(frame: bytes, addr: int, rssi: int, snr: float) -> bytes:
    """The line an RYLR module prints on receiving ``frame`` (hex, uppercase) from ``addr``."""
    data = frame.hex().upper()
    snr_text = str(int(snr)) if float(snr).is_integer() else f"{snr:.1f}"
    return f"+RCV={addr},{len(data)},{data},{rssi},{snr_text}\r\n".encode("ascii")
