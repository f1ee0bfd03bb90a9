"""Typed results of decoding: what every decoder returns and the pipeline consumes.

A decoder turns bytes or JSON into either a :class:`Packet` or a :class:`Rejection`; it
never raises for bad input and never touches a clock, a socket or a log. The pipeline turns
accepted packets into :class:`Record` objects for the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

MAIN_SENSOR: Final = "main"
_DEPTH = re.compile(r"^(\d{1,4})cm$")


def sensor_for_channel(suffix: str | int | None) -> str:
    """Sensor tag for a channel: None/0/'' -> 'main'; a depth (10 or '10cm') -> 'soil_10cm'.

    Multi-depth probes name their readings ``soil_moisture_pct@10cm`` in JSON and carry the
    depth in centimetres as the channel byte in binary frames; both end up as the sensor tag
    ``soil_10cm``. Any other suffix (``@ch2``) is used as the tag as it is.
    """
    if suffix is None or suffix == 0 or suffix == "":
        return MAIN_SENSOR
    if isinstance(suffix, int):
        return f"soil_{suffix}cm"
    m = _DEPTH.match(suffix)
    if m:
        return f"soil_{int(m.group(1))}cm"
    return suffix


def split_key(key: str) -> tuple[str, str]:
    """``'soil_moisture_pct@10cm'`` -> ``('soil_moisture_pct', 'soil_10cm')``."""
    name, sep, suffix = key.partition("@")
    return name, sensor_for_channel(suffix if sep else None)


@dataclass(slots=True)
class Packet:
    """One decoded uplink from one node, before validation.

    ``readings`` maps (canonical quantity, sensor tag) to the value in the catalogue unit.
    ``node_time_ns`` is the node's own timestamp (UTC ns) when it sent one.
    ``auth_tag``/``signed`` carry an HMAC tag and the bytes it covers, checked by the
    pipeline against the device registry's key for the node.
    ``topic`` is the MQTT topic it came on (set by the MQTT formats), so that a rejection
    by validation (``out_of_range``, ``empty``...) keeps it as the decoders' own do.
    """

    node: str
    seq: int | None
    readings: dict[tuple[str, str], float]
    format: str
    raw: bytes
    node_time_ns: int | None = None
    site: str | None = None
    battery_v: float | None = None
    rssi_dbm: float | None = None
    snr_db: float | None = None
    auth_tag: bytes | None = None
    signed: bytes | None = None
    unknown_fields: tuple[str, ...] = ()
    topic: str | None = None


@dataclass(slots=True)
class Rejection:
    """Input that could not become (part of) a stored reading, with the evidence.

    ``reason`` is a short stable code used as a counter label (``bad_crc``, ``garbage``,
    ``out_of_range``...); ``detail`` is for people. ``topic`` is the MQTT topic the input
    came on (set by the MQTT formats): with garbage that names no node, the topic is what
    tells which device or integration sent it.
    """

    reason: str
    detail: str
    raw: bytes
    format: str
    node: str | None = None
    seq: int | None = None
    topic: str | None = None


@dataclass(slots=True)
class Ignored(Rejection):
    """A message that is acknowledged and counted (``ignored.<reason>``) but neither stored
    nor quarantined: it is well-formed and carries no readings (a LoRaWAN server's join or
    status event, ``not_uplink``; a Milesight device's information or reply to a downlink
    command, ``no_readings``). Counting it keeps it visible without filling the
    quarantine."""


@dataclass(slots=True)
class Record:
    """A validated packet as it is stored: the ``reading`` and ``device`` rows of DESIGN.md."""

    time_ns: int
    received_ns: int
    site: str
    plot: str
    node: str
    seq: int | None
    digest: bytes
    source: str
    format: str
    time_source: str  # node | gateway | reanchored | held | replay
    readings: dict[str, dict[str, float]]  # sensor tag -> {quantity: value}
    device: dict[str, float] = field(default_factory=dict)
