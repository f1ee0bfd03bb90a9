"""The link between field firmware and the gateway (pure code: bytes in, packets out).

Spec: ``PROTOCOL.md`` beside this file. One module per wire format:
``frame`` (binary frames and the stream deframer), ``hexline`` (``frame-hex`` replay),
``rylr`` (REYAX RYLR module lines), ``native`` (JSON lines); third-party payloads:
``cayenne_lpp`` (Cayenne LPP uplinks), ``rtl433`` (``rtl_433 -F json`` events),
``lorawan`` (The Things Stack v3 and ChirpStack v4 uplinks, soil-sensor payload codecs);
``crc`` and ``auth`` for integrity and authentication; ``reasons`` for the rejection
codes; ``simulator`` for field-node traffic with labelled faults.
"""

from .auth import sign, verify
from .cayenne_lpp import decode_lpp, parse_lpp
from .frame import Deframer, decode_frame, encode_frame
from .hexline import decode_frame_hex
from .native import NativeUplink, decode_native, encode_native
from .rtl433 import decode_rtl433_line
from .rylr import decode_rylr_line, encode_rylr_line

__all__ = [
    "Deframer",
    "NativeUplink",
    "decode_frame",
    "decode_frame_hex",
    "decode_lpp",
    "decode_native",
    "decode_rtl433_line",
    "decode_rylr_line",
    "encode_frame",
    "encode_native",
    "encode_rylr_line",
    "parse_lpp",
    "sign",
    "verify",
]
