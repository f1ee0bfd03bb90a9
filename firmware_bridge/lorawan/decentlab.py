"""Decentlab DL-5TM (soil moisture and temperature) and DL-SMTP (soil moisture and
temperature profile): Decentlab's protocol version 2, as in decentlab/decentlab-decoders::

    02          protocol version (only 2 is defined)
    02 3b       device id (uint16 BE; 571)
    00 03       flags: bit i set = sensor group i present
    <group 0>   uint16 BE values, as many as the group has
    <group 1>   battery: uint16 BE, mV

DL-5TM group 0 (2 values): e = x0 / 50 is the dielectric permittivity, the volumetric
water content is Topp's equation 4.3e-6 e³ − 5.5e-4 e² + 2.92e-2 e − 5.3e-2 (m³/m³,
stored ×100 as %), soil temperature (x1 − 400) / 10 °C.
Example ``02 023b 0003 0037 0271 0c60``: e = 1.1, VWC −2.15 % (a probe in air: validation
refuses that one reading as out of range), 22.5 °C, battery 3.168 V.

DL-SMTP group 0 (16 values): 8 depths, each (moisture index (x − 2500) / 500, unitless;
temperature (x − 32768) / 100 °C). The moisture index is not water content, so it is not
stored (listed as unknown); temperatures get sensor tags ``depth0`` .. ``depth7`` (set
their depths in the registry). A depth whose two raw values are both 0 has no sensor
connected (the decoders' −5 / −327.68): skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from firmware_bridge import reasons

from .common import CodecError, Decoded

PROTOCOL_VERSION: Final = 2


def _groups(payload: bytes, lengths: tuple[int, ...],
            model: str) -> list[list[int] | None] | CodecError:
    data = bytes(payload)
    if len(data) < 5:
        return CodecError(reasons.BAD_PAYLOAD, f"{model}: {len(data)} bytes, header is 5")
    if data[0] != PROTOCOL_VERSION:
        return CodecError(reasons.BAD_PAYLOAD, f"{model}: protocol version {data[0]}, "
                          f"expected {PROTOCOL_VERSION}")
    flags = int.from_bytes(data[3:5], "big")
    if flags >> len(lengths):
        return CodecError(reasons.BAD_PAYLOAD, f"{model}: flags 0x{flags:04x} name a sensor "
                          "group the device does not have")
    groups: list[list[int] | None] = []
    pos = 5
    for bit, length in enumerate(lengths):
        if not flags & (1 << bit):
            groups.append(None)
            continue
        end = pos + 2 * length
        if end > len(data):
            return CodecError(reasons.BAD_PAYLOAD, f"{model}: group {bit} cut by the end")
        groups.append([int.from_bytes(data[i:i + 2], "big") for i in range(pos, end, 2)])
        pos = end
    if pos != len(data):
        return CodecError(reasons.BAD_PAYLOAD, f"{model}: {len(data) - pos} bytes after the "
                          "last group")
    return groups


def _decode(payload: bytes, model: str, probe_values: int,
            read_probe: Callable[[list[int], Decoded], None]) -> Decoded | CodecError:
    """Both devices: sensor group 0 is the probe (``read_probe``), group 1 the battery."""
    groups = _groups(payload, (probe_values, 1), model)
    if isinstance(groups, CodecError):
        return groups
    out = Decoded()
    probe, battery = groups
    if probe is not None:
        read_probe(probe, out)
    if battery is not None:
        out.battery_v = battery[0] / 1000
    return out


def _dl_5tm_probe(x: list[int], out: Decoded) -> None:
    e = x[0] / 50
    vwc = 4.3e-6 * e**3 - 5.5e-4 * e**2 + 2.92e-2 * e - 5.3e-2
    out.readings[("soil_moisture_pct", "main")] = vwc * 100
    out.readings[("soil_temperature_c", "main")] = (x[1] - 400) / 10
    out.unknown.append("dielectric_permittivity")


def _dl_smtp_profile(x: list[int], out: Decoded) -> None:
    for depth in range(8):
        moisture, temperature = x[2 * depth], x[2 * depth + 1]
        if moisture == 0 and temperature == 0:
            continue  # no sensor at this depth
        out.unknown.append(f"soil_moisture_at_depth_{depth}")
        out.readings[("soil_temperature_c", f"depth{depth}")] = (temperature - 32768) / 100


def decode_dl_5tm(payload: bytes, f_port: int | None) -> Decoded | CodecError:
    return _decode(payload, "DL-5TM", 2, _dl_5tm_probe)


def decode_dl_smtp(payload: bytes, f_port: int | None) -> Decoded | CodecError:
    return _decode(payload, "DL-SMTP", 16, _dl_smtp_profile)
