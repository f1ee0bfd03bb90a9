"""``repr`` of floats, remembered: :func:`float_repr` ``(x)`` is ``repr(x)``.

Writing a float out (InfluxDB line protocol, the dedup digest) means finding its shortest
round-trip digits, which costs CPython about 1,500 instructions a value (dtoa); a dict hit
costs about 40. Sensor values repeat: a reading has a resolution (0.1 °C, 1 %, 0.01 V), a
field changes slowly, and a farm's nodes measure much the same, so most values of a batch
have been written before. The table is bounded (cleared when full, like
``line_protocol``'s series cache), so it costs at most a few hundred KB whatever arrives.

Only floats may be looked up: ``1`` and ``1.0`` are one key, so ``float_repr(1)`` could
answer ``"1.0"``. Zeros are never kept, because ``0.0`` and ``-0.0`` are one key too but
have different texts (firmware printing ``%.1f`` of -0.04 sends ``-0.0``), and neither is
NaN (never equal to itself, so never found).
"""

from __future__ import annotations

from typing import Final

MAX_ENTRIES: Final = 4096


class FloatTexts(dict[float, str]):
    """float -> ``repr``; a missing value is written and kept (see the module doc)."""

    __slots__ = ()

    def __missing__(self, value: float) -> str:
        text = repr(value)
        if value and value == value:  # not a zero, not NaN
            if len(self) >= MAX_ENTRIES:
                self.clear()
            self[value] = text
        return text


FLOAT_TEXT: Final = FloatTexts()
float_repr: Final = FLOAT_TEXT.__getitem__  # a C-level call: a hit runs no Python code
