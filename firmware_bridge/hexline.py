"""Replay format ``frame-hex``: one binary frame per line as hex digits.

Blank lines and lines starting with ``#`` are comments (``None``). Spaces between bytes are
allowed (``A5 5A 0D ...``), so hex dumps can be pasted as they are.
"""

from __future__ import annotations

from typing import Final

from gateway.packet import Packet, Rejection

from . import reasons
from .frame import MAX_FRAME, decode_frame

FORMAT: Final = "frame-hex"


def decode_frame_hex(line: bytes | str) -> Packet | Rejection | None:
    if isinstance(line, bytes | bytearray):
        raw = bytes(line)
        text = raw.decode("ascii", "replace")
    else:
        text = line
        raw = line.encode("utf-8", "surrogateescape")
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    if len(text) > 3 * MAX_FRAME:
        return Rejection(reasons.BAD_LENGTH, f"{len(text)} characters", raw.strip(), FORMAT)
    try:
        frame = bytes.fromhex(text)
    except ValueError as e:
        return Rejection(reasons.BAD_HEX, str(e), raw.strip(), FORMAT)
    return decode_frame(frame, fmt=FORMAT)


def encode_frame_hex(frame: bytes) -> bytes:
    """One ``frame-hex`` line (uppercase, newline-terminated)."""
    return frame.hex().upper().encode("ascii") + b"\n"
