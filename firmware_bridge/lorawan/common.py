"""What the LoRaWAN network-server formats share: the decoded result of a payload, node
naming from the device registry, the best gateway's radio levels, the uplink time.

Pure: no I/O, no clock. Codecs and the field mapper return :class:`Decoded` or
:class:`CodecError`, never raise; the envelope decoders (``ttn``, ``chirpstack``) turn a
``CodecError`` into a :class:`gateway.packet.Rejection` with the message as evidence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from firmware_bridge import reasons
from firmware_bridge.native import parse_timestamp
from gateway.packet import Rejection

# Same rule as firmware_bridge.native.Name: names become MQTT topic levels and InfluxDB tags.
NODE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_DEV_EUI: Final = re.compile(r"^[0-9a-fA-F]{16}$")
MAX_MESSAGE: Final = 65536  # bytes; a TTS uplink seen by many gateways is a few kB


@dataclass(slots=True)
class Decoded:
    """Readings of one payload: (quantity, sensor tag) -> value in the catalogue unit.

    ``no_readings``: set by a codec when the payload is normal device traffic that carries
    no readings by design (a device's information after joining, its reply to a downlink
    command): what it was. The envelope decoders then return an ``Ignored``
    (``ignored.no_readings``) instead of a packet that validation would refuse as
    ``empty``: such an uplink is not bad data.
    """

    readings: dict[tuple[str, str], float] = field(default_factory=dict)
    battery_v: float | None = None
    unknown: list[str] = field(default_factory=list)
    no_readings: str | None = None


@dataclass(frozen=True, slots=True)
class CodecError:
    """Why a payload could not be decoded: a reason code of firmware_bridge.reasons."""

    reason: str
    detail: str


def dev_eui(value: object) -> str | None:
    """A DevEUI as the registry keeps it (16 lower-case hex digits), or None."""
    if isinstance(value, str) and _DEV_EUI.match(value):
        return value.lower()
    return None


def node_name(eui: str, ids: Mapping[str, str]) -> str:
    """The node a LoRaWAN device is stored under: its DevEUI decides, never its name.

    The registry first (``devices.<node>.ids: ["lorawan:<deveui>"]``): the farmer's name
    for the device wins. Else ``eui-<deveui>`` (what TTS names devices by default). The
    network server's own name for the device (TTS ``device_id``, ChirpStack
    ``deviceName``) is not used: it is unique only within one application (TTS) or not
    at all (ChirpStack), so two applications' ``node-1`` would be stored as one node, with
    one sequence, one dedup key space and one registry entry (its plot, calibration,
    codec). The DevEUI is globally unique (IEEE EUI-64).
    """
    registered = ids.get(f"lorawan:{eui}")
    if registered is not None:
        return registered
    return f"eui-{eui}"


def number(value: object) -> float | None:
    """A JSON number as a float (booleans are not numbers), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        result = float(value)
    except OverflowError:  # a JSON integer beyond float range
        return None
    return result if result == result and abs(result) != float("inf") else None


def best_radio(gateways: object, rssi_key: str = "rssi",
               snr_key: str = "snr") -> tuple[float | None, float | None]:
    """(rssi, snr) of the gateway that heard the uplink best: the highest SNR, then the
    highest RSSI. SNR first because it says how far above the noise floor the signal was,
    which is the margin that matters for a LoRa link; RSSI alone rises with local noise."""
    best: tuple[float, float] | None = None
    best_levels: tuple[float | None, float | None] = (None, None)
    if not isinstance(gateways, list):
        return best_levels
    for gw in gateways:
        if not isinstance(gw, dict):
            continue
        rssi, snr = number(gw.get(rssi_key)), number(gw.get(snr_key))
        if rssi is None and snr is None:
            continue
        rank = (snr if snr is not None else -1e9, rssi if rssi is not None else -1e9)
        if best is None or rank > best:
            best, best_levels = rank, (rssi, snr)
    return best_levels


def time_ns(*candidates: object) -> int | None:
    """The first candidate that is a timestamp with a zone (ISO 8601), as UTC ns."""
    for value in candidates:
        if isinstance(value, str):
            try:
                return parse_timestamp(_trim_fraction(value))
            except ValueError:
                continue
    return None


_LONG_FRACTION: Final = re.compile(r"(\.\d{9})\d+")


def _trim_fraction(text: str) -> str:
    # Go and protobuf print up to nanoseconds; be lenient with longer fractions anyway.
    return _LONG_FRACTION.sub(r"\1", text)


def get(obj: Any, *path: str) -> Any:
    """``obj[p0][p1]...`` or None when any level is missing or not an object."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


_JSON: Final = json.JSONDecoder(parse_constant=_no_constants)


def parse_message(payload: bytes | str, fmt: str) -> tuple[bytes, dict[str, Any] | Rejection]:
    """(the message as evidence, its JSON object) or a ``bad_json``/``bad_length``/``schema``
    Rejection."""
    raw = (payload.encode("utf-8", "surrogatepass") if isinstance(payload, str)
           else bytes(payload)).strip()
    if not raw:
        return raw, Rejection(reasons.BAD_JSON, "empty message", raw, fmt)
    if len(raw) > MAX_MESSAGE:
        return raw, Rejection(reasons.BAD_LENGTH, f"message of {len(raw)} bytes > "
                              f"{MAX_MESSAGE}", raw, fmt)
    try:
        obj = _JSON.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        return raw, Rejection(reasons.BAD_JSON, str(e)[:200], raw, fmt)
    if not isinstance(obj, dict):
        return raw, Rejection(reasons.SCHEMA, f"top level is {type(obj).__name__}, not an "
                              "object", raw, fmt)
    return raw, obj


def counter(value: object) -> int | None:
    """A LoRaWAN frame counter: absent is 0 (protobuf JSON leaves zero values out)."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32:
        return value
    return None

