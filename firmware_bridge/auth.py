"""Per-node message authentication for radio frames.

A node with a key appends the first 8 bytes of HMAC-SHA256(node_key, VER..last reading).
The decoder only carries the tag and the bytes it covers (``Packet.auth_tag`` and
``Packet.signed``); the pipeline looks the node's key up in the device registry and calls
:func:`verify`, and applies the replay window on seq. 64 bits of tag is enough for a
channel where every forgery attempt costs a radio transmission.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from gateway.packet import Packet

TAG_SIZE: Final = 8


def sign(key: bytes, signed_bytes: bytes) -> bytes:
    """The 8-byte frame tag for ``signed_bytes`` (VER through the last reading byte)."""
    return hmac.new(key, signed_bytes, hashlib.sha256).digest()[:TAG_SIZE]


def verify(packet: Packet, key: bytes) -> bool:
    """True if ``packet`` carries a tag and it is the right one for ``key``."""
    if packet.auth_tag is None or packet.signed is None:
        return False
    return hmac.compare_digest(sign(key, packet.signed), packet.auth_tag)
