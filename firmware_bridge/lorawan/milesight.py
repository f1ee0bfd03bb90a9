"""Milesight EM500-SMTC (soil moisture, temperature, EC) and EM300-TH (air temperature,
humidity): the channel-type TLV payload on f_port 85, as Milesight documents it
(Milesight-IoT/SensorDecoders: EM_Series/EM500_Series/EM500-SMTC/README.md and
EM500-SMTC_Decoder.js, EM_Series/EM300_Series/EM300-TH/README.md and EM300-TH_Decoder.js)::

    01 75 64        channel 01 type 75: battery, uint8, %            -> 100 %
    03 67 19 01     channel 03 type 67: temperature, int16 LE, /10 °C -> 0x0119 = 28.1 °C
    04 68 73        channel 04 type 68: moisture / humidity, uint8, /2 -> 0x73 = 57.5 %
    04 ca 76 16     channel 04 type ca: moisture, uint16 LE, /100 %   -> 0x1676 = 57.50 %
                    (EM500-SMTC firmware with 0.01 % resolution)
    05 7f f0 00     channel 05 type 7f: conductivity, uint16 LE, µS/cm -> 240 µS/cm

    ff 01 01 | ff 09 01 10 | ff 0a 01 14 | ff ff 01 00 | ff 0f 00 | ff 16 <8 bytes>
    | ff fe 01 | ff 0b ff
                    device information (IPSO/hardware/firmware/TSL version, class,
                    serial, reset event, power-on), sent after joining: not readings.
    83 d7 <5 bytes> EM500-SMTC temperature alarm: temperature, change (int16 LE /10 each)
                    and the alarm type; the temperature also comes in the periodic uplink.
    20 ce <10 bytes> EM500-SMTC history record: time (uint32 LE), EC, temperature,
                    moisture (/100) -- 8 bytes on the EM300-TH: time, temperature,
                    humidity (/2), reserved. A re-sent past reading whose time is the
                    device's own clock; not stored (see below).

The same bytes mean soil quantities on the EM500-SMTC (a probe in the ground) and air
quantities on the EM300-TH, so the codec is chosen per device model. Battery is a
percentage, not a voltage: listed as unknown (``battery_pct``), not stored as battery_v.
Alarm, history and device-information records are skipped by their documented size and
listed as unknown (``temperature_alarm``, ``history``, ``ff<type>``): the rest of the
uplink is still read. History records are not stored because the uplink's one time (the
network server's receive time) is not theirs. A channel-type pair not in these tables has
an unknown size, so nothing after it can be read: ``bad_payload``.

**Sensor faults.** EM500-SMTC_Decoder.js reads a raw 0xFFFF as "collection failed" and
0xFFFD as "out of range" for temperature, the 2-byte moisture and EC: those decode as NaN,
which validation refuses as ``sensor_fault`` while it keeps the packet's other readings.
The raw unsigned value is compared, before the temperature's sign conversion (as int16
they are -0.1 and -0.3 °C; Milesight's decoder compares the signed value with 0xffff, so
it never sees them). The EM300-TH's decoder has no such values: an air temperature of
-0.1 °C is a reading there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from firmware_bridge import reasons

from .common import CodecError, Decoded

_FAULTS: Final = frozenset({0xFFFF, 0xFFFD})  # "collection failed", "out of range"


def _uint16(b: bytes) -> int:
    return int.from_bytes(b, "little")


def _int16(b: bytes) -> int:
    return int.from_bytes(b, "little", signed=True)


def _or_fault(convert: Callable[[bytes], float]) -> Callable[[bytes], float]:
    """``convert``, except that a fault value (raw uint16 LE) becomes NaN."""
    return lambda b: math.nan if _uint16(b) in _FAULTS else convert(b)


# (channel, type) -> (size, conversion into the catalogue unit, catalogue quantity)
_Field = tuple[int, Callable[[bytes], float], str]
_EM500_SMTC: Final[dict[tuple[int, int], _Field]] = {
    (0x03, 0x67): (2, _or_fault(lambda b: _int16(b) / 10), "soil_temperature_c"),
    (0x04, 0x68): (1, lambda b: b[0] / 2, "soil_moisture_pct"),
    (0x04, 0xCA): (2, _or_fault(lambda b: _uint16(b) / 100), "soil_moisture_pct"),
    (0x05, 0x7F): (2, _or_fault(lambda b: _uint16(b) / 1000), "soil_ec_ms_cm"),  # µS -> mS
}
_EM300_TH: Final[dict[tuple[int, int], _Field]] = {
    (0x03, 0x67): (2, lambda b: _int16(b) / 10, "temperature_c"),
    (0x04, 0x68): (1, lambda b: b[0] / 2, "humidity_pct"),
}

# (channel, type) -> (size, name listed as unknown): documented, read past, not stored.
_NOT_STORED: Final[dict[tuple[int, int], tuple[int, str]]] = {
    (0x01, 0x75): (1, "battery_pct"),
    **{(0xFF, kind): (size, f"ff{kind:02x}") for kind, size in (
        (0x01, 1), (0x09, 2), (0x0A, 2), (0xFF, 2), (0x16, 8), (0x0F, 1), (0xFE, 1),
        (0x0B, 1))},
}
_EM500_SMTC_NOT_STORED: Final = {**_NOT_STORED, (0x83, 0xD7): (5, "temperature_alarm"),
                                 (0x20, 0xCE): (10, "history")}
_EM300_TH_NOT_STORED: Final = {**_NOT_STORED, (0x20, 0xCE): (8, "history")}


def _decode(payload: bytes, fields: dict[tuple[int, int], _Field],
            not_stored: dict[tuple[int, int], tuple[int, str]],
            model: str) -> Decoded | CodecError:
    out = Decoded()
    if not payload:
        return CodecError(reasons.BAD_PAYLOAD, f"{model}: empty payload")
    i = 0
    while i < len(payload):
        if i + 2 > len(payload):
            return CodecError(reasons.BAD_PAYLOAD, f"{model}: byte {i}: channel without type")
        channel, kind = payload[i], payload[i + 1]
        skipped = not_stored.get((channel, kind))
        if skipped is not None:
            size, name = skipped
            if i + 2 + size > len(payload):
                return CodecError(reasons.BAD_PAYLOAD, f"{model}: byte {i}: {name} cut by "
                                  "the end")
            if name not in out.unknown:
                out.unknown.append(name)
            i += 2 + size
            continue
        spec = fields.get((channel, kind))
        if spec is None:
            return CodecError(reasons.BAD_PAYLOAD, f"{model}: byte {i}: channel "
                              f"{channel:02x} type {kind:02x} is not in the {model} layout")
        size, convert, quantity = spec
        if i + 2 + size > len(payload):
            return CodecError(reasons.BAD_PAYLOAD, f"{model}: byte {i}: value cut by the end")
        key = (quantity, "main")
        if key in out.readings:
            return CodecError(reasons.BAD_PAYLOAD, f"{model}: {quantity} given twice")
        out.readings[key] = convert(payload[i + 2:i + 2 + size])
        i += 2 + size
    return out


def decode_em500_smtc(payload: bytes, f_port: int | None) -> Decoded | CodecError:
    return _decode(bytes(payload), _EM500_SMTC, _EM500_SMTC_NOT_STORED, "EM500-SMTC")


def decode_em300_th(payload: bytes, f_port: int | None) -> Decoded | CodecError:
    return _decode(bytes(payload), _EM300_TH, _EM300_TH_NOT_STORED, "EM300-TH")
