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
    fe 03 b0 04 | ff 03 b0 04 | fe 10 ff | ...
                    EM500-SMTC reply to a downlink command (channel fe or ff, the
                    command's type, its value): here report_interval 0x04b0 = 1200 s,
                    then a reboot. The types and sizes are those EM500-SMTC_Decoder.js
                    reads as "DOWNLINK RESPONSE" (:data:`_EM500_SMTC_REPLIES`): the
                    device's settings, not readings.
    83 d7 <5 bytes> EM500-SMTC temperature alarm: temperature, change (int16 LE /10 each)
                    and the alarm type; the temperature also comes in the periodic uplink.
    20 ce <10 bytes> EM500-SMTC history record: time (uint32 LE), EC, temperature,
                    moisture (/100) -- 8 bytes on the EM300-TH: time, temperature,
                    humidity (/2), reserved. A re-sent past reading whose time is the
                    device's own clock; not stored (see below).

The same bytes mean soil quantities on the EM500-SMTC (a probe in the ground) and air
quantities on the EM300-TH, so the codec is chosen per device model. Battery is a
percentage, not a voltage: listed as unknown (``battery_pct``), not stored as battery_v.
Alarm, history, device-information and reply records are skipped by their documented
size and listed as unknown (``temperature_alarm``, ``history``, ``ff<type>``, the reply's
setting such as ``report_interval``): the rest of the uplink is still read. History
records are not stored because the uplink's one time (the network server's receive time)
is not theirs. A channel-type pair not in these tables has an unknown size, so nothing
after it can be read: ``bad_payload``.

**Uplinks without readings.** The device information sent after a join, a reply to a
downlink command and a battery level alone are normal traffic that carries no readings:
such a payload (nothing but those records) is marked ``no_readings``, and the envelope
decoders count it as ignored (``ignored.no_readings``), not as an ``empty`` packet that
validation would reject. A payload of history or alarm records alone is not marked: it
holds measurements that are not stored, so it stays evidence in the quarantine.

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

# What a record is that is read past and not stored: device traffic without readings
# (an uplink of nothing else is ``no_readings``) or a measurement we do not store.
_INFO: Final = "device information"
_REPLY: Final = "downlink reply"
_BATTERY: Final = "battery level"
_MEASUREMENT: Final = "measurement"
_NO_READINGS: Final = frozenset({_INFO, _REPLY, _BATTERY})

# (channel, type) -> (size, name listed as unknown, what it is): documented, read past,
# not stored.
_Skipped = tuple[int, str, str]
_NOT_STORED: Final[dict[tuple[int, int], _Skipped]] = {
    (0x01, 0x75): (1, "battery_pct", _BATTERY),
    **{(0xFF, kind): (size, f"ff{kind:02x}", _INFO) for kind, size in (
        (0x01, 1), (0x09, 2), (0x0A, 2), (0xFF, 2), (0x16, 8), (0x0F, 1), (0xFE, 1),
        (0x0B, 1))},
}
# EM500-SMTC replies to downlink commands: type -> (size, setting), on channel fe or ff
# (EM500-SMTC_Decoder.js, handle_downlink_response). None of these types is also a
# device-information type of channel ff.
_EM500_SMTC_REPLIES: Final[dict[int, tuple[int, str]]] = {
    0x02: (2, "collection_interval"), 0x03: (2, "report_interval"), 0x06: (9, "alarm_config"),
    0x10: (1, "reboot"), 0x11: (4, "timestamp"), 0x17: (2, "time_zone"),
    0x18: (2, "sensor_enable"), 0x1C: (2, "recollection_config"), 0x27: (1, "clear_history"),
    0x28: (1, "report_status"), 0x35: (8, "d2d_key"), 0x3B: (1, "time_sync_enable"),
    0x4A: (1, "sync_time"), 0x68: (1, "history_enable"), 0x69: (1, "retransmit_enable"),
    0x6A: (3, "retransmit_interval"), 0x84: (1, "d2d_enable"),
    0x96: (8, "d2d_master_config"), 0xF1: (4, "calibration_settings"),
    0xF2: (2, "alarm_report_counts"), 0xF5: (1, "alarm_release_enable"),
}
_EM500_SMTC_NOT_STORED: Final = {
    **_NOT_STORED,
    (0x83, 0xD7): (5, "temperature_alarm", _MEASUREMENT),
    (0x20, 0xCE): (10, "history", _MEASUREMENT),
    **{(channel, kind): (size, name, _REPLY)
       for channel in (0xFE, 0xFF) for kind, (size, name) in _EM500_SMTC_REPLIES.items()},
}
_EM300_TH_NOT_STORED: Final = {**_NOT_STORED, (0x20, 0xCE): (8, "history", _MEASUREMENT)}


def _decode(payload: bytes, fields: dict[tuple[int, int], _Field],
            not_stored: dict[tuple[int, int], _Skipped],
            model: str) -> Decoded | CodecError:
    out = Decoded()
    if not payload:
        return CodecError(reasons.BAD_PAYLOAD, f"{model}: empty payload")
    kinds: set[str] = set()  # what the records read past were
    i = 0
    while i < len(payload):
        if i + 2 > len(payload):
            return CodecError(reasons.BAD_PAYLOAD, f"{model}: byte {i}: channel without type")
        channel, kind = payload[i], payload[i + 1]
        skipped = not_stored.get((channel, kind))
        if skipped is not None:
            size, name, what = skipped
            if i + 2 + size > len(payload):
                return CodecError(reasons.BAD_PAYLOAD, f"{model}: byte {i}: {name} cut by "
                                  "the end")
            if name not in out.unknown:
                out.unknown.append(name)
            kinds.add(what)
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
    if not out.readings and kinds <= _NO_READINGS:
        out.no_readings = (f"{model}: {' and '.join(sorted(kinds))} only "
                           f"({', '.join(out.unknown)})")
    return out


def decode_em500_smtc(payload: bytes, f_port: int | None) -> Decoded | CodecError:
    return _decode(bytes(payload), _EM500_SMTC, _EM500_SMTC_NOT_STORED, "EM500-SMTC")


def decode_em300_th(payload: bytes, f_port: int | None) -> Decoded | CodecError:
    return _decode(bytes(payload), _EM300_TH, _EM300_TH_NOT_STORED, "EM300-TH")
