"""Crop thresholds for the dashboards, from the rule presets (rules/presets.py).

The numbers live with the alert rules so a dashboard's red line and the alert that tells a
farmer to water are the same number. Dashboards are built for one crop (``--crop``, any
preset with soil-moisture thresholds); frost, battery and radio lines come from the
``common`` preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_CROP: Final = "tomato"


COMMON_PRESET: Final = "common"  # thresholds for every farm: frost, battery, radio


@dataclass(frozen=True, slots=True)
class CropThresholds:
    crop: str
    soil_refill_pct: float | None = None  # water below this
    soil_full_pct: float | None = None  # wetter than this is waterlogging
    frost_warn_c: float | None = None
    heat_c: float | None = None
    battery_low_v: float | None = None
    battery_ok_v: float | None = None
    rssi_weak_dbm: float | None = None


def crop_thresholds(crop: str = DEFAULT_CROP) -> CropThresholds:
    """The ``common`` preset's thresholds overlaid with the crop's; a key neither has
    leaves that line off the dashboards."""
    from rules.presets import thresholds

    t = {**thresholds(COMMON_PRESET), **thresholds(crop)}
    return CropThresholds(
        crop=crop,
        soil_refill_pct=t.get("soil_moisture_pct.refill"),
        soil_full_pct=t.get("soil_moisture_pct.full"),
        frost_warn_c=t.get("temperature_c.frost_warn"),
        heat_c=t.get("temperature_c.heat"),
        battery_low_v=t.get("battery_v.low"),
        battery_ok_v=t.get("battery_v.ok"),
        rssi_weak_dbm=t.get("rssi_dbm.weak"),
    )


def crop_names() -> list[str]:
    """Presets that hold soil-moisture thresholds (crops and soil types)."""
    from rules.presets import names, thresholds

    return [n for n in names() if "soil_moisture_pct.refill" in thresholds(n)]


def soil_moisture_steps(t: CropThresholds) -> tuple[str, list[tuple[float, str]]]:
    """(base colour, steps): red = needs water, green = fine, blue = too wet."""
    steps = []
    if t.soil_refill_pct is not None:
        steps.append((t.soil_refill_pct, "green"))
    if t.soil_full_pct is not None:
        steps.append((t.soil_full_pct, "blue"))
    return ("red" if t.soil_refill_pct is not None else "green"), steps


def air_temperature_steps(t: CropThresholds) -> tuple[str, list[tuple[float, str]]]:
    """(base colour, steps): purple = frost risk, green = fine, red = heat stress."""
    steps = []
    if t.frost_warn_c is not None:
        steps.append((t.frost_warn_c, "green"))
    if t.heat_c is not None:
        steps.append((t.heat_c, "red"))
    return ("purple" if t.frost_warn_c is not None else "green"), steps


def battery_steps(t: CropThresholds) -> tuple[str, list[tuple[float, str]]]:
    """(base colour, steps): red = replace or charge soon, orange = low, green = fine."""
    steps = []
    if t.battery_low_v is not None:
        steps.append((t.battery_low_v, "orange"))
    if t.battery_ok_v is not None:
        steps.append((t.battery_ok_v, "green"))
    return ("red" if steps else "green"), steps


def rssi_steps(t: CropThresholds) -> tuple[str, list[tuple[float, str]]]:
    """(base colour, steps): red = too weak to rely on, green = fine."""
    if t.rssi_weak_dbm is None:
        return "green", []
    return "red", [(t.rssi_weak_dbm, "green")]
