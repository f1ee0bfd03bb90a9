"""Milesight EM500-SMTC (soil moisture, temperature, EC) and EM300-TH (air temperature,
humidity): the channel-type TLV payload on f_port 85, as Milesight documents it
(Milesight-IoT/SensorDecoders, em-series README)::

    01 75 64        channel 01 type 75: battery, uint8, %            -> 100 %
    03 67 19 01     channel 03 type 67: temperature, int16 LE, /10 °C -> 0x0119 = 28.1 °C
    04 68 73        channel 04 type 68: moisture / humidity, uint8, /2 -> 0x73 = 57.5 %
    05 7f f0 00     channel 05 type 7f: conductivity, uint16 LE, µS/cm -> 240 µS/cm

    ff 01 01 | ff 09 01 10 | ff 0a 01 14 | ff 0f 00 | ff 16 <8 bytes> | ff 0b ff
                    device information (IPSO/hardware/firmware version, class, serial,
                    power-on), sent after joining: not readings.

The same bytes mean soil quantities on the EM500-SMTC (a probe in the ground) and air
quantities on the EM300-TH, so the codec is chosen per device model. Battery is a
percentage, not a voltage: listed as unknown (``battery_pct``), not stored as battery_v.
A channel-type pair not in these tables has an unknown size, so nothing after it can be
read: ``bad_payload``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from firmware_bridge import reasons

from .common import CodecError, Decoded

# (channel, type) -> (size, decode, name or catalogue quantity per model)
_Field = tuple[int, Callable[[bytes], float]]
_TLV: Final[dict[tuple[int, int], _Field]] = {
    (0x01, 0x75): (1, lambda b: float(b[0])),
    (0x03, 0x67): (2, lambda b: int.from_bytes(b, "little", signed=True) / 10),
    (0x04, 0x68): (1, lambda b: b[0] / 2),
    (0x05, 0x7F): (2, lambda b: int.from_bytes(b, "little") / 1000),  # µS/cm -> mS/cm
}
_DEVICE_INFO_SIZES: Final[dict[int, int]] = {0x01: 1, 0x09: 2, 0x0A: 2, 0x0B: 1, 0x0F: 1,
                                             0x16: 8}
_EM500_SMTC: Final = {(0x03, 0x67): "soil_temperature_c", (0x04, 0x68): "soil_moisture_pct",
                      (0x05, 0x7F): "soil_ec_ms_cm"}
_EM300_TH: Final = {(0x03, 0x67): "temperature_c", (0x04, 0x68): "humidity_pct"}


def _decode(payload: bytes, quantities: dict[tuple[int, int], str],
            model: str) -> Decoded | CodecError:
    out = Decoded()
    if not payload:
        return CodecError(reasons.BAD_PAYLOAD, f"{model}: empty payload")
    i = 0
    while i < len(payload):
        if i + 2 > len(payload):
            return CodecError(reasons.BAD_PAYLOAD, f"{model}: byte {i}: channel without type")
        channel, kind = payload[i], payload[i + 1]
        if channel == 0xFF and kind in _DEVICE_INFO_SIZES:
            size = _DEVICE_INFO_SIZES[kind]
            if i + 2 + size > len(payload):
                return CodecError(reasons.BAD_PAYLOAD, f"{model}: byte {i}: device info cut")
            out.unknown.append(f"ff{kind:02x}")
            i += 2 + size
            continue
        spec = _TLV.get((channel, kind))
        if spec is None or ((channel, kind) != (0x01, 0x75)
                            and (channel, kind) not in quantities):
            return CodecError(reasons.BAD_PAYLOAD, f"{model}: byte {i}: channel "
                              f"{channel:02x} type {kind:02x} is not in the {model} layout")
        size, convert = spec
        if i + 2 + size > len(payload):
            return CodecError(reasons.BAD_PAYLOAD, f"{model}: byte {i}: value cut by the end")
        value = convert(payload[i + 2:i + 2 + size])
        if (channel, kind) == (0x01, 0x75):
            out.unknown.append("battery_pct")
        else:
            key = (quantities[(channel, kind)], "main")
            if key in out.readings:
                return CodecError(reasons.BAD_PAYLOAD, f"{model}: {key[0]} given twice")
            out.readings[key] = value
        i += 2 + size
    return out


def decode_em500_smtc(payload: bytes, f_port: int | None) -> Decoded | CodecError:
    return _decode(bytes(payload), _EM500_SMTC, "EM500-SMTC")


def decode_em300_th(payload: bytes, f_port: int | None) -> Decoded | CodecError:
    return _decode(bytes(payload), _EM300_TH, "EM300-TH")
