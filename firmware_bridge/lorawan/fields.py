"""Objects decoded by a network server's payload formatter -> readings.

The Things Stack puts what the device's payload formatter returned in
``uplink_message.decoded_payload``, ChirpStack in ``object``. Their keys are whatever the
vendor's decoder chose; this maps them through the sensor catalogue's aliases
(:mod:`gateway.catalogue`), with the units the vendors' decoders use:

- a value is a JSON number; a numeric string, optionally with a unit (Dragino LSE01 sends
  ``"Bat": "3.384 V"``, ``"water_SOIL": "19.57"``); or an object ``{"value": 3.168,
  "unit": "V"}`` (the Decentlab decoders of the TTN device repository).
- a unit, when given, is converted into the catalogue unit (``mV``, ``µS/cm``, ``°F``,
  ``m³/m³`` ...); a unit that does not fit the quantity is ``schema``.
- conductivity keys without a unit are µS/cm: that is what Milesight (``conductivity``,
  ``electricity``, ``ec``) and Dragino (``conduct_SOIL``) decoders report (the
  catalogue's ``soil_ec_ms_cm`` is mS/cm, 1000 times larger).
- ``battery``, ``battery_level``, ``batteryLevel`` are percentages in these decoders
  (Milesight, SenseCAP, ChirpStack), not volts: listed as unknown, not stored as
  ``battery_v``. Volts come as ``Bat``, ``battery_voltage``, ``vbat``, ``battery_v``.
- ``volumetric_water_content`` (Decentlab) is m³/m³: stored ×100 as ``soil_moisture_pct``.
- ``<name>_at_depth_<n>`` (Decentlab DL-SMTP) gets sensor tag ``depth<n>``; describe the
  depth of each in the device registry (``sensors.depth3.depth_cm``). DL-SMTP's
  ``soil_moisture_at_depth_<n>`` is a unitless index, not water content: not mapped.
- ``<quantity>@<depth>cm`` keys work as in the native format.
- ``<type>_<channel>`` keys are The Things Stack's built-in CayenneLPP formatter
  (lorawan-stack pkg/messageprocessors/cayennelpp/keys.go: ``temperature_3``,
  ``relative_humidity_2``, ``barometric_pressure_0``, ``luminosity_4``, ``analog_in_1``,
  ``digital_in_0`` ...): the same quantities and sensor tags (``ch<N>``) as the
  ``cayenne-lpp`` codec gives for those bytes (:mod:`firmware_bridge.cayenne_lpp`), so a
  device reads the same either way; the formatter's float32 values are put back on the LPP
  type's resolution (27.200000762939453 -> 27.2). Types the codec does not map (digital
  and analog in/out, presence, accelerometer, gyrometer, GPS) are listed as unknown.
- ``<type>: {"<channel>": value}`` objects are ChirpStack's built-in Cayenne LPP codec
  (v4 chirpstack/src/codec/cayenne_lpp.rs, ``to_struct``; v3 chirpstack-application-server
  internal/codec/cayennelpp/cayennelpp.go, the same JSON): ``{"temperatureSensor": {"3":
  27.2}, "humiditySensor": {"5": 60.5}, "barometer": {"0": 1017.5}, "illuminanceSensor":
  {"4": 300}}`` map as the TTS keys do (``ch<N>``, the LPP resolution); the unmapped types
  (``digitalInput``, ``digitalOutput``, ``analogInput``, ``analogOutput``,
  ``presenceSensor``, ``accelerometer``, ``gyrometer``, ``gpsLocation``) are listed as
  unknown per channel (``analogInput.1``), as is a channel key that is no number 0..255.
- keys the catalogue does not know, objects, lists, booleans and ``null`` are listed as
  unknown fields and the rest is kept; a known key whose value is no number is ``schema``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Final

from firmware_bridge import reasons
from firmware_bridge.cayenne_lpp import TYPES, LppType, on_grid
from gateway.catalogue import BY_NAME, canonical_name
from gateway.packet import sensor_for_channel, split_key

from .common import CodecError, Decoded, number

Convert = Callable[[float], float]


def _same(x: float) -> float:
    return x


#: quantity -> {unit as written, lower-case without spaces -> conversion to the catalogue unit}
def _fahrenheit(f: float) -> float:
    return (f - 32.0) * 5.0 / 9.0


_UNITS: Final[dict[str, dict[str, Convert]]] = {
    "temperature_c": {"°c": _same, "c": _same, "℃": _same, "degc": _same,
                      "°f": _fahrenheit, "f": _fahrenheit},
    "humidity_pct": {"%": _same, "%rh": _same, "%r.h.": _same},
    "soil_moisture_pct": {"%": _same, "%vwc": _same, "m³/m³": lambda x: x * 100.0,
                          "m3/m3": lambda x: x * 100.0, "m³⋅m⁻³": lambda x: x * 100.0},
    "soil_ec_ms_cm": {"ms/cm": _same, "ds/m": _same, "us/cm": lambda x: x / 1000.0,
                      "µs/cm": lambda x: x / 1000.0, "μs/cm": lambda x: x / 1000.0},
    "battery_v": {"v": _same, "mv": lambda x: x / 1000.0},
    "pressure_hpa": {"hpa": _same, "mbar": _same, "pa": lambda x: x / 100.0,
                     "kpa": lambda x: x * 10.0},
    "illuminance_lux": {"lx": _same, "lux": _same},
    "wind_speed_ms": {"m/s": _same, "km/h": lambda x: x / 3.6},
    "rain_mm": {"mm": _same},
    "rain_total_mm": {"mm": _same, "in": lambda x: x * 25.4},
    "rain_rate_mm_h": {"mm/h": _same, "in/h": lambda x: x * 25.4},
    "water_level_cm": {"cm": _same, "mm": lambda x: x / 10.0, "m": lambda x: x * 100.0},
    "solar_radiation_wm2": {"w/m²": _same, "w/m2": _same},
    "leaf_wetness_pct": {"%": _same},
    "rssi_dbm": {"dbm": _same},
    "snr_db": {"db": _same},
}
_UNITS["soil_temperature_c"] = _UNITS["temperature_c"]

#: Vendor keys (lower-case) whose meaning differs from the plain catalogue alias:
#: (quantity, the unit assumed when the value carries none), or None for "not a reading".
_VENDOR_KEYS: Final[dict[str, tuple[str, str] | None]] = {
    "conductivity": ("soil_ec_ms_cm", "us/cm"),  # Milesight EM500-SMTC (TTN decoder)
    "electricity": ("soil_ec_ms_cm", "us/cm"),  # Milesight's own decoder
    "ec": ("soil_ec_ms_cm", "us/cm"),  # Milesight README
    "conduct_soil": ("soil_ec_ms_cm", "us/cm"),  # Dragino LSE01
    "volumetric_water_content": ("soil_moisture_pct", "m³/m³"),  # Decentlab DL-5TM
    "battery": None,  # a percentage in Milesight/SenseCAP decoders
    "battery_level": None,
    "batterylevel": None,
}
_DEPTH_KEY: Final = re.compile(r"^(.+)_at_depth_(\d{1,2})$")
_UNITLESS_AT_DEPTH: Final = frozenset({"soil_moisture"})  # DL-SMTP: an index, not VWC
_VALUE_WITH_UNIT: Final = re.compile(
    r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s].{0,15})?\s*$"
)


#: TTS CayenneLPP formatter key prefix -> the LPP type id it decoded (keys.go, above).
_TTS_LPP_TYPES: Final[dict[str, int]] = {
    "digital_in": 0x00, "digital_out": 0x01, "analog_in": 0x02, "analog_out": 0x03,
    "luminosity": 0x65, "presence": 0x66, "temperature": 0x67, "relative_humidity": 0x68,
    "accelerometer": 0x71, "barometric_pressure": 0x73, "gyrometer": 0x86, "gps": 0x88,
}
_TTS_LPP_KEY: Final = re.compile(r"^([a-z_]+)_([0-9]{1,3})$")  # ASCII: \d takes "٣" too
#: ChirpStack's Cayenne LPP codec: top-level key -> the LPP type id whose values it holds,
#: keyed by channel (``format!("{}", channel)`` of a u8: "0".."255"). The keys and the
#: nesting are ChirpStack's own (chirpstack/chirpstack, chirpstack/src/codec/cayenne_lpp.rs,
#: ``CayenneLpp::to_struct`` and ``from_struct``; the v3 Go codec in
#: brocaar/chirpstack-application-server internal/codec/cayennelpp/cayennelpp.go has the
#: same JSON tags). Values are f64 there (``i16 as f64 / 10.0`` ...), already on the grid;
#: accelerometer, gyrometer and GPS values are objects ({x, y, z}, {latitude, longitude,
#: altitude}) of types that are not mapped.
_CHIRPSTACK_LPP_TYPES: Final[dict[str, int]] = {
    "digitalInput": 0x00, "digitalOutput": 0x01, "analogInput": 0x02, "analogOutput": 0x03,
    "illuminanceSensor": 0x65, "presenceSensor": 0x66, "temperatureSensor": 0x67,
    "humiditySensor": 0x68, "accelerometer": 0x71, "barometer": 0x73, "gyrometer": 0x86,
    "gpsLocation": 0x88,
}
_CHANNEL: Final = re.compile(r"^(?:0|[1-9][0-9]{0,2})$")  # as ChirpStack writes a u8
_Key = tuple[str, str | None, str, LppType | None]


def _lpp_key(key: str) -> tuple[LppType, str] | None:
    """(LPP type, sensor tag ``ch<N>``) of a TTS CayenneLPP formatter key, else None."""
    m = _TTS_LPP_KEY.match(key)
    if m is None or m.group(1) not in _TTS_LPP_TYPES or int(m.group(2)) > 255:
        return None
    return TYPES[_TTS_LPP_TYPES[m.group(1)]], sensor_for_channel(f"ch{int(m.group(2))}")


def _reading_key(key: str) -> _Key | None:
    """(quantity, unit assumed without one, sensor tag, LPP type whose resolution the value
    has), or None when not a reading."""
    lpp = _lpp_key(key)
    if lpp is not None:
        kind, sensor = lpp
        return None if kind.quantity is None else (kind.quantity, None, sensor, kind)
    found = _key(key)
    return None if found is None else (*found, None)


def _chirpstack_lpp(key: str, raw: Any) -> list[tuple[str, _Key | None, Any]] | None:
    """(field name, reading key or None, value) per channel of a ChirpStack Cayenne LPP
    ``{"<type>": {"<channel>": value}}`` entry, or None when ``key: raw`` is not one."""
    type_id = _CHIRPSTACK_LPP_TYPES.get(key)
    if type_id is None or not isinstance(raw, dict) or "value" in raw:
        return None
    kind = TYPES[type_id]
    entries: list[tuple[str, _Key | None, Any]] = []
    for channel, value in raw.items():
        name = f"{key}.{channel}"
        if kind.quantity is None or not isinstance(channel, str) \
                or not _CHANNEL.match(channel) or int(channel) > 255:
            entries.append((name, None, value))
        else:
            entries.append((name, (kind.quantity, None,
                                   sensor_for_channel(f"ch{int(channel)}"), kind), value))
    return entries or [(key, None, raw)]


def _entries(obj: dict[str, Any]) -> list[tuple[str, _Key | None, Any]]:
    """(field name, reading key or None, value) of each field of a decoded object; a
    ChirpStack Cayenne LPP type object gives one per channel."""
    entries: list[tuple[str, _Key | None, Any]] = []
    for key, raw in obj.items():
        if not isinstance(key, str):
            entries.append((str(key), None, raw))
            continue
        nested = _chirpstack_lpp(key, raw)
        entries.extend(nested if nested is not None else [(key, _reading_key(key), raw)])
    return entries


def _key(key: str) -> tuple[str, str | None, str] | None:
    """(quantity, unit assumed without one, sensor tag), or None when not a reading."""
    lowered = key.lower()
    if lowered in _VENDOR_KEYS:
        hit = _VENDOR_KEYS[lowered]
        return None if hit is None else (hit[0], hit[1], "main")
    m = _DEPTH_KEY.match(key)
    if m:
        base, depth = m.group(1), int(m.group(2))
        if base.lower() in _UNITLESS_AT_DEPTH:
            return None
        found = _key(base)
        return None if found is None else (found[0], found[1], f"depth{depth}")
    name, sensor = split_key(key)
    quantity = canonical_name(name)
    q = BY_NAME.get(quantity) if quantity else None
    if q is None or q.derived:
        return None
    return q.name, None, sensor


def _value(raw: Any) -> tuple[float, str | None] | None:
    """(number, unit or None) of a field value, or None if it is not a number."""
    unit: Any = None
    if isinstance(raw, dict) and "value" in raw:
        raw, unit = raw.get("value"), raw.get("unit")
        if unit is not None and not isinstance(unit, str):
            return None
    if isinstance(raw, str):
        m = _VALUE_WITH_UNIT.match(raw)
        if not m or (m.group(2) and unit):
            return None
        text = float(m.group(1))  # the pattern admits only finite decimal numbers
        if abs(text) == float("inf"):  # ... that may still overflow a float
            return None
        return text, m.group(2) or unit
    value = number(raw)
    return None if value is None else (value, unit)


def _is_reading_shaped(raw: Any) -> bool:
    return (isinstance(raw, int | float | str) and not isinstance(raw, bool)) or (
        isinstance(raw, dict) and "value" in raw)


def decode_object(obj: dict[str, Any]) -> Decoded | CodecError:
    """A decoded-payload object -> readings (see the module docstring for the rules)."""
    out = Decoded()
    for key, found, raw in _entries(obj):
        if found is None or not _is_reading_shaped(raw):
            out.unknown.append(key[:64])
            continue
        quantity, assumed_unit, sensor, lpp_type = found
        parsed = _value(raw)
        if parsed is None:
            return CodecError(reasons.SCHEMA, f"{key}: {str(raw)[:40]!r} is not a number")
        value, unit = parsed
        unit = unit if unit else assumed_unit
        if unit:
            convert = _UNITS.get(quantity, {}).get(unit.replace(" ", "").lower())
            if convert is None:
                return CodecError(reasons.SCHEMA, f"{key}: unit {unit!r} is not one of "
                                  f"{quantity}'s")
            value = convert(value)
            if not math.isfinite(value):  # 1e308 m³/m³ is a float overflow, not a reading
                return CodecError(reasons.SCHEMA, f"{key}: {str(raw)[:40]!r} is out of range")
        if lpp_type is not None:
            value = on_grid(value, lpp_type)
        measurement = BY_NAME[quantity].measurement
        if measurement == "device":
            if quantity != "battery_v":
                out.unknown.append(key)  # radio levels come from the envelope
            elif out.battery_v is not None:
                return CodecError(reasons.SCHEMA, f"battery_v given twice ({key})")
            else:
                out.battery_v = value
        elif (quantity, sensor) in out.readings:
            return CodecError(reasons.SCHEMA, f"{quantity} for {sensor} given twice ({key})")
        else:
            out.readings[(quantity, sensor)] = value
            if obj.get("s_flag") == 0 and value == 0 and key.lower().endswith("_soil"):
                # Dragino's own LSE01 decoder says s_flag 0, "No sensor was identified",
                # and still prints the probe's zeros: a fault, as decode_lse01 reads it
                # from the bytes (never 0 % soil moisture, which would call for water).
                # A value that is not 0 is a reading (older firmware: no s_flag there).
                out.readings[(quantity, sensor)] = math.nan
    return out
