"""Payload codecs: a LoRaWAN FRMPayload (bytes, f_port) -> readings, by device model.

The gateway decodes ``frm_payload``/``data`` itself only when it is told which codec a
device speaks (``devices.<node>.codec`` of the node its DevEUI is registered as, else
``codec`` of a ``sources.mqtt.topics`` entry, docs/formats.md): the bytes
do not say which device wrote them, and guessing between layouts that share byte
patterns would store wrong numbers under right-looking names.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Final

from firmware_bridge import reasons
from firmware_bridge.cayenne_lpp import parse_lpp
from gateway.packet import Rejection, sensor_for_channel

from .common import CodecError, Decoded
from .decentlab import decode_dl_5tm, decode_dl_smtp
from .dragino import decode_lse01
from .fields import decode_object
from .milesight import decode_em300_th, decode_em500_smtc

Codec = Callable[[bytes, int | None], Decoded | CodecError]


def decode_cayenne_lpp(payload: bytes, f_port: int | None) -> Decoded | CodecError:
    """Cayenne LPP (firmware_bridge.cayenne_lpp): sensor tags ``ch<N>``."""
    items = parse_lpp(payload)
    if isinstance(items, Rejection):
        return CodecError(items.reason, items.detail)
    out = Decoded()
    for item in items:
        if item.type.quantity is None:
            out.unknown.append(f"ch{item.channel}:{item.type.name}")
        else:
            out.readings[(item.type.quantity, sensor_for_channel(f"ch{item.channel}"))] = \
                item.values[0]
    return out


CODECS: Final[dict[str, Codec]] = {
    "cayenne-lpp": decode_cayenne_lpp,
    "milesight-em500-smtc": decode_em500_smtc,
    "milesight-em300-th": decode_em300_th,
    "decentlab-dl-5tm": decode_dl_5tm,
    "decentlab-dl-smtp": decode_dl_smtp,
    "dragino-lse01": decode_lse01,
}


def payload_readings(decoded: object, frm_payload: object, f_port: object,
                     codec: str | None) -> Decoded | CodecError:
    """Readings of an uplink, from the first of:

    1. ``codec`` set (the device's own, else the topic entry's): decode the payload bytes
       with it. Explicit beats implicit: our codec knows the device's units and which
       quantities are soil.
    2. the network server's decoded object (TTS ``decoded_payload``, ChirpStack
       ``object``), through :func:`firmware_bridge.lorawan.fields.decode_object`.
    3. payload bytes but neither: ``no_codec`` (quarantined with the message, so it can be
       replayed once a codec is configured).
    4. nothing at all (an uplink without application payload): no readings.
    """
    port = f_port if isinstance(f_port, int) and not isinstance(f_port, bool) else None
    if codec is not None and frm_payload is not None:
        decode = CODECS.get(codec)
        if decode is None:
            return CodecError(reasons.NO_CODEC, f"no codec named {codec!r}")
        if not isinstance(frm_payload, str):
            return CodecError(reasons.SCHEMA, "payload is not a base64 string")
        try:
            data = base64.b64decode(frm_payload, validate=True)
        except ValueError as e:  # binascii.Error
            return CodecError(reasons.BAD_PAYLOAD, f"payload is not base64: {e}"[:200])
        return decode(data, port)
    if isinstance(decoded, dict) and decoded:
        return decode_object(decoded)
    if frm_payload is not None:
        return CodecError(reasons.NO_CODEC, "the server sent no decoded object and no codec "
                          "is configured for this topic")
    return Decoded()
