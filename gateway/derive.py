"""Derived quantities: dew point and vapour-pressure deficit (pure functions).

Saturation vapour pressure follows FAO Irrigation and Drainage Paper 56, eq. 11
(Tetens form): e°(T) = 0.6108 exp(17.27 T / (T + 237.3)) kPa. Actual vapour pressure from
relative humidity, eq. 19 with a single RH reading: e_a = e°(T) RH / 100. VPD = e° - e_a.
The dew point inverts the same Magnus-Tetens curve, so dew point and VPD agree with each
other (FAO-56 eq. 14 inverted; the Magnus form with a = 17.27, b = 237.3 °C).
"""

from __future__ import annotations

import math

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
    return {
        "dew_point_c": round(dew_point_c(t, rh), 2),
        "vpd_kpa": round(vpd_kpa(t, rh), 3),
    }
