"""rtl_433 JSON events: one line of ``rtl_433 -F json`` (433/868/915 MHz ISM sensors).

::

    {"time" : "2026-11-23 09:11:36", "model" : "AmbientWeather-WH31E", "id" : 195,
     "channel" : 1, "battery_ok" : 1, "temperature_C" : 12.2, "humidity" : 94, ...}

(rtl_433 22.11 puts spaces around colons, newer versions do not: both are JSON.)

- Node: the device registry's node with ``rtl433:<model>/<id>[/<channel>]`` (``ids``;
  ``/``-separated as the registry writes them; matched without regard to case, as the
  Ecowitt and LoRaWAN identities are: an id typed from a label as ``006B58`` is rtl_433's
  ``006b58``), else ``<model>:<id>``, with
  ``:ch<channel>`` when the event has a channel (rtl_433's own MQTT topics key devices
  by model, channel and id the same way). Devices without ``id``
  use ``house_id``/``module_id`` when they have them (e.g. SensibleLiving-Moisture:
  ``SensibleLiving-Moisture:2:24621``); an event with none of them is ``schema``: readings
  from indistinguishable sensors cannot be kept apart.
- Fields map through the catalogue aliases (``temperature_C``, ``humidity``, ``moisture``,
  ``light_lux``, ``wind_avg_m_s``, ``pressure_hPa``, ``snr``) plus a few unit conversions
  rtl_433 spells in the field name (``temperature_F``, ``battery_mV``, ``pressure_kPa``,
  ``wind_avg_km_h``, ``wind_avg_mi_h``). Numbers only: a string or boolean in a mapped
  field is ``schema``.
- Per model, a field can mean another quantity than its name says (``_MODEL_FIELDS``):
  ``Fineoffset-WN34`` (Ecowitt WN34S soil / WN34L water probe, Froggit DP150/DP35) and
  ``Fineoffset-WN34D`` (WN34D water probe) print the probe's temperature as
  ``temperature_C`` (rtl_433 src/devices/fineoffset_wn34.c); it is stored as
  ``soil_temperature_c``, as the Ecowitt upload's ``tf_chN`` from the same probe is
  (firmware_bridge/ecowitt.py), not as air ``temperature_c``.
- Rain: rtl_433's ``rain_mm``/``rain_in`` is the station's running total (tips counted
  since the batteries went in, wrapping at the counter's width), not the catalogue's
  ``rain_mm`` (rain since the previous reading): it becomes ``rain_total_mm`` (inches
  × 25.4) and the store derives ``rain_mm`` from consecutive totals (a wrap or a battery
  change counts as a restart from 0, see gateway/derive.py). ``rain_rate_mm_h`` and
  ``rain_rate_in_h`` become ``rain_rate_mm_h``.
- Deliberately not mapped (listed in ``Packet.unknown_fields``): ``rssi`` (rtl_433's level
  is dB relative to the receiver's full scale, not dBm), ``battery_ok`` (a 0..1 health
  estimate, not a voltage; older rtl_433 versions sent ``battery`` as ``"OK"``/``"LOW"``),
  and every field the catalogue does not know (wind direction and gusts, UV, raw ADC
  values...).
- ``time``: kept as the node time only when it names its zone (``-M time:iso:tz`` or
  ``-M time:utc:iso`` style, or ``-M time:unix``); rtl_433's default local wall clock
  (which zone?) and the ``@0.28s`` offsets of file input are not times of day: the gateway's
  own time is used and ``time`` is listed in ``unknown_fields``.
- Metadata that is no reading: ``model``, the id fields, ``channel``, ``mic`` (how the
  decoder checked integrity), ``protocol``, ``subtype``.

Refusals: ``bad_json`` (not UTF-8 JSON, empty), ``bad_length`` (line over ``MAX_LINE``),
``schema`` (not an object, no ``model``, no id, a bad node name, a non-number reading).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from gateway.catalogue import BY_NAME, canonical_name
from gateway.packet import MAIN_SENSOR, Packet, Rejection

from . import reasons
from .native import parse_timestamp

FORMAT: Final = "rtl433"
MAX_LINE: Final = 8192
_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_ID_KEYS: Final = ("id", "house_id", "module_id")
_META: Final = frozenset({"model", *_ID_KEYS, "channel", "mic", "protocol", "subtype"})
_NOT_MAPPED: Final = frozenset({"rssi", "battery_ok", "battery"})
# Field name -> (catalogue quantity, conversion into the catalogue unit).
_CONVERTED: Final[dict[str, tuple[str, Callable[[float], float]]]] = {
    "temperature_F": ("temperature_c", lambda f: (f - 32.0) * 5.0 / 9.0),
    "battery_mV": ("battery_v", lambda mv: mv / 1000.0),
    "pressure_kPa": ("pressure_hpa", lambda kpa: kpa * 10.0),
    "wind_avg_km_h": ("wind_speed_ms", lambda kmh: kmh / 3.6),
    "wind_avg_mi_h": ("wind_speed_ms", lambda mph: mph * 0.44704),
    # A running total under the catalogue's name for an increment: see the docstring.
    "rain_mm": ("rain_total_mm", float),
    "rain_in": ("rain_total_mm", lambda inches: round(inches * 25.4, 4)),
    "rain_rate_in_h": ("rain_rate_mm_h", lambda inches: inches * 25.4),
}
# Model -> {field -> catalogue quantity} where the model's field means another quantity
# than the catalogue alias of its name (see the docstring).
_MODEL_FIELDS: Final[dict[str, dict[str, str]]] = {
    "Fineoffset-WN34": {"temperature_C": "soil_temperature_c"},
    "Fineoffset-WN34D": {"temperature_C": "soil_temperature_c"},
}
_ZONED_TIME = re.compile(r"(?:[Zz]|[+-]\d{2}:?\d{2})$")
_EPOCH_TEXT = re.compile(r"^\d{9,10}(?:\.\d{1,9})?$")


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


_JSON: Final = json.JSONDecoder(parse_constant=_no_constants)


def _node_time(value: object) -> int | None:
    """rtl_433 ``time`` -> UTC ns when it is unambiguous, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if _EPOCH_TEXT.match(text):
            return parse_timestamp(float(text) if "." in text else int(text))
        if _ZONED_TIME.search(text):
            return parse_timestamp(text)
    except ValueError:
        return None
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _registered(ident: str, registry: Mapping[str, str]) -> str | None:
    """The registry's node for ``ident``, case aside: rtl_433 prints hex ids in lower case,
    a label or a manual may show them in upper case, and either names the same device. The
    config keeps registry ids lower-case (gateway/config/models.py ``_check_external_id``);
    the exact spelling is tried first for a registry built by hand."""
    return registry.get(ident) or registry.get(ident.lower())


def _node_name(obj: dict[str, Any], registry: Mapping[str, str]) -> str | None:
    ids = [obj[k] for k in _ID_KEYS if k in obj]
    if not ids or not all(isinstance(v, int | str) and not isinstance(v, bool) for v in ids):
        return None
    parts = [obj["model"], *(str(v) for v in ids)]
    channel = obj.get("channel")
    if channel is not None and (not isinstance(channel, int | str)
                                or isinstance(channel, bool)):
        return None
    if registry:
        ident = "rtl433:" + "/".join(parts + ([str(channel)] if channel is not None else []))
        registered = _registered(ident, registry)
        if registered is not None:
            return registered
    name = ":".join(parts) + (f":ch{channel}" if channel is not None else "")
    return name if _NODE.match(name) else None


def decode_rtl433_line(line: bytes | str, *, default_site: str | None = None,
                       ids: Mapping[str, str] | None = None) -> Packet | Rejection:
    """One rtl_433 JSON event -> Packet or Rejection. ``ids`` is the device registry's
    ``scheme:id`` -> node map (``rtl433:<model>/<id>[/<channel>]``)."""
    raw = (line.encode("utf-8", "surrogatepass") if isinstance(line, str)
           else bytes(line)).strip()
    if not raw:
        return Rejection(reasons.BAD_JSON, "empty line", raw, FORMAT)
    if len(raw) > MAX_LINE:
        return Rejection(reasons.BAD_LENGTH, f"line of {len(raw)} bytes > {MAX_LINE}", raw,
                         FORMAT)
    try:
        obj = _JSON.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        return Rejection(reasons.BAD_JSON, str(e)[:200], raw, FORMAT)
    if not isinstance(obj, dict):
        return Rejection(reasons.SCHEMA, f"top level is {type(obj).__name__}, not an object",
                         raw, FORMAT)
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        return Rejection(reasons.SCHEMA, "no model: not an rtl_433 device event", raw, FORMAT)
    node = _node_name(obj, ids or {})
    if node is None:
        return Rejection(reasons.SCHEMA, f"{model}: no usable id/house_id/module_id "
                         "(and channel) to name the node", raw, FORMAT)

    readings: dict[tuple[str, str], float] = {}
    device: dict[str, float] = {}
    unknown: list[str] = []
    node_time = _node_time(obj.get("time")) if "time" in obj else None
    if "time" in obj and node_time is None:
        unknown.append("time")
    model_fields = _MODEL_FIELDS.get(model, {})
    for key, value in obj.items():
        if key in _META or key == "time":
            continue
        convert: Callable[[float], float]
        if key in model_fields:
            quantity, convert = model_fields[key], float
        elif key in _CONVERTED:
            quantity, convert = _CONVERTED[key]
        elif key in _NOT_MAPPED:
            unknown.append(key)
            continue
        else:
            name = canonical_name(key)
            q = BY_NAME.get(name) if name else None
            if q is None or q.derived:
                unknown.append(key)
                continue
            quantity, convert = q.name, float
        if not _is_number(value):
            return Rejection(reasons.SCHEMA, f"{key}: {value!r} is not a number", raw, FORMAT,
                             node)
        try:
            number = convert(value)
        except OverflowError:  # a JSON integer beyond float range (Python ints are unbounded)
            return Rejection(reasons.SCHEMA, f"{key}: number out of range", raw, FORMAT, node)
        if BY_NAME[quantity].measurement == "device":
            if quantity in device:
                return Rejection(reasons.SCHEMA, f"{quantity} given twice ({key})", raw,
                                 FORMAT, node)
            device[quantity] = number
        elif (quantity, MAIN_SENSOR) in readings:
            return Rejection(reasons.SCHEMA, f"{quantity} given twice ({key})", raw, FORMAT,
                             node)
        else:
            readings[(quantity, MAIN_SENSOR)] = number
    return Packet(
        node=node, seq=None, readings=readings, format=FORMAT, raw=raw,
        node_time_ns=node_time, site=default_site, battery_v=device.get("battery_v"),
        rssi_dbm=device.get("rssi_dbm"), snr_db=device.get("snr_db"),
        unknown_fields=tuple(unknown),
    )
