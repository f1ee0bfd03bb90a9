"""Ecowitt "customized upload" bodies: what a GW1000/GW1100/GW2000 gateway or an HP2550
console POSTs (``application/x-www-form-urlencoded``, Ecowitt protocol) every N seconds.

::

    PASSKEY=34271334ED1FADA6D8B988B14267E55D&stationtype=GW1100B_V2.0.3
    &dateutc=2021-08-23+23%3A13%3A41&tempinf=76.5&humidityin=46&baromabsin=29.244
    &tempf=91.4&humidity=48&soilmoisture1=40&soilbatt1=1.5&tf_ch1=84.7&tf_batt1=1.60 ...

(one line on the wire). The gateway always sends imperial units, whatever its display
shows; the unit is in the field name (``f`` °F, ``in`` inches / inHg, ``mph``), and the
few names without one (``tf_chN`` °F, ``*_piezo`` inches) use the same units. Home
Assistant's aioecowitt and weewx-interceptor read every body so; the metric names some tools
show (``tempc``, ``temp1c``, ``tempinc``...) are aioecowitt's own conversions, never posted.

**Metric values under imperial names.** Nothing in a body says which units its numbers are
in but the names. ecowitt2mqtt has an ``input_unit_system: metric`` option for a gateway
that would send metric numbers under these names (its ``payload_gw1000bpro_metric``
fixture: ``tempf=-4.4``, ``baromabsin=837.793``, ``yearlyrainin=112.8``). Such a body gives
itself away only by its pressure: station pressure never exceeds the catalogue's 1100 hPa,
32.5 inHg, while the same pressure in hPa, mmHg or kPa is larger. A body whose
``baromabsin`` or ``baromrelin`` is above that has every field that needs a unit conversion
refused (``unit_mismatch``: temperatures, pressure, wind, rain) instead of converted
(that fixture's 26.4 °C indoors would be stored as -3.11 °C, its 112.8 mm of rain as
2865 mm); its percentages, W/m² and volts are the same in any unit system and are kept.
A metric body without a pressure field cannot be told apart.

**Nodes.** One body becomes one packet per physical device that can sit in its own plot,
plus one for the station itself:

==========================  ===========  ======================================  ============
fields                      node channel readings (catalogue quantity)             battery_v
==========================  ===========  ======================================  ============
``soilmoistureN``           ``soilN``    ``soil_moisture_pct`` (WH51, %)          ``soilbattN``
``tempNf``, ``humidityN``   ``chN``      ``temperature_c``, ``humidity_pct``      (flag only)
                                         (WH31 channel N)
``tf_chN``                  ``tfN``      ``soil_temperature_c`` (WN34 probe)      ``tf_battN``
``leafwetness_chN``         ``leafN``    ``leaf_wetness_pct`` (WN35)              ``leaf_battN``
``tempf``, ``humidity``,    (station)    ``temperature_c``, ``humidity_pct``,     none
``baromabsin``,                          ``pressure_hpa``, ``wind_speed_ms``,
``windspeedmph``,                        ``solar_radiation_wm2`` (sensor ``main``)
``solarradiation``
``tempinf``, ``humidityin`` (station)    the same, sensor ``indoor`` (the
                                         gateway's own sensor)
``totalrainin``, else       (station)    ``rain_total_mm`` (sensor ``main``);
``yearlyrainin``                         the store derives ``rain_mm``
``train_piezo``, else       (station)    ``rain_total_mm`` (sensor ``piezo``,
``yrain_piezo``                          the WS90's piezo gauge)
``rainratein``,             (station)    ``rain_rate_mm_h`` (``main``, ``piezo``)
``rrain_piezo``
==========================  ===========  ======================================  ============

A node's name comes from the device registry: ``devices.<node>.ids`` entries
``ecowitt:<station>/<channel>`` (``ecowitt:<station>`` for the station's own sensors),
matched without regard to case; else the default ``ecowitt-<station12>[-<channel>]``,
where ``<station12>`` is the first 12 letters and digits of the station id, lower-cased.
The station id is ``PASSKEY`` (what Ecowitt gateways send: a hash of their MAC), else
``MAC``; a body with neither cannot be told apart from another station's and is refused.

**Conversions:** °F -> °C ``(f - 32) * 5/9`` (2 decimals; the gateway sends 0.1 °F),
inHg -> hPa ``× 33.8638866667`` (2 decimals), mph -> m/s ``× 0.44704`` (3 decimals),
in -> mm ``× 25.4`` (4 decimals: every 0.001 in step), in/h -> mm/h (2 decimals);
percentages and W/m² as sent.

**Rain** comes as running totals, the catalogue's ``rain_mm`` is rain since the previous
reading: the decoder passes on one total per gauge as ``rain_total_mm`` (the raw number,
for provenance) and the store derives ``rain_mm`` from consecutive totals
(gateway/store/counters.py, rules in gateway/derive.py). It takes the total that never
resets (``totalrainin``; ``train_piezo``) when the body has it, else the yearly one,
whose New Year reset the counter step treats as a restart from 0.

**Time:** ``dateutc`` (``YYYY-MM-DD HH:MM:SS``, UTC, the gateway's clock, set by NTP) is
the node time of every packet, so the skew policy applies to it. ``now`` (Wunderground
style) or no ``dateutc`` leaves the time to the gateway; an unreadable one is refused.

**Deliberately not mapped** (listed in ``Packet.unknown_fields`` of the station packet):

- the other rain totals (``eventrainin``, ``hourlyrainin``, ``dailyrainin``,
  ``weeklyrainin``, ``monthlyrainin``, the yearly one when the total is there, and their
  ``*_piezo`` twins, ``rain24_piezo``): the same rain as the total that is kept, reset
  more often; ``srain_piezo`` (a raining 0/1 flag).
- ``baromrelin``: sea-level pressure computed with the offset set in the app; the
  catalogue's ``pressure_hpa`` is station pressure (``baromabsin``).
- battery flags: ``battN`` (WH31), ``wh25batt``, ``wh26batt``, ``wh65batt`` are 0/1 "low"
  flags, ``wh57batt``, ``pm25battN``, ``co2_batt`` 0..6 levels; only volts become
  ``battery_v``. The station node has no single battery (its outdoor array, rain gauge and
  console each have their own: ``wh80batt``, ``wh90batt``, ``wh40batt``, ``console_batt``),
  so those are left out too rather than pinned on the wrong device.
- wind direction and gusts, UV index, lightning, PM2.5, CO2, leak, ``soiladN`` (the
  WH51's raw count), and any field this module does not know.

Metadata that is no reading: ``PASSKEY``, ``MAC``, ``stationtype``, ``model``, ``freq``,
``runtime``, ``heap``, ``interval``, ``dateutc``.

**Refusals** (each a :class:`Rejection` with the whole body): ``bad_form`` (not a UTF-8
form body, a repeated key, over ``max_body`` bytes or ``MAX_FIELDS`` fields), ``schema``
(no station id, a Wunderground-protocol body, an unreadable ``dateutc``, no field that
becomes a reading; and, next to the packets of the rest of the body, a mapped field whose
value is not a plain decimal number), ``unknown_station`` (an allow-list is given and the
station is not on it), ``unit_mismatch`` (next to the packets of the unit-free fields: the
fields whose units the body's pressure shows to be other than their names say).

Dedup: there is no sequence number. Every packet carries ``dateutc``, so a body posted
twice gives the same (node, time, readings) digest and is stored once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl

from gateway.catalogue import BY_NAME
from gateway.packet import MAIN_SENSOR, Packet, Rejection

from . import reasons

FORMAT: Final = "ecowitt"
SCHEME: Final = "ecowitt"  # devices.<node>.ids: "ecowitt:<station>/<channel>"
#: The default ``max_body``; a GW2000 with every sensor sends about 2 KiB.
MAX_BODY: Final = 16384
MAX_FIELDS: Final = 400
INDOOR_SENSOR: Final = "indoor"
PIEZO_SENSOR: Final = "piezo"  # the WS90's piezo rain gauge, next to a tipping bucket
_STATION_KEYS: Final = ("PASSKEY", "passkey", "MAC", "mac")
_META: Final = frozenset({*_STATION_KEYS, "stationtype", "model", "freq", "runtime", "heap",
                          "interval", "dateutc"})
_NUMBER: Final = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_DATEUTC: Final = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$")
_NOT_A_NAME: Final = re.compile(r"[^0-9a-z]")
_HPA_PER_INHG: Final = 33.8638866667
#: The pressure fields, and the largest station pressure in inHg (the catalogue's maximum):
#: hPa, mmHg and kPa values of any real pressure are above it.
_PRESSURE_KEYS: Final = ("baromabsin", "baromrelin")
_MAX_PRESSURE_INHG: Final = BY_NAME["pressure_hpa"].maximum / _HPA_PER_INHG


def _fahrenheit(f: float) -> float:
    return round((f - 32.0) * 5.0 / 9.0, 2)


def _inhg(inhg: float) -> float:
    return round(inhg * _HPA_PER_INHG, 2)


def _mph(mph: float) -> float:
    return round(mph * 0.44704, 3)


def _inches(inches: float) -> float:
    return round(inches * 25.4, 4)  # 0.001 in = 0.0254 mm: 4 decimals keep every step


def _inches_per_hour(inches: float) -> float:
    return round(inches * 25.4, 2)


def _as_sent(value: float) -> float:
    return value


# The conversions out of the protocol's imperial units: what a field that uses one holds is
# wrong when the body's values are not in those units (see ``_not_imperial``).
_FROM_IMPERIAL: Final = frozenset({_fahrenheit, _inhg, _mph, _inches, _inches_per_hour})


# Station fields: name -> (quantity, sensor tag, conversion into the catalogue unit).
_STATION: Final[dict[str, tuple[str, str, Callable[[float], float]]]] = {
    "tempf": ("temperature_c", MAIN_SENSOR, _fahrenheit),
    "humidity": ("humidity_pct", MAIN_SENSOR, _as_sent),
    "baromabsin": ("pressure_hpa", MAIN_SENSOR, _inhg),
    "windspeedmph": ("wind_speed_ms", MAIN_SENSOR, _mph),
    "solarradiation": ("solar_radiation_wm2", MAIN_SENSOR, _as_sent),
    "tempinf": ("temperature_c", INDOOR_SENSOR, _fahrenheit),
    "humidityin": ("humidity_pct", INDOOR_SENSOR, _as_sent),
    "rainratein": ("rain_rate_mm_h", MAIN_SENSOR, _inches_per_hour),
    "rrain_piezo": ("rain_rate_mm_h", PIEZO_SENSOR, _inches_per_hour),
}
# Rain totals, best first per sensor tag: a total that never resets on a calendar boundary,
# else the yearly one (which the counter step sees as a restart from 0 each new year). The
# daily, weekly, monthly, event and hourly totals are left out: the chosen one holds the
# same rain, and they reset far more often.
_RAIN_TOTALS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (MAIN_SENSOR, ("totalrainin", "yearlyrainin")),
    (PIEZO_SENSOR, ("train_piezo", "yrain_piezo")),  # WS90 haptic gauge
)
# Channel fields: pattern with the channel number as group 1 -> (channel prefix, quantity
# or "battery_v", conversion).
_CHANNELS: Final[tuple[tuple[re.Pattern[str], str, str, Callable[[float], float]], ...]] = (
    (re.compile(r"^soilmoisture([1-9]\d?)$"), "soil", "soil_moisture_pct", _as_sent),
    (re.compile(r"^soilbatt([1-9]\d?)$"), "soil", "battery_v", _as_sent),
    (re.compile(r"^temp([1-9]\d?)f$"), "ch", "temperature_c", _fahrenheit),
    (re.compile(r"^humidity([1-9]\d?)$"), "ch", "humidity_pct", _as_sent),
    (re.compile(r"^tf_ch([1-9]\d?)$"), "tf", "soil_temperature_c", _fahrenheit),
    (re.compile(r"^tf_batt([1-9]\d?)$"), "tf", "battery_v", _as_sent),
    (re.compile(r"^leafwetness_ch([1-9]\d?)$"), "leaf", "leaf_wetness_pct", _as_sent),
    (re.compile(r"^leaf_batt([1-9]\d?)$"), "leaf", "battery_v", _as_sent),
)


@dataclass(slots=True)
class _Device:
    readings: dict[tuple[str, str], float] = field(default_factory=dict)
    battery_v: float | None = None


def registry_names(external_ids: Mapping[str, str]) -> dict[str, str]:
    """The ``ecowitt:`` entries of ``Settings.external_ids``, keys lower-cased for lookup."""
    return {ident.lower(): node for ident, node in external_ids.items()
            if ident.startswith(SCHEME + ":")}


def default_node(station: str, channel: str | None) -> str | None:
    """``ecowitt-<first 12 letters/digits of the station, lower-case>[-<channel>]``."""
    short = _NOT_A_NAME.sub("", station.lower())[:12]
    if not short:
        return None
    return f"ecowitt-{short}" + (f"-{channel}" if channel else "")


def _node_time(text: str) -> int | None:
    """``dateutc`` -> UTC ns; raises ValueError for text that is no such time."""
    m = _DATEUTC.match(text.strip())
    if m is None:
        raise ValueError("not YYYY-MM-DD HH:MM:SS")
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    stamp = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return int(stamp.timestamp()) * 1_000_000_000


def parse_form(body: bytes) -> dict[str, str] | str:
    """The body's fields, or why it is not a form body (a string)."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True,
                          errors="strict", max_num_fields=MAX_FIELDS)
    except ValueError as e:  # UnicodeDecodeError, a field without "=", too many fields
        return str(e)[:200] or type(e).__name__
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            return f"{key!r} given twice"
        fields[key] = value
    return fields


def _not_imperial(fields: Mapping[str, str]) -> str | None:
    """Why the body's values are not in the imperial units their names say (a pressure
    field above any station pressure in inHg), or None when nothing shows that."""
    for key in _PRESSURE_KEYS:
        text = fields.get(key, "")
        if _NUMBER.match(text) and float(text) > _MAX_PRESSURE_INHG:
            return (f"{key}={text[:20]} is no pressure in inHg (station pressure is at most "
                    f"{_MAX_PRESSURE_INHG:.1f} inHg; hPa, mmHg and kPa values are larger)")
    return None


def decode_ecowitt(
    body: bytes,
    *,
    default_site: str | None = None,
    names: Mapping[str, str] | None = None,
    stations: frozenset[str] | None = None,
    max_body: int = MAX_BODY,
) -> list[Packet | Rejection]:
    """One upload body -> its packets (station and channels), and rejections.

    ``names`` is :func:`registry_names` of the device registry; ``stations`` an optional
    allow-list of lower-cased station ids (PASSKEY or MAC); ``max_body`` the longest body
    taken, in bytes. Never raises.
    """
    raw = bytes(body)
    if not raw.strip():
        return [Rejection(reasons.BAD_FORM, "empty body", raw, FORMAT)]
    if len(raw) > max_body:
        return [Rejection(reasons.BAD_FORM, f"body of {len(raw)} bytes > {max_body}", raw,
                          FORMAT)]
    fields = parse_form(raw.strip(b"&\r\n\t "))
    if isinstance(fields, str):
        return [Rejection(reasons.BAD_FORM, fields, raw, FORMAT)]
    station = next((fields[k].strip() for k in _STATION_KEYS if fields.get(k, "").strip()),
                   None)
    if station is None:
        hint = ("a Wunderground-protocol upload (ID/PASSWORD): set the customized upload's "
                "protocol to Ecowitt" if "ID" in fields or "PASSWORD" in fields else
                "not an Ecowitt upload")
        return [Rejection(reasons.SCHEMA, f"no PASSKEY or MAC: {hint}", raw, FORMAT)]
    if default_node(station, None) is None:
        return [Rejection(reasons.SCHEMA, f"station id {station[:40]!r} has no letters or "
                          "digits to name a node", raw, FORMAT)]
    if stations is not None and station.lower() not in stations:
        return [Rejection(reasons.UNKNOWN_STATION,
                          f"station {station!r} is not in sources.http.stations", raw, FORMAT)]
    node_time: int | None = None
    dateutc = fields.get("dateutc", "now")
    if dateutc.strip().lower() != "now":
        try:
            node_time = _node_time(dateutc)
        except (ValueError, OverflowError) as e:  # bad calendar date, year 0
            return [Rejection(reasons.SCHEMA, f"dateutc {dateutc[:40]!r}: {e}", raw, FORMAT)]

    devices: dict[str | None, _Device] = {}  # channel (None: the station) -> its values
    out: list[Packet | Rejection] = []
    unknown: list[str] = []
    wrong_units: list[str] = []  # fields refused for ``wrong_units_why``
    wrong_units_why = _not_imperial(fields)
    rain_totals = _rain_totals(fields)
    for key, text in fields.items():
        if key in _META:
            continue
        target = rain_totals.get(key) or _target(key)
        if target is None:
            unknown.append(key)
            continue
        channel, quantity, sensor, convert = target
        if not _NUMBER.match(text):
            out.append(Rejection(reasons.SCHEMA, f"{key}: {text[:40]!r} is not a number", raw,
                                 FORMAT, _node(station, channel, names)))
            continue
        if wrong_units_why is not None and convert in _FROM_IMPERIAL:
            wrong_units.append(key)
            continue
        value = convert(float(text))
        device = devices.setdefault(channel, _Device())
        if quantity == "battery_v":
            device.battery_v = value
        else:
            device.readings[(quantity, sensor)] = value

    if wrong_units:
        detail = (f"{wrong_units_why}: the values are not in the units their names say (°F, "
                  "inHg, in, mph); not stored: " + ", ".join(wrong_units))
        out.append(Rejection(reasons.UNIT_MISMATCH, detail[:400], raw, FORMAT,
                             _node(station, None, names)))
    if not devices and not out:
        return [Rejection(reasons.SCHEMA, "no field that Satoyama stores (unknown: "
                          + ", ".join(unknown[:20]) + ")", raw, FORMAT)]
    for channel, device in devices.items():
        out.append(Packet(
            node=_node(station, channel, names), seq=None, readings=device.readings,
            format=FORMAT, raw=raw,
            node_time_ns=node_time, site=default_site, battery_v=device.battery_v,
            unknown_fields=tuple(unknown) if channel is None else (),
        ))
    return out


def _rain_totals(fields: Mapping[str, str]
                 ) -> dict[str, tuple[None, str, str, Callable[[float], float]]]:
    """The one rain total per sensor tag that this body carries (see ``_RAIN_TOTALS``)."""
    chosen: dict[str, tuple[None, str, str, Callable[[float], float]]] = {}
    for sensor, keys in _RAIN_TOTALS:
        key = next((k for k in keys if k in fields), None)
        if key is not None:
            chosen[key] = (None, "rain_total_mm", sensor, _inches)
    return chosen


def _target(key: str) -> tuple[str | None, str, str, Callable[[float], float]] | None:
    """(channel or None for the station, quantity, sensor tag, conversion) of a field."""
    station = _STATION.get(key)
    if station is not None:
        return None, *station
    for pattern, prefix, quantity, convert in _CHANNELS:
        m = pattern.match(key)
        if m:
            return f"{prefix}{m.group(1)}", quantity, MAIN_SENSOR, convert
    return None


def _node(station: str, channel: str | None, names: Mapping[str, str] | None) -> str:
    """The registry's name for the device, else the default (the caller checked that the
    station id makes one)."""
    ident = f"{SCHEME}:{station}" + (f"/{channel}" if channel else "")
    registered = names.get(ident.lower()) if names else None
    return registered or default_node(station, channel) or ident
