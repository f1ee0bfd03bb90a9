"""A small InfluxQL builder for dashboard queries (pure strings, no Grafana, no I/O).

Every dashboard query filters on the same tags the same way and takes its time range and
bucket size from Grafana, so those parts are written once here:

* a template variable ``$site`` becomes ``"site" =~ /^$site$/``: Grafana's InfluxDB plugin
  writes a multi-value or "All" selection as ``(a|b)`` with regex escaping and a single one
  as itself, so the same text matches one value, several or all;
* ``$timeFilter`` and ``GROUP BY time($__interval)`` are the macros Grafana fills in;
* identifiers are always double-quoted, so ``time``, ``level`` or a site called ``default``
  never collide with InfluxQL keywords.

The result is a plain string: tests substitute the macros as Grafana does and run it
against a real InfluxDB (tests/dashboards/test_dash_queries.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

TIME_FILTER: Final = "$timeFilter"
INTERVAL: Final = "$__interval"


def ident(name: str) -> str:
    """A double-quoted InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def var_match(tag: str, variable: str | None = None) -> str:
    """``"tag" =~ /^$variable$/``: matches the variable's single, multi or All value."""
    return f"{ident(tag)} =~ /^${variable or tag}$/"


def agg(function: str, fieldname: str, alias: str | None = None) -> str:
    """``function("field") AS "alias"``; the alias defaults to the field name."""
    return f'{function}({ident(fieldname)}) AS {ident(alias or fieldname)}'


@dataclass(frozen=True, slots=True)
class Select:
    """One ``SELECT``: fields (already formatted), a measurement and its filters.

    ``variables`` are the tags filtered by the dashboard variable of the same name;
    ``where`` holds any further conditions. ``group_time`` is a duration or ``$__interval``.
    """

    fields: Sequence[str]
    measurement: str
    variables: Sequence[str] = ()
    where: Sequence[str] = ()
    group_time: str | None = None
    group_tags: Sequence[str] = ()
    fill: str | None = None
    time_filter: bool = True
    extra: Sequence[str] = field(default=())  # ORDER BY, LIMIT...

    def render(self) -> str:
        conditions = [var_match(tag) for tag in self.variables]
        conditions.extend(self.where)
        if self.time_filter:
            conditions.append(TIME_FILTER)
        text = f"SELECT {', '.join(self.fields)} FROM {ident(self.measurement)}"
        if conditions:
            text += " WHERE " + " AND ".join(conditions)
        groups = []
        if self.group_time:
            groups.append(f"time({self.group_time})")
        groups.extend(ident(tag) for tag in self.group_tags)
        if groups:
            text += " GROUP BY " + ", ".join(groups)
        if self.fill:
            text += f" fill({self.fill})"
        for clause in self.extra:
            text += f" {clause}"
        return text

    def __str__(self) -> str:
        return self.render()


def subquery(outer_fields: Sequence[str], inner: Select, *, where: Sequence[str] = (),
             group_tags: Sequence[str] = ()) -> str:
    """``SELECT outer FROM (inner) [WHERE ...] [GROUP BY tags]``."""
    text = f"SELECT {', '.join(outer_fields)} FROM ({inner.render()})"
    if where:
        text += " WHERE " + " AND ".join(where)
    if group_tags:
        text += " GROUP BY " + ", ".join(ident(t) for t in group_tags)
    return text


def tag_values(measurement: str, key: str, filters: Sequence[str] = ()) -> str:
    """The template-variable query: ``SHOW TAG VALUES`` of one key, narrowed by others."""
    text = f"SHOW TAG VALUES FROM {ident(measurement)} WITH KEY = {ident(key)}"
    if filters:
        text += " WHERE " + " AND ".join(var_match(tag) for tag in filters)
    return text
