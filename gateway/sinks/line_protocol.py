"""Outbox rows as InfluxDB line protocol (pure: no I/O, no clock).

One point per outbox row (DESIGN.md "Storage")::

    reading,node=n17,plot=east,sensor=soil_10cm,site=farm soil_moisture_pct=28.4 1782879000000000000
    device,node=n17,plot=east,site=farm battery_v=3.62,rssi_dbm=-97.0,seq=4211.0 1782879000000000000

* Tags in key order (what InfluxDB sorts them into anyway); fields are the row's non-null
  catalogue columns, in catalogue order. A row with no non-null field has no point.
* ``alert`` rows (rules/alert.py) carry ``state`` and ``message`` as strings and ``value``
  as a float; besides DESIGN.md's tags they carry ``sensor`` (low-cardinality, like the
  ``reading`` tag), so alerts of one rule on two depths of one node are two series.
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

String field values (an alert's ``state`` and ``message``) get ``"`` and ``\\`` escaped,
and are the one place where text is altered rather than refused: each run of control
characters (newline, CR, tab, ... U+0000-U+001F and U+007F) becomes one space, and a run
at the start or end is dropped (``"soil is dry\\n"``, as a YAML block scalar ends, is
written ``"soil is dry"``). InfluxDB 1.x reads a newline inside a quoted string back, but
VictoriaMetrics splits lines at every newline first, answers 2xx and silently drops the
point; an alert is worth more than the exact whitespace of its message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from math import isfinite
from operator import itemgetter
from typing import Any, Final

from gateway.catalogue import DEVICE_FIELDS, READING_FIELDS
from gateway.float_text import float_repr

TAGS: Final[dict[str, tuple[str, ...]]] = {
    "reading": ("node", "plot", "sensor", "site"),
    "device": ("node", "plot", "site"),
    "alert": ("node", "plot", "rule", "sensor", "severity", "site"),
}
FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "reading": READING_FIELDS,
    "device": DEVICE_FIELDS,
    "alert": ("state", "value", "message"),
}
# Fields written as strings; every other field is a float (see the module doc).
STRING_FIELDS: Final = frozenset({"state", "message"})

_MEASUREMENT_ESCAPES: Final = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_BAD_MEASUREMENT_BACKSLASH: Final = re.compile(r"\\([, \\]|$)")
_CONTROL_CHARS: Final = "".join(map(chr, range(0x20))) + "\x7f"
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_RUN: Final = re.compile(r"[\x00-\x1f\x7f]+")
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
        if _CONTROL.search(value):  # see the module doc: no server may see a line break
            value = _CONTROL_RUN.sub(" ", value.strip(_CONTROL_CHARS))
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


class RowEncoder:
    """Outbox rows of one table, as tuples in ``columns`` order, to lines.

    Built once per column layout: the field keys are escaped once, and the series part
    (``reading,node=...,site=...``) is cached per tag values, which repeat in every batch.
    """

    def __init__(self, table: str, columns: Sequence[str]) -> None:
        index = {name: i for i, name in enumerate(columns)}
        self.table = table
        self.columns = list(columns)
        self._tag_keys = TAGS[table]
        self._tags = itemgetter(*(index[k] for k in self._tag_keys))
        self._fields = tuple(
            (index[name], escape_key(name, "field key") + "=", name in STRING_FIELDS)
            for name in FIELDS[table] if name in index
        )
        self._time = index["time_ns"]
        self._series: dict[tuple[Any, ...], str] = {}
        # Rows whose fields are all numbers and all set (what the pipeline hands over: one
        # column layout per commit group) are written with one %-template; any other row
        # (a None, an int, a string, NaN) goes the field-by-field way below. The floats'
        # texts come from float_repr (repr, remembered: sensor values repeat).
        self._template: str | None = None
        if self._fields and not any(is_string for _, _, is_string in self._fields):
            self._template = " " + ",".join(key + "%s" for _, key, _ in self._fields) + " %d"
            picks = [i for i, _, _ in self._fields] + [self._time]
            self._numbers = itemgetter(*picks)

    def __call__(self, row: Sequence[Any]) -> str | None:
        """The line of one row; None if it has no field. Raises LineProtocolError."""
        template = self._template
        if template is not None:
            values = self._numbers(row)  # the fields, then the time
            numbers = values[:-1]
            # Every field a float (an int would be written without its ".0"), the time an
            # int, no NaN or infinity (their sum would not be finite; a sum that merely
            # overflows is written the long way).
            if (type(values[-1]) is int and set(map(type, numbers)) == _FLOAT
                    and isfinite(sum(numbers))):
                return self._series_of(row) + template % (*map(float_repr, numbers), values[-1])
        fields = []
        for i, key, is_string in self._fields:
            value = row[i]
            if is_string:
                if value is not None:
                    fields.append(key + format_field(str(value)))
            elif value is not None:
                value = float(value)
                if not isfinite(value):
                    raise LineProtocolError(f"field value {value!r} is not finite")
                fields.append(key + repr(value))
        if not fields:
            return None
        return f"{self._series_of(row)} {','.join(fields)} {int(row[self._time])}"

    def _series_of(self, row: Sequence[Any]) -> str:
        tag_values = self._tags(row)
        series = self._series.get(tag_values)
        if series is None:
            series = _series(self.table, tuple(zip(self._tag_keys, map(str, tag_values),
                                                   strict=True)))
            if len(self._series) >= 4096:
                self._series.clear()
            self._series[tag_values] = series
        return series


_FLOAT: Final = frozenset((float,))
def row_to_line(table: str, row: Mapping[str, Any]) -> str | None:
    """The line of one ``reading``, ``device`` or ``alert`` outbox row; None if it has no field.

    Raises :class:`LineProtocolError` for a row whose tags cannot be written (the sink
    quarantines such a row rather than altering its tags).
    """
    return RowEncoder(table, tuple(row))(tuple(row.values()))
