"""Derived quantities (pure functions): dew point and vapour-pressure deficit from one
sensor's values, and the increment of a running total (rain) from two consecutive totals.

Saturation vapour pressure follows FAO Irrigation and Drainage Paper 56, eq. 11
(Tetens form): e°(T) = 0.6108 exp(17.27 T / (T + 237.3)) kPa. Actual vapour pressure from
relative humidity, eq. 19 with a single RH reading: e_a = e°(T) RH / 100. VPD = e° - e_a.
The dew point inverts the same Magnus-Tetens curve, so dew point and VPD agree with each
other (FAO-56 eq. 14 inverted; the Magnus form with a = 17.27, b = 237.3 °C).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

_A = 17.27
_B = 237.3  # °C


def saturation_vapour_pressure_kpa(temperature_c: float) -> float:
    """FAO-56 eq. 11."""
    return 0.6108 * math.exp(_A * temperature_c / (temperature_c + _B))


def actual_vapour_pressure_kpa(temperature_c: float, humidity_pct: float) -> float:
    return saturation_vapour_pressure_kpa(temperature_c) * humidity_pct / 100.0


def vpd_kpa(temperature_c: float, humidity_pct: float) -> float:
    es = saturation_vapour_pressure_kpa(temperature_c)
    return max(0.0, es - es * humidity_pct / 100.0)


def dew_point_c(temperature_c: float, humidity_pct: float) -> float:
    """Magnus dew point; humidity clamped to (0.1, 100] % so a dry reading stays finite."""
    rh = min(max(humidity_pct, 0.1), 100.0)
    gamma = math.log(rh / 100.0) + _A * temperature_c / (_B + temperature_c)
    return _B * gamma / (_A - gamma)


def derive(values: dict[str, float]) -> dict[str, float]:
    """Derived fields for one sensor's values (empty if the inputs are not there)."""
    t = values.get("temperature_c")
    rh = values.get("humidity_pct")
    if t is None or rh is None:
        return {}
    # dew_point_c() and vpd_kpa() inlined (this runs for every air reading); the same
    # arithmetic in the same order, so the same floats (tests/gateway/test_derive.py).
    rh_clamped = min(max(rh, 0.1), 100.0)
    gamma = math.log(rh_clamped / 100.0) + _A * t / (_B + t)
    es = 0.6108 * math.exp(_A * t / (t + _B))
    return {
        "dew_point_c": round(_B * gamma / (_A - gamma), 2),
        "vpd_kpa": round(max(0.0, es - es * rh / 100.0), 3),
    }


# ---------------------------------------------------------------- running totals
#
# Rain gauges count tips since they were powered up (rtl_433) or since a calendar boundary
# (Ecowitt's yearly total), while the catalogue's ``rain_mm`` is rain since the previous
# reading. The increment is the difference of consecutive totals, the way Prometheus'
# ``increase()`` treats a counter:
#
# - first total of a series: the baseline, no increment (what fell before is unknown);
# - a total that is not newer than the baseline (late, replayed, out of order): no
#   increment and the baseline stays; its rain is already in the newer difference;
# - total grew or stayed: the difference;
# - total fell: the counter restarted from 0 (battery change, console reset, yearly reset,
#   counter wrap), so the new total is what fell since the restart (rain between the last
#   reading and the restart is lost: at most one reading interval); never a negative;
# - an increment above the increment quantity's range, or faster than
#   ``max_increase_per_h`` over the interval (counted as at least MIN_JUMP_INTERVAL_H), is
#   a jump (a different device on the same id, a misread total): no increment, flagged;
#   the new total becomes the baseline so the next reading counts again.

INCREMENT_DECIMALS: Final = 4  # 0.0001 mm: below any gauge's step (0.001 in = 0.0254 mm)
MIN_JUMP_INTERVAL_H: Final = 0.1  # a short interval still allows 6 minutes' worth
StepKind = Literal["baseline", "older", "increase", "reset", "jump"]


@dataclass(frozen=True, slots=True)
class CounterReading:
    """A series' last total and the time of its reading (the baseline)."""

    total: float
    time_ns: int


@dataclass(frozen=True, slots=True)
class CounterStep:
    kind: StepKind
    increment: float | None  # None for baseline, older, jump
    advance: bool  # the new reading becomes the baseline
    detail: str = ""


def counter_increase(
    previous: CounterReading | None,
    total: float,
    time_ns: int,
    *,
    maximum: float,
    max_per_h: float | None = None,
) -> CounterStep:
    """The increment from ``previous`` to ``total`` at ``time_ns`` (rules above).

    ``maximum`` is the largest increment believed whatever the interval (the increment
    quantity's catalogue maximum).
    """
    if previous is None:
        return CounterStep("baseline", None, True)
    if time_ns <= previous.time_ns:
        return CounterStep("older", None, False)
    if total >= previous.total:
        kind: StepKind = "increase"
        increment = round(total - previous.total, INCREMENT_DECIMALS)
    else:
        kind, increment = "reset", round(total, INCREMENT_DECIMALS)
    hours = (time_ns - previous.time_ns) / 3.6e12
    limit = maximum
    if max_per_h is not None:
        limit = min(limit, max_per_h * max(hours, MIN_JUMP_INTERVAL_H))
    if increment > limit:
        what = "restart from 0" if kind == "reset" else "increase"
        return CounterStep("jump", None, True,
                           f"{what} from {previous.total:g} to {total:g} in {hours:.2f} h:"
                           f" {increment:g} > {limit:g}")
    return CounterStep(kind, increment, True)
