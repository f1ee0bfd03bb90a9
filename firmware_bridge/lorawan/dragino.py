"""Dragino LSE01 soil moisture / temperature / EC probe: 11 bytes on f_port 2, big-endian,
as in the LSE01 user manual and Dragino's decoder V1.2.1::

    ce 29    battery: low 14 bits, mV              0x0e29 = 3625 -> 3.625 V
    00 f1    DS18B20 temperature, int16, /10 °C   (optional external probe)
    07 a5    soil moisture, uint16, /100 %          1957 -> 19.57 %
    09 9b    soil temperature, int16, /100 °C       2459 -> 24.59 °C
    6e 28    soil conductivity, uint16, µS/cm       28200 µS/cm -> 28.2 mS/cm
    10       flags: bit 7 = working mode (0: calibrated values as above;
             1, "Mod 1" since firmware 1.2: bytes 4..9 are raw dielectric constant,
             raw moisture and raw conductivity counts); bit 4 = s_flag (1: the soil
             probe was identified, 0: "No sensor was identified"); bits 0..3 = i_flag
             (interrupt uplink)

In mode 1 only the battery is stored and the raw counts are listed as unknown: they are
not the catalogue's quantities. (The corpus vector ``ce2900f107a5099b6e2890`` has the mode
bit set; the old TTN decoder ignored that byte and reports 19.57 % / 24.59 °C, Dragino's
V1.2.1 decoder reads it as mode 1. We follow the device's documented layout.) The DS18B20
value is listed as unknown too: the probe is optional and measures whatever it is put in.

With s_flag 0 (Dragino's V1.2.1 decoder and the TTN repository's lse01-121.js report it as
``s_flag``: 0 = "No sensor was identified", a probe unplugged or failed) bytes 4..9 are
zeros, not a dry soil at 0 °C: in mode 0 the moisture, soil temperature and EC decode as
NaN, this codebase's sensor-fault value (firmware_bridge/PROTOCOL.md), so validation
refuses those readings as ``sensor_fault`` (quarantined and counted, and rules'
``unless_quarantined`` sees them) and stores the battery alone. Only when those bytes are
zeros: in firmware before the flags byte (the LSE01 manual's older layout) byte 10 was the
digital interrupt, normally 0, with real readings before it.
"""

from __future__ import annotations

import math
from typing import Final

from firmware_bridge import reasons

from .common import CodecError, Decoded

F_PORT: Final = 2
LENGTH: Final = 11


def decode_lse01(payload: bytes, f_port: int | None) -> Decoded | CodecError:
    data = bytes(payload)
    if f_port is not None and f_port != F_PORT:
        return CodecError(reasons.BAD_PAYLOAD, f"LSE01: f_port {f_port}, uplinks are on "
                          f"f_port {F_PORT}")
    if len(data) != LENGTH:
        return CodecError(reasons.BAD_PAYLOAD, f"LSE01: {len(data)} bytes, expected {LENGTH}")
    out = Decoded(battery_v=(int.from_bytes(data[0:2], "big") & 0x3FFF) / 1000)
    out.unknown.append("TempC_DS18B20")
    if data[10] >> 7:
        out.unknown += ["dielectric_constant", "water_SOIL_raw", "conduct_SOIL_raw"]
        return out
    if not (data[10] >> 4) & 1 and not any(data[4:10]):  # s_flag 0 and the probe's zeros
        for quantity in ("soil_moisture_pct", "soil_temperature_c", "soil_ec_ms_cm"):
            out.readings[(quantity, "main")] = math.nan
        return out
    out.readings[("soil_moisture_pct", "main")] = int.from_bytes(data[4:6], "big") / 100
    out.readings[("soil_temperature_c", "main")] = \
        int.from_bytes(data[6:8], "big", signed=True) / 100
    out.readings[("soil_ec_ms_cm", "main")] = int.from_bytes(data[8:10], "big") / 1000
    return out
