"""CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR.

Check value: ``crc16_ccitt_false(b"123456789") == 0x29B1``.

:func:`crc16_ccitt_false` is the table-driven reference, written out so the node firmware
(C, see PROTOCOL.md) can mirror it line by line. :func:`crc16` is what the decoders call:
the standard library's ``binascii.crc_hqx`` computes the same polynomial in C and is about
30 times faster; the tests pin the two to each other.
"""

from __future__ import annotations

import binascii
from typing import Final

POLY: Final = 0x1021
INIT: Final = 0xFFFF
CHECK_VALUE: Final = 0x29B1


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


TABLE: Final[tuple[int, ...]] = _make_table()


def crc16_ccitt_false(data: bytes | bytearray | memoryview, crc: int = INIT) -> int:
    """Table-driven CRC-16/CCITT-FALSE of ``data`` (pass ``crc`` to continue a running CRC)."""
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def crc16(data: bytes | bytearray | memoryview, crc: int = INIT) -> int:
    """Same result as :func:`crc16_ccitt_false`, computed in C by the standard library."""
    return binascii.crc_hqx(data, crc)
