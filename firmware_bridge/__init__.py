"""The link between field firmware and the gateway (pure code: bytes in, packets out).

Spec: ``PROTOCOL.md`` beside this file. One module per wire format:
``frame`` (binary frames and the stream deframer), ``hexline`` (``frame-hex`` replay),
``rylr`` (REYAX RYLR module lines), ``native`` (JSON lines); ``crc`` and ``auth`` for
integrity and authentication; ``reasons`` for the rejection codes; ``simulator`` for
field-node traffic with labelled faults.
"""

from .auth import sign, verify
from .frame import Deframer, decode_frame, encode_frame
from .hexline import decode_frame_hex
from .native import NativeUplink, decode_native, encode_native
from .rylr import decode_rylr_line, encode_rylr_line

__all__ = [
    "Deframer",
    "NativeUplink",
    "decode_frame",
    "decode_frame_hex",
    "decode_native",
    "decode_rylr_line",
    "encode_frame",
    "encode_native",
    "encode_rylr_line",
    "sign",
    "verify",
]
