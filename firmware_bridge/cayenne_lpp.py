"""Cayenne LPP (Low Power Payload) uplinks: a LoRaWAN FRMPayload of (channel, type, value).

::

    03 67 01 10  05 67 00 ff     ch 3 temperature 0x0110 = 272 -> 27.2 °C,
    |  |  `---'                  ch 5 temperature 0x00ff = 255 -> 25.5 °C
    |  type (IPSO object id - 3200)
    channel (device-defined, 0..255)

Values are big-endian, signed where the table says so, and scaled by the type's
resolution. The payload carries no node identity: the caller passes the node (from the
LoRaWAN envelope, or the ``lpp-hex`` replay line ``<node> <hex>``).

Mapping to the sensor catalogue (everything else is listed in ``Packet.unknown_fields``
as ``ch<N>:<type>``, so it stays visible but is not stored as a reading):

====  =====================  =====  ==========  =========  ======================
type  LPP name               bytes  resolution  signed     catalogue quantity
====  =====================  =====  ==========  =========  ======================
0x67  temperature            2      0.1 °C      yes        temperature_c
0x68  relative humidity      1      0.5 %       no         humidity_pct
0x73  barometer              2      0.1 hPa     no         pressure_hpa
0x65  illuminance            2      1 lx        no         illuminance_lux
====  =====================  =====  ==========  =========  ======================

Parsed but not mapped (no catalogue quantity, or not one we can name without guessing):
digital in/out (0x00/0x01), analog in/out (0x02/0x03, 0.01 signed, unitless), presence
(0x66), accelerometer (0x71), gyrometer (0x86), GPS (0x88), and the extended types of the
ElectronicCats CayenneLPP library that have a fixed size (voltage 0x74 -- of what? a
battery only by convention --, current, frequency, percentage, altitude, concentration,
power, distance, energy, direction, unix time, colour, switch). Their sizes are known, so
the rest of the payload still decodes.

The sensor tag is ``ch<N>`` for every channel: LPP channel numbers are chosen by each
device's firmware, not depths (``soil_<d>cm``) and not "the main sensor", so the decoder
keeps the number rather than guess. (Dew point is derived per sensor tag, so a device
sending temperature on ch1 and humidity on ch2 gets none: a device-registry mapping of
channels is where that belongs, not this pure decoder.)

Refusals (never an exception): ``bad_length`` (empty or over-long payload),
``unknown_reading_type`` (a type byte not in the table: its size is unknown, so nothing
after it can be read), ``truncated`` (a value cut by the end of the payload),
``duplicate_reading`` (the same channel and type twice). TTN's Cayenne *downlink* format
(channel + 2-byte value, no type) is a different layout and is refused as uplink.

``lpp-hex`` replay lines are ``<node> <hex payload>`` (whitespace between, hex in either
case); a line that is not two such fields is ``bad_lpp_line``, odd or non-hex digits
``bad_hex``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from gateway.packet import Packet, Rejection, sensor_for_channel

from . import reasons

FORMAT: Final = "lpp"
LINE_FORMAT: Final = "lpp-hex"
_NODE = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # the native contract's node names
MAX_PAYLOAD: Final = 242  # largest LoRaWAN FRMPayload (DR with 242-byte N)


@dataclass(frozen=True, slots=True)
class LppType:
    type_id: int
    name: str
    size: int  # bytes of the whole value (all axes)
    axes: tuple[tuple[int, float, bool], ...]  # (bytes, resolution, signed) per axis
    quantity: str | None = None  # catalogue quantity, when the value is one


def _t(type_id: int, name: str, *axes: tuple[int, float, bool],
       quantity: str | None = None) -> LppType:
    return LppType(type_id, name, sum(a[0] for a in axes), axes, quantity)


# IPSO-derived type table: the Cayenne spec types, then the ElectronicCats extensions.
TYPES: Final[dict[int, LppType]] = {t.type_id: t for t in (
    _t(0x00, "digital_input", (1, 1, False)),
    _t(0x01, "digital_output", (1, 1, False)),
    _t(0x02, "analog_input", (2, 0.01, True)),
    _t(0x03, "analog_output", (2, 0.01, True)),
    _t(0x65, "illuminance", (2, 1, False), quantity="illuminance_lux"),
    _t(0x66, "presence", (1, 1, False)),
    _t(0x67, "temperature", (2, 0.1, True), quantity="temperature_c"),
    _t(0x68, "humidity", (1, 0.5, False), quantity="humidity_pct"),
    _t(0x71, "accelerometer", (2, 0.001, True), (2, 0.001, True), (2, 0.001, True)),
    _t(0x73, "barometer", (2, 0.1, False), quantity="pressure_hpa"),
    _t(0x86, "gyrometer", (2, 0.01, True), (2, 0.01, True), (2, 0.01, True)),
    _t(0x88, "gps", (3, 0.0001, True), (3, 0.0001, True), (3, 0.01, True)),
    # ElectronicCats/CayenneLPP extensions (fixed sizes, so they can be skipped safely)
    _t(0x74, "voltage", (2, 0.01, False)),
    _t(0x75, "current", (2, 0.001, False)),
    _t(0x76, "frequency", (4, 1, False)),
    _t(0x78, "percentage", (1, 1, False)),
    _t(0x79, "altitude", (2, 1, True)),
    _t(0x7D, "concentration", (2, 1, False)),
    _t(0x80, "power", (2, 1, False)),
    _t(0x82, "distance", (4, 0.001, False)),
    _t(0x83, "energy", (4, 0.001, False)),
    _t(0x84, "direction", (2, 1, False)),
    _t(0x85, "unixtime", (4, 1, False)),
    _t(0x87, "colour", (1, 1, False), (1, 1, False), (1, 1, False)),
    _t(0x8E, "switch", (1, 1, False)),
)}


@dataclass(frozen=True, slots=True)
class LppItem:
    channel: int
    type: LppType
    values: tuple[float, ...]  # one per axis, scaled


def _scaled(raw: int, resolution: float) -> float:
    # Dividing by the inverse keeps decimal values exact where multiplying would not
    # (272 * 0.1 = 27.200000000000003, 272 / 10 = 27.2).
    return raw / round(1 / resolution) if resolution < 1 else float(raw * resolution)


def on_grid(value: float, kind: LppType) -> float:
    """A value of ``kind`` that went through float32 elsewhere, back on the type's
    resolution and scaled as :func:`parse_lpp` scales it: The Things Stack's CayenneLPP
    formatter gives ``float32(272) / 10`` as 27.200000762939453, which is 27.2 here. A
    value the type's bytes cannot carry (nor NaN, nor infinity) did not come from LPP
    bytes: returned unchanged, for validation to judge."""
    size, resolution, _ = kind.axes[0]
    steps = value / resolution
    if not abs(steps) < 2 ** (8 * size):
        return value
    return _scaled(round(steps), resolution)


def parse_lpp(payload: bytes, fmt: str = FORMAT) -> list[LppItem] | Rejection:
    """Every (channel, type, value) of an LPP uplink, in order, or the first refusal."""
    raw = bytes(payload)
    if not raw:
        return Rejection(reasons.BAD_LENGTH, "empty payload", raw, fmt)
    if len(raw) > MAX_PAYLOAD:
        return Rejection(reasons.BAD_LENGTH, f"payload of {len(raw)} bytes > {MAX_PAYLOAD}",
                         raw, fmt)
    items: list[LppItem] = []
    seen: set[tuple[int, int]] = set()
    i = 0
    while i < len(raw):
        if i + 2 > len(raw):
            return Rejection(reasons.TRUNCATED, f"byte {i}: channel without a type byte",
                             raw, fmt)
        channel, type_id = raw[i], raw[i + 1]
        kind = TYPES.get(type_id)
        if kind is None:
            return Rejection(reasons.UNKNOWN_READING_TYPE,
                             f"byte {i + 1}: type 0x{type_id:02x} (channel {channel})",
                             raw, fmt)
        start = i + 2
        if start + kind.size > len(raw):
            return Rejection(reasons.TRUNCATED,
                             f"byte {i}: {kind.name} needs {kind.size} bytes, "
                             f"{len(raw) - start} left", raw, fmt)
        if (channel, type_id) in seen:
            return Rejection(reasons.DUPLICATE_READING,
                             f"channel {channel} {kind.name} given twice", raw, fmt)
        seen.add((channel, type_id))
        values = []
        for size, resolution, signed in kind.axes:
            number = int.from_bytes(raw[start:start + size], "big", signed=signed)
            values.append(_scaled(number, resolution))
            start += size
        items.append(LppItem(channel, kind, tuple(values)))
        i = start
    return items


def decode_lpp(payload: bytes, node: str, *, site: str | None = None,
               seq: int | None = None, rssi_dbm: float | None = None,
               snr_db: float | None = None, fmt: str = FORMAT) -> Packet | Rejection:
    """An LPP uplink from ``node`` -> Packet (readings keyed by (quantity, ``ch<N>``)),
    or Rejection. Envelope fields (seq = LoRaWAN FCnt, radio levels) are passed through."""
    parsed = parse_lpp(payload, fmt)
    raw = bytes(payload)
    if isinstance(parsed, Rejection):
        parsed.node, parsed.seq = node, seq
        return parsed
    readings: dict[tuple[str, str], float] = {}
    unknown: list[str] = []
    for item in parsed:
        if item.type.quantity is None:
            unknown.append(f"ch{item.channel}:{item.type.name}")
        else:
            readings[(item.type.quantity, sensor_for_channel(f"ch{item.channel}"))] = \
                item.values[0]
    return Packet(node=node, seq=seq, readings=readings, format=fmt, raw=raw, site=site,
                  rssi_dbm=rssi_dbm, snr_db=snr_db, unknown_fields=tuple(unknown))


def decode_lpp_hex_line(line: bytes, *, default_site: str | None = None) -> Packet | Rejection:
    """One ``lpp-hex`` replay line ``<node> <hex>`` -> Packet or Rejection. The whole line
    is the evidence (``raw``): it names the node, which the payload alone does not."""
    raw = bytes(line).strip()
    fields = raw.split()
    if len(fields) != 2 or not _NODE.match(fields[0]):
        return Rejection(reasons.BAD_LPP_LINE, f"{len(fields)} fields; expected <node> <hex>",
                         raw, LINE_FORMAT)
    node = fields[0].decode("ascii")
    try:
        payload = bytes.fromhex(fields[1].decode("ascii"))
    except ValueError as e:  # UnicodeDecodeError is a ValueError
        return Rejection(reasons.BAD_HEX, str(e)[:200], raw, LINE_FORMAT, node)
    result = decode_lpp(payload, node, site=default_site, fmt=LINE_FORMAT)
    result.raw = raw
    return result
