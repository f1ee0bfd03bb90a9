"""The binary frame's reading types: one table read by the encoder, the decoder and the docs.

``value = raw / divisor`` in the catalogue unit of ``quantity``. The most negative int16
(0x8000) and the all-ones unsigned value (0xFFFF, 0xFFFFFFFF) are reserved: the node sends
them when a sensor fails, and they decode as NaN so that validation rejects that one reading
with a reason while the rest of the packet is kept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final, Literal

from gateway.catalogue import BY_NAME
from gateway.packet import MAIN_SENSOR, sensor_for_channel

Kind = Literal["int16", "uint16", "uint32"]

#: kind -> (struct format, fault sentinel as unpacked, smallest valid raw, largest valid raw)
_KINDS: Final[dict[str, tuple[str, int, int, int]]] = {
    "int16": (">h", -0x8000, -0x7FFF, 0x7FFF),
    "uint16": (">H", 0xFFFF, 0, 0xFFFE),
    "uint32": (">I", 0xFFFFFFFF, 0, 0xFFFFFFFE),
}

MAX_CHANNEL: Final = 250
BATTERY_QUANTITY: Final = "battery_v"


@dataclass(frozen=True, slots=True)
class ReadingType:
    code: int
    quantity: str  # canonical catalogue name
    kind: Kind
    divisor: int  # value = raw / divisor
    codec: struct.Struct = field(init=False, repr=False, compare=False)
    size: int = field(init=False, repr=False, compare=False)
    fault_raw: int = field(init=False, repr=False, compare=False)
    min_raw: int = field(init=False, repr=False, compare=False)
    max_raw: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fmt, fault, lo, hi = _KINDS[self.kind]
        codec = struct.Struct(fmt)
        object.__setattr__(self, "codec", codec)
        object.__setattr__(self, "size", codec.size)
        object.__setattr__(self, "fault_raw", fault)
        object.__setattr__(self, "min_raw", lo)
        object.__setattr__(self, "max_raw", hi)

    @property
    def scale(self) -> float:
        """Value of one raw step, as written in PROTOCOL.md (``×0.01``)."""
        return 1 / self.divisor

    @property
    def min_value(self) -> float:
        return self.min_raw / self.divisor

    @property
    def max_value(self) -> float:
        return self.max_raw / self.divisor


READING_TYPES: Final[tuple[ReadingType, ...]] = (
    ReadingType(0x01, "temperature_c", "int16", 100),
    ReadingType(0x02, "humidity_pct", "uint16", 100),
    ReadingType(0x03, "soil_moisture_pct", "uint16", 100),
    ReadingType(0x04, "soil_temperature_c", "int16", 100),
    ReadingType(0x05, "soil_ec_ms_cm", "uint16", 1000),
    ReadingType(0x06, "illuminance_lux", "uint32", 1),
    ReadingType(0x07, "rain_mm", "uint16", 10),
    ReadingType(0x08, "wind_speed_ms", "uint16", 100),
    ReadingType(0x09, "pressure_hpa", "uint16", 10),
    ReadingType(0x0A, "leaf_wetness_pct", "uint16", 100),
    ReadingType(0x0B, "water_level_cm", "int16", 10),
    ReadingType(0x0C, "solar_radiation_wm2", "uint16", 10),
    ReadingType(0x20, BATTERY_QUANTITY, "uint16", 1000),  # -> Packet.battery_v
)

BY_CODE: Final[dict[int, ReadingType]] = {t.code: t for t in READING_TYPES}
BY_QUANTITY: Final[dict[str, ReadingType]] = {t.quantity: t for t in READING_TYPES}

assert all(t.quantity in BY_NAME for t in READING_TYPES), "type table names a non-quantity"

#: sensor tag for every channel byte (None for the reserved 251..255)
CHANNEL_TAGS: Final[tuple[str | None, ...]] = tuple(
    sensor_for_channel(ch) if ch <= MAX_CHANNEL else None for ch in range(256)
)
_TAG_CHANNELS: Final[dict[str, int]] = {
    tag: ch for ch, tag in enumerate(CHANNEL_TAGS) if tag is not None
}


def channel_for_sensor(tag: str) -> int | None:
    """Inverse of ``sensor_for_channel``: ``'main'`` -> 0, ``'soil_10cm'`` -> 10, else None."""
    return _TAG_CHANNELS.get(tag)


def depth_suffix(tag: str) -> str | None:
    """JSON key suffix for a sensor tag: ``'main'`` -> None, ``'soil_10cm'`` -> ``'10cm'``."""
    if tag == MAIN_SENSOR:
        return None
    ch = channel_for_sensor(tag)
    return f"{ch}cm" if ch is not None else tag


def type_table_markdown() -> str:
    """The type table as it appears in PROTOCOL.md (a test keeps the two identical)."""
    lines = [
        "| TYPE | quantity | VALUE | scale | valid raw | decoded range | fault raw |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in READING_TYPES:
        width = {"int16": 4, "uint16": 4, "uint32": 8}[t.kind]
        fault = t.fault_raw & ((1 << (4 * width)) - 1)
        lines.append(
            f"| 0x{t.code:02X} | `{t.quantity}` | {t.kind} | ×{t.scale:g} "
            f"| {t.min_raw}..{t.max_raw} | {t.min_value:.10g}..{t.max_value:.10g} "
            f"| 0x{fault:0{width}X} |"
        )
    return "\n".join(lines)
