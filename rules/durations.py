"""Durations as people write them in rule files: ``90s``, ``15m``, ``3h``, ``2d``, ``1h30m``.

The Prometheus spelling, because extension staff who know one rule language know that one;
a bare number is seconds.
"""

from __future__ import annotations

import re
from typing import Final

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_WHOLE: Final = re.compile(r"^(?:\d+(?:\.\d+)?[smhdw])+$")


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raises ValueError with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30m, 3h or 2d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    text = str(value).strip().replace(" ", "")
    if not _WHOLE.match(text):
        raise ValueError(f"{value!r} is not a duration; write e.g. 30m, 3h, 1h30m or 2d")
    return float(sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))


_JA_UNITS: Final = {"d": "日", "h": "時間", "m": "分", "s": "秒"}


def format_duration(seconds: float) -> str:
    """``10800`` -> ``3h``; ``5400`` -> ``1h30m``: the inverse of :func:`parse_duration`."""
    s = round(seconds)
    if s == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s"):
        n, s = divmod(s, _UNITS[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


def say_duration(seconds: float, language: str) -> str:
    """A duration for an alert text: ``2h`` in English, ``2時間`` in Japanese ("1h30m",
    "1時間30分"); a Japanese sentence must not carry English unit letters."""
    text = format_duration(seconds)
    if language != "ja":
        return text
    return "".join(f"{n}{_JA_UNITS[u]}" for n, u in _PART.findall(text))
