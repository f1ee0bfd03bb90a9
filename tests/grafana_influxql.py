"""What Grafana's InfluxDB (InfluxQL) datasource does to a query before sending it.

Grafana cannot run here, so the dashboard tests do its part by hand, following the
plugin's documented behaviour (grafana.com docs, "InfluxDB query editor" and "Template
variables"; the plugin's ``interpolateQueryExpr`` and the backend's macro engine):

* ``$timeFilter`` -> ``time >= now() - 6h`` for a relative range ending now, or
  ``time >= 1700000000000ms and time <= 1700021600000ms`` for absolute times (what the
  backend sends for every range since Grafana 10);
* ``$__interval`` / ``$interval`` -> a duration (``1m``), ``$__interval_ms`` -> milliseconds;
* template variables ``$name``, ``${name}`` and ``[[name]]``: a multi-value or include-All
  variable becomes ``(a|b)`` with each value regex-escaped (one value: just it, escaped);
  a plain single-value variable is inserted as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}|\[\[(\w+)\]\]")


def escape_regex(value: str) -> str:
    """Grafana's ``escapeRegex``: backslash before every regex metacharacter and ``/``."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


@dataclass(frozen=True)
class Selection:
    """One variable's chosen values and whether it is multi-value/include-All."""

    values: Sequence[str]
    multi: bool

    def format(self) -> str:
        if not self.multi:
            return self.values[0]
        escaped = [escape_regex(v) for v in self.values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


@dataclass(frozen=True)
class TimeRange:
    """Either relative (``now-6h`` to now) or absolute milliseconds."""

    relative: str | None = "6h"
    from_ms: int = 0
    to_ms: int = 0

    def filter(self) -> str:
        if self.relative:
            return f"time >= now() - {self.relative}"
        return f"time >= {self.from_ms}ms and time <= {self.to_ms}ms"


@dataclass(frozen=True)
class Context:
    time: TimeRange = TimeRange()
    interval: str = "5m"
    interval_ms: int = 300_000
    variables: Mapping[str, Selection] = field(default_factory=dict)


def interpolate(query: str, ctx: Context) -> str:
    macros = {
        "timeFilter": ctx.time.filter(),
        "__timeFilter": ctx.time.filter(),
        "__interval": ctx.interval,
        "interval": ctx.interval,
        "__interval_ms": str(ctx.interval_ms),
    }

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in macros:
            return macros[name]
        if name in ctx.variables:
            return ctx.variables[name].format()
        raise KeyError(f"query uses ${name}, which neither Grafana nor the dashboard "
                       f"defines: {query}")

    # `$__interval_ms` before `$__interval`: \w+ is greedy, so the longer name wins anyway.
    return _VARIABLE.sub(replace, query)
