"""Condition kinds: pure functions of a series' recent values (time passed in).

Each condition looks at one sample's values and the series' own memory (``SeriesState``:
a window of recent values, a degree-day sum) and says ``True`` (alert condition holds),
``False`` (clearly over: the alert may clear) or ``None`` (between the alert and clear
limits, or not enough data yet: keep the current state). That three-way answer is what
gives every kind hysteresis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from simpleeval import EvalWithCompoundTypes

from rules.model import Expr, Frost, Gdd, Rate, Refill, Rule, Threshold, number

NS_PER_H = 3_600_000_000_000


@dataclass(slots=True)
class SeriesState:
    """What one rule remembers about one series; saved as JSON between restarts."""

    phase: str = "inactive"  # inactive | pending | firing
    since_ns: int = 0  # when it became pending
    streak: int = 0  # consecutive samples with the condition true
    last_ns: int = 0  # time of the last sample seen (absent_for)
    value: float | None = None  # last value the condition looked at
    holds: bool | None = None  # last verdict
    window: list[tuple[int, float]] = field(default_factory=list)
    gdd: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)  # for the texts

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"p": self.phase, "s": self.since_ns, "n": self.streak,
                               "t": self.last_ns, "v": self.value, "h": self.holds}
        if self.window:
            out["w"] = self.window
        if self.gdd:
            out["g"] = self.gdd
        if self.variables:
            out["x"] = self.variables
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SeriesState:
        return cls(d["p"], d["s"], d["n"], d["t"], d.get("v"), d.get("h"),
                   [(int(t), float(v)) for t, v in d.get("w", [])], d.get("g", {}),
                   d.get("x", {}))


class Condition(Protocol):
    quantity: str | None  # the sample must carry it (None: any sample of the node)

    def __call__(self, st: SeriesState, values: Mapping[str, float], t_ns: int
                 ) -> bool | None: ...


def _limits(below: Any, above: Any, clear_above: Any, clear_below: Any
            ) -> tuple[bool, float, float]:
    if below is not None:
        limit = number(below)
        return True, limit, limit if clear_above is None else number(clear_above)
    limit = number(above)
    return False, limit, limit if clear_below is None else number(clear_below)


def _crossing(falling: bool, limit: float, clear: float, x: float) -> bool | None:
    if falling:
        return True if x < limit else False if x >= clear else None
    return True if x > limit else False if x <= clear else None


_MAX_POINTS = 48  # per window: enough for a slope, small enough to save every step


def _push(st: SeriesState, t_ns: int, v: float, window_s: float) -> None:
    """Add a point and drop those older than the window. Points closer together than
    window/48 replace the newest one, so a fast node costs no more than a slow one."""
    gap = int(window_s * 1e9 / _MAX_POINTS)
    if len(st.window) >= 2 and t_ns - st.window[-2][0] < gap:
        st.window[-1] = (t_ns, v)
    else:
        st.window.append((t_ns, v))
    start = t_ns - int(window_s * 1e9)
    while st.window and st.window[0][0] < start:
        st.window.pop(0)


def slope_per_hour(points: list[tuple[int, float]], min_span_s: float) -> float | None:
    """Least-squares slope (unit per hour) of ``points``; None if fewer than 3 points or
    they span less than ``min_span_s``."""
    n = len(points)
    if n < 3 or (points[-1][0] - points[0][0]) / 1e9 < min_span_s:
        return None
    t0 = points[0][0]
    sx = sy = sxx = sxy = 0.0
    for t, y in points:  # one pass: this runs for every reading of every rate-like rule
        x = (t - t0) / NS_PER_H
        sx += x
        sy += y
        sxx += x * x
        sxy += x * y
    var = sxx - sx * sx / n
    if var <= 0:
        return None
    return (sxy - sx * sy / n) / var


class ThresholdCondition:
    def __init__(self, c: Threshold) -> None:
        self.quantity: str | None = c.quantity
        self.falling, self.limit, self.clear = _limits(c.below, c.above, c.clear_above,
                                                       c.clear_below)

    def __call__(self, st: SeriesState, values: Mapping[str, float], t_ns: int) -> bool | None:
        v = values[self.quantity]  # type: ignore[index]
        st.value = v
        st.variables = {"threshold": self.limit}
        return _crossing(self.falling, self.limit, self.clear, v)


class RateCondition:
    def __init__(self, c: Rate) -> None:
        self.quantity: str | None = c.quantity
        self.window = c.window
        self.falling, self.limit, self.clear = _limits(c.below, c.above, c.clear_above,
                                                       c.clear_below)

    def __call__(self, st: SeriesState, values: Mapping[str, float], t_ns: int) -> bool | None:
        v = values[self.quantity]  # type: ignore[index]
        _push(st, t_ns, v, self.window)
        slope = slope_per_hour(st.window, self.window / 2)
        st.value = v
        st.variables = {"rate": slope, "threshold": self.limit}
        if slope is None:
            return None
        return _crossing(self.falling, self.limit, self.clear, slope)


class RefillCondition:
    """Fires while there is still time: moisture is above the refill point and will reach
    it within ``within`` at the drying rate of the last ``window``. Clears after watering
    (moisture back above ``clear_above``, or rising again). At or below the refill point it
    neither fires nor clears: that is the dry-soil threshold rule's moment."""

    def __init__(self, c: Refill) -> None:
        self.quantity: str | None = c.quantity
        self.refill = number(c.refill_at)
        self.within_h = c.within / 3600
        self.window = c.window
        self.clear = None if c.clear_above is None else number(c.clear_above)

    def __call__(self, st: SeriesState, values: Mapping[str, float], t_ns: int) -> bool | None:
        v = values[self.quantity]  # type: ignore[index]
        if st.window and v - st.window[-1][1] >= 2.0:
            st.window.clear()  # a jump up is watering or rain: the old slope is over
        _push(st, t_ns, v, self.window)
        slope = slope_per_hour(st.window, self.window / 3)
        eta_h = None
        if slope is not None and slope < 0:
            eta_h = max(0.0, (v - self.refill) / -slope)
        st.value = v
        st.variables = {"rate": slope, "eta_h": eta_h, "threshold": self.refill}
        if self.clear is not None and v >= self.clear:
            return False
        if v <= self.refill:
            return None  # already there: a threshold rule's job; a firing alert stays
        if eta_h is not None and eta_h <= self.within_h:
            return True
        if slope is None:
            return None
        return False if slope >= 0 or (eta_h is not None and eta_h > 1.5 * self.within_h) \
            else None


class FrostCondition:
    quantity: str | None = "temperature_c"

    def __init__(self, c: Frost) -> None:
        self.warn = number(c.warn_at)
        self.clear = self.warn + 2.0 if c.clear_above is None else number(c.clear_above)
        self.lead_h = c.lead_time / 3600
        self.window = c.window

    def __call__(self, st: SeriesState, values: Mapping[str, float], t_ns: int) -> bool | None:
        v = values["temperature_c"]
        _push(st, t_ns, v, self.window)
        slope = slope_per_hour(st.window, self.window / 2)
        projected = v + min(slope or 0.0, 0.0) * self.lead_h
        dew = values.get("dew_point_c")
        if dew is not None:
            projected = max(projected, min(dew, v))
        st.value = v
        st.variables = {"rate": slope, "projected": projected, "dew_point": dew,
                        "threshold": self.warn}
        return _crossing(True, self.warn + 1e-9, self.clear, projected)


class GddCondition:
    """Growing degree days, simple average method with an optional upper cap."""

    quantity: str | None = "temperature_c"

    def __init__(self, c: Gdd, tz: ZoneInfo) -> None:
        self.base = number(c.base_c)
        self.upper = None if c.upper_c is None else number(c.upper_c)
        self.target = number(c.above)
        self.start_month, self.start_day = (int(x) for x in c.season_start.split("-"))
        self.tz = tz
        self._day: tuple[date, int, str] | None = None  # last day seen: its season and name

    def _season(self, day: date) -> int:
        start = date(day.year, self.start_month, self.start_day)
        return day.year if day >= start else day.year - 1

    def _day_gdd(self, lo: float, hi: float) -> float:
        if self.upper is not None:
            lo, hi = min(lo, self.upper), min(hi, self.upper)
        return max(0.0, (lo + hi) / 2 - self.base)

    def __call__(self, st: SeriesState, values: Mapping[str, float], t_ns: int) -> bool | None:
        v = values["temperature_c"]
        day = datetime.fromtimestamp(t_ns / 1e9, self.tz).date()
        if self._day is None or self._day[0] != day:  # readings of a day share these
            self._day = (day, self._season(day), day.isoformat())
        _, season, day_name = self._day
        g = st.gdd
        if g.get("season") != season:
            g.clear()
            g.update(season=season, sum=0.0)
        if g.get("day") != day_name:
            if "day" in g:
                g["sum"] += self._day_gdd(g["lo"], g["hi"])
            g.update(day=day_name, lo=v, hi=v)
        else:
            g["lo"], g["hi"] = min(g["lo"], v), max(g["hi"], v)
        total = g["sum"] + self._day_gdd(g["lo"], g["hi"])  # today so far counts
        st.value = rounded = round(total, 1)
        st.variables = {"gdd": rounded, "threshold": self.target}
        return total >= self.target


class ExprCondition:
    quantity: str | None = None

    def __init__(self, c: Expr) -> None:
        self._eval = EvalWithCompoundTypes(functions={"abs": abs, "min": min, "max": max})
        self.when, self.clear = c.when, c.clear
        # parsed once: simpleeval would otherwise compile the text on every reading
        self._when = self._eval.parse(c.when)
        self._clear = None if c.clear is None else self._eval.parse(c.clear)

    def __call__(self, st: SeriesState, values: Mapping[str, float], t_ns: int) -> bool | None:
        self._eval.names = values
        st.variables = dict(values)
        try:
            if self._eval.eval(self.when, self._when):
                return True
            if self._clear is None:
                return False
            return False if self._eval.eval(self.clear, self._clear) else None
        except Exception:  # a name this row lacks: the expression does not apply to it
            return None


def compile_condition(rule: Rule, tz: ZoneInfo) -> Condition | None:
    """The condition of ``rule``; None for ``absent_for`` rules (the engine's clock)."""
    if rule.threshold is not None:
        return ThresholdCondition(rule.threshold)
    if rule.rate is not None:
        return RateCondition(rule.rate)
    if rule.refill is not None:
        return RefillCondition(rule.refill)
    if rule.frost is not None:
        return FrostCondition(rule.frost)
    if rule.gdd is not None:
        return GddCondition(rule.gdd, tz)
    if rule.expr is not None:
        return ExprCondition(rule.expr)
    return None
