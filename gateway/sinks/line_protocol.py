"""Outbox rows as InfluxDB line protocol (pure: no I/O, no clock).

One point per outbox row (DESIGN.md "Storage")::

    reading,node=n17,plot=east,sensor=soil_10cm,site=farm soil_moisture_pct=28.4 1782879000000000000
    device,node=n17,plot=east,site=farm battery_v=3.62,rssi_dbm=-97.0,seq=4211.0 1782879000000000000

* Tags in key order (what InfluxDB sorts them into anyway); fields are the row's non-null
  catalogue columns, in catalogue order. A row with no non-null field has no point.
* Every catalogue field is a **float**, ``seq`` included (``seq=4211.0``, not ``4211i``):
  the SQLite store keeps all of them as REAL, InfluxDB fixes a field's type at its first
  write, and one type per field everywhere is simpler than exceptions. Floats hold
  integers exactly up to 2**53.
* Times are integer nanoseconds (``precision=ns``).

Escaping follows what the InfluxDB 1.x and 2.x parsers (and VictoriaMetrics') unescape:
in measurement names ``,`` and space; in tag keys, tag values and field keys ``,``, ``=``
and space, each with a backslash. Strings those parsers cannot read back as they were are
refused with :class:`LineProtocolError` instead of being written altered: an empty tag
value, a control character (newline, CR, tab...), a backslash before one of the escaped
characters, before another backslash (VictoriaMetrics reads ``\\\\`` as one, InfluxDB as
two) or at the end (``a\\``), a measurement starting with ``#`` (a comment line).
NaN and infinities are refused too (line protocol has no spelling for them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

from gateway.catalogue import DEVICE_FIELDS, READING_FIELDS

TAGS: Final[dict[str, tuple[str, ...]]] = {
    "reading": ("node", "plot", "sensor", "site"),
    "device": ("node", "plot", "site"),
}
FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "reading": READING_FIELDS,
    "device": DEVICE_FIELDS,
}

_MEASUREMENT_ESCAPES: Final = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_BAD_MEASUREMENT_BACKSLASH: Final = re.compile(r"\\([, \\]|$)")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_BAD_BACKSLASH: Final = re.compile(r"\\([,= \\]|$)")

FieldValue = float | int | bool | str


class LineProtocolError(ValueError):
    """A value that line protocol cannot carry faithfully."""


def _check(kind: str, value: str, *, bad_backslash: re.Pattern[str] = _BAD_BACKSLASH) -> None:
    if not value:
        raise LineProtocolError(f"empty {kind}")
    if _CONTROL.search(value):
        raise LineProtocolError(f"{kind} {value!r} holds a control character")
    if bad_backslash.search(value):
        raise LineProtocolError(
            f"{kind} {value!r} has a backslash before ',', '=', ' ', '\\\\' or at its end"
        )


def escape_measurement(name: str) -> str:
    _check("measurement", name, bad_backslash=_BAD_MEASUREMENT_BACKSLASH)
    if name.startswith("#"):
        raise LineProtocolError(f"measurement {name!r} starts with '#' (a comment line)")
    return name.translate(_MEASUREMENT_ESCAPES)


@lru_cache(maxsize=16384)  # node names, tag and field keys repeat in every batch
def escape_key(value: str, kind: str = "tag value") -> str:
    """Escape a tag key, tag value or field key."""
    _check(kind, value)
    return value.translate(_KEY_ESCAPES)


def format_field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field value {value!r} is not finite")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise LineProtocolError(f"field value {value!r} of type {type(value).__name__}")


def encode_point(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    time_ns: int,
) -> str:
    """One line (without the newline). Tags are written sorted by key."""
    if not fields:
        raise LineProtocolError(f"{measurement} point without fields")
    series = _series(measurement, tuple(sorted(tags.items())))
    field_text = ",".join(
        f"{escape_key(k, 'field key')}={format_field(v)}" for k, v in fields.items()
    )
    return f"{series} {field_text} {int(time_ns)}"


@lru_cache(maxsize=4096)
def _series(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    """``measurement,k=v,...``: the same few series make up every batch."""
    parts = [escape_measurement(measurement)]
    parts.extend(f"{escape_key(k, 'tag key')}={escape_key(v, f'tag {k}')}" for k, v in tags)
    return ",".join(parts)


def row_to_line(table: str, row: Mapping[str, Any]) -> str | None:
    """The line of one ``reading`` or ``device`` outbox row; None if it has no field.

    Raises :class:`LineProtocolError` for a row whose tags cannot be written (the sink
    quarantines such a row rather than altering its tags).
    """
    fields = {
        name: float(row[name]) for name in FIELDS[table] if row.get(name) is not None
    }
    if not fields:
        return None
    tags = {key: str(row[key]) for key in TAGS[table]}
    return encode_point(table, tags, fields, int(row["time_ns"]))
