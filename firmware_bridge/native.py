"""Native JSON uplink: the DESIGN.md "Native MQTT uplink" body, one object per line.

::

    {"node": "n17", "seq": 4211, "ts": "2026-07-01T04:10:00Z",
     "readings": {"temperature_c": 24.1, "soil_moisture_pct@10cm": 28.4},
     "battery_v": 3.62, "rssi_dbm": -97, "snr_db": 6.5}

- Top-level keys are exactly those of :class:`NativeUplink`; any other is ``schema``.
- Reading keys are a catalogue name or alias, optionally ``@<depth>cm`` (sensor tag
  ``soil_<depth>cm``) or ``@<tag>``; values are JSON numbers (``true``/``null``/strings are
  ``schema``). Keys the catalogue does not know, and derived quantities (the gateway derives
  those itself), are listed in ``Packet.unknown_fields`` and the rest is kept.
  ``battery_v``/``rssi_dbm``/``snr_db`` (or their aliases) inside ``readings`` are moved to
  the packet's device fields.
- ``ts``: ISO 8601 with ``Z`` or an offset (naive times are refused: which zone?), up to
  nanoseconds; or an epoch number in s, ms, µs or ns, told apart by magnitude
  (< 1e11 s, < 1e14 ms, < 1e17 µs, else ns).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Final, cast

import msgspec
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationError,
)

from gateway.catalogue import BY_NAME, canonical_name
from gateway.packet import Packet, Rejection, split_key

from . import reasons
from .reading_types import depth_suffix

FORMAT: Final = "native"
MAX_LINE: Final = 65536
MAX_TIME_NS: Final = 2**63 - 1  # InfluxDB's int64 nanoseconds end in 2262

Name = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"([Zz]|[+-]\d{2}:?\d{2})$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def parse_timestamp(value: object) -> int:
    """ISO 8601 string or epoch number -> UTC nanoseconds. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("a timestamp is not a boolean")
    if isinstance(value, str):
        m = _ISO.match(value)
        if not m:
            raise ValueError("not ISO 8601 with Z or an offset (e.g. 2026-07-01T04:10:00Z)")
        y, mo, d, h, mi, s, frac, zone = m.groups()
        if zone in ("Z", "z"):
            tz = UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            hh, mm = int(zone[1:3]), int(zone[-2:])
            if hh > 23 or mm > 59:
                raise ValueError(f"bad UTC offset {zone}")
            tz = timezone(sign * timedelta(hours=hh, minutes=mm))
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=tz)
        ns = (dt - _EPOCH) // _SECOND * 1_000_000_000
        if frac:
            ns += int(frac.ljust(9, "0"))
    elif type(value) is int:
        # Integer arithmetic gives exactly what the Decimal path below gives for an int
        # (Decimal(int) is exact and no product here reaches its 28 digits), without it.
        if value < 0:
            raise ValueError("epoch time must be a non-negative number")
        if value < 100_000_000_000:  # 1e11
            ns = value * 1_000_000_000
        elif value < 100_000_000_000_000:  # 1e14
            ns = value * 1_000_000
        elif value < 100_000_000_000_000_000:  # 1e17
            ns = value * 1_000
        else:
            ns = value
    elif isinstance(value, int | float):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite() or number < 0:
            raise ValueError("epoch time must be a non-negative number")
        magnitude = abs(number)
        if magnitude < Decimal("1e11"):
            ns = int(number * 1_000_000_000)
        elif magnitude < Decimal("1e14"):
            ns = int(number * 1_000_000)
        elif magnitude < Decimal("1e17"):
            ns = int(number * 1_000)
        else:
            ns = int(number)
    else:
        raise ValueError("timestamp must be an ISO 8601 string or an epoch number")
    if not 0 <= ns <= MAX_TIME_NS:
        raise ValueError("timestamp outside 1970..2262")
    return ns


NodeTimeNs = Annotated[int, BeforeValidator(parse_timestamp)]


class NativeUplink(BaseModel):
    """The native uplink body (JSON contract). ``ts`` is validated to UTC nanoseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: Name
    seq: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)] | None = None
    ts: NodeTimeNs | None = None
    site: Name | None = None
    readings: dict[str, StrictFloat] = Field(default_factory=dict)
    battery_v: StrictFloat | None = None
    rssi_dbm: StrictFloat | None = None
    snr_db: StrictFloat | None = None


_NAME_MATCH: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}").fullmatch
_EXACT_FLOAT_INT: Final = 2**53
_MAX_SEQ: Final = 2**63 - 1  # NativeUplink.seq


def _number(value: object) -> float | None:
    """A JSON number as ``StrictFloat`` gives it, or None to leave the case to pydantic."""
    if type(value) is float:
        return value
    if type(value) is int and -_EXACT_FLOAT_INT <= value <= _EXACT_FLOAT_INT:
        return float(value)  # exact: what pydantic makes of an int for a float field
    return None


class _CommonUplink(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The native body as msgspec reads it, in C: JSON syntax, the top-level keys (any
    other is an error) and the JSON type of each value. What types cannot say (the name
    pattern, the seq range, ``ts``, an int too large to be an exact float) is checked in
    :func:`_common_uplink`."""

    node: str
    seq: int | None = None
    ts: int | float | str | None = None
    site: str | None = None
    readings: dict[str, int | float] = {}
    battery_v: int | float | None = None
    rssi_dbm: int | float | None = None
    snr_db: int | float | None = None


_DECODE_COMMON: Final = msgspec.json.Decoder(_CommonUplink).decode


def _common_uplink(
    raw: bytes,
) -> tuple[str, int | None, int | None, str | None, dict[str, float], list[float | None]] | None:
    """The common, valid body: (node, seq, ts, site, readings, device values), or None
    whenever anything is unusual (not UTF-8, a lone surrogate, NaN, a number out of a
    float's range, a type or key the contract does not have...), so that ``json`` and
    :class:`NativeUplink` decide and word the refusal. Accepts only what the model
    accepts, with the same values (``tests/firmware_bridge/test_fb_native.py`` compares
    the two on generated bodies); about a third of the cost of ``json`` and the
    hand-written checks it replaced, the most expensive step of a native message.
    """
    try:
        up = _DECODE_COMMON(raw)
    except msgspec.MsgspecError:  # DecodeError, ValidationError
        return None
    node = up.node
    if not _NAME_MATCH(node):
        return None
    seq = up.seq
    if seq is not None and not 0 <= seq <= _MAX_SEQ:
        return None
    ts = up.ts
    if ts is not None:
        try:
            ts = parse_timestamp(ts)
        except ValueError:
            return None
    site = up.site
    if site is not None and not _NAME_MATCH(site):
        return None
    readings = up.readings
    for key, given in readings.items():
        if type(given) is not float:  # _number(), inlined: five calls per uplink
            number = _number(given)
            if number is None:
                return None
            readings[key] = number  # same keys: the dict does not change size
    device: list[float | None] = []
    for value in (up.battery_v, up.rssi_dbm, up.snr_db):
        if value is not None and type(value) is not float:
            value = _number(value)
            if value is None:
                return None
        device.append(value)
    return node, seq, ts, site, cast(dict[str, float], readings), device


_DEVICE_NAMES: Final = ("battery_v", "rssi_dbm", "snr_db")


def _reading_key(key: str) -> tuple[str | None, str, str]:
    """``readings`` key -> (canonical quantity, measurement or "" if unknown/derived,
    sensor tag), cached: the same few keys come in every message."""
    hit = _KEYS.get(key)
    if hit is None and not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:  # JSON can spell one: "\\ud800"
            return None, _NOT_TEXT, ""
    if hit is None:
        name, sensor = split_key(key)
        quantity = canonical_name(name)
        q = BY_NAME.get(quantity) if quantity else None
        usable = q is not None and not q.derived
        hit = (q.name, q.measurement, sensor) if q and usable else (None, "", sensor)
        if len(_KEYS) >= 4096:  # keys come from the network: bound the cache
            _KEYS.clear()
        _KEYS[key] = hit
    return hit


_KEYS: dict[str, tuple[str | None, str, str]] = {}
_NOT_TEXT: Final = "(not text)"  # _reading_key's measurement for a key that is not text


def _reject(reason: str, detail: str, raw: bytes, obj: Any = None) -> Rejection:
    node = seq = None
    if isinstance(obj, dict):
        n, s = obj.get("node"), obj.get("seq")
        node = n if isinstance(n, str) and len(n) <= 64 else None
        seq = s if isinstance(s, int) and not isinstance(s, bool) else None
    return Rejection(reason, detail, raw, FORMAT, node, seq)


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


_JSON: Final = json.JSONDecoder(parse_constant=_no_constants)
_SCAN: Final = _JSON.scan_once  # type: ignore[attr-defined]  # set by its __init__
_JSON_SPACE: Final = re.compile(r"[ \t\n\r]*").match


def _parse_json(text: str) -> Any:
    """``_JSON.decode(text)`` for a text without leading whitespace (the line is stripped):
    the same values and errors, without the decoder's two Python-level wrappers."""
    try:
        obj, end = _SCAN(text, 0)
    except StopIteration as err:
        raise json.JSONDecodeError("Expecting value", text, err.value) from None
    if end != len(text):
        end = _JSON_SPACE(text, end).end()  # type: ignore[union-attr]  # always matches
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    return obj


def _schema_detail(error: ValidationError) -> str:
    parts = []
    for e in error.errors()[:3]:
        loc = ".".join(str(x) for x in e["loc"]) or "(body)"
        parts.append(f"{loc}: {e['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def decode_native(line: bytes | str, default_site: str | None = None) -> Packet | Rejection:
    """One native JSON line -> Packet, or Rejection (``bad_json``, ``schema``,
    ``bad_length``). ``site`` comes from the body, else ``default_site``."""
    if isinstance(line, str):
        text: str | None = line.strip()
        raw = line.encode("utf-8", "surrogatepass").strip()
    else:
        raw = bytes(line).strip()
        text = None
    if not raw:
        return _reject(reasons.BAD_JSON, "empty line", raw)
    if len(raw) > MAX_LINE:
        return _reject(reasons.BAD_LENGTH, f"line of {len(raw)} bytes > {MAX_LINE}", raw)
    common = _common_uplink(raw)
    if common is not None:
        node, seq, ts, site, given, values = common
    else:
        try:
            if text is None:
                text = raw.decode("utf-8")
            obj = _parse_json(text)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
            return _reject(reasons.BAD_JSON, str(e)[:200], raw)
        if not isinstance(obj, dict):
            return _reject(reasons.SCHEMA,
                           f"top level is {type(obj).__name__}, not an object", raw)
        try:
            up = NativeUplink.model_validate(obj)
        except ValidationError as e:
            return _reject(reasons.SCHEMA, _schema_detail(e), raw, obj)
        node, seq, ts, site, given = up.node, up.seq, up.ts, up.site, up.readings
        values = [up.battery_v, up.rssi_dbm, up.snr_db]

    readings: dict[tuple[str, str], float] = {}
    unknown: list[str] = []
    for key, value in given.items():
        quantity, measurement, sensor = _KEYS.get(key) or _reading_key(key)
        if measurement == _NOT_TEXT:
            return Rejection(reasons.SCHEMA, f"readings key {key!a} holds a lone surrogate, "
                             "which is not Unicode text", raw, FORMAT, node, seq)
        if quantity is None:
            unknown.append(key)
        elif measurement == "device":
            i = _DEVICE_NAMES.index(quantity)
            if values[i] is not None:
                return Rejection(reasons.SCHEMA, f"{quantity} given twice (readings.{key})",
                                 raw, FORMAT, node, seq)
            values[i] = value
        elif (quantity, sensor) in readings:
            return Rejection(reasons.SCHEMA, f"readings.{key}: {quantity} for {sensor} "
                             "given twice", raw, FORMAT, node, seq)
        else:
            readings[(quantity, sensor)] = value
    battery_v, rssi_dbm, snr_db = values
    return Packet(  # positional, in Packet's field order: cheaper than keywords
        node, seq, readings, FORMAT, raw, ts,
        site if site is not None else default_site,
        battery_v, rssi_dbm, snr_db, None, None, tuple(unknown),
    )


def format_timestamp(ns: int) -> str:
    """UTC nanoseconds -> ``2026-07-01T04:10:00Z`` (fraction only when non-zero)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def encode_native(
    node: str,
    seq: int | None,
    readings: Mapping[tuple[str, str], float],
    *,
    ts_ns: int | None = None,
    site: str | None = None,
    battery_v: float | None = None,
    rssi_dbm: float | None = None,
    snr_db: float | None = None,
) -> bytes:
    """One compact native JSON body (no newline). Raises ValueError on NaN/Infinity."""
    body: dict[str, Any] = {"node": node}
    if seq is not None:
        body["seq"] = seq
    if ts_ns is not None:
        body["ts"] = format_timestamp(ts_ns)
    if site is not None:
        body["site"] = site
    keys = {}
    for (quantity, sensor), value in readings.items():
        suffix = depth_suffix(sensor)
        keys[quantity if suffix is None else f"{quantity}@{suffix}"] = value
    body["readings"] = keys
    for name, extra in (("battery_v", battery_v), ("rssi_dbm", rssi_dbm), ("snr_db", snr_db)):
        if extra is not None:
            body[name] = extra
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
