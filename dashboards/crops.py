"""Crop thresholds for the dashboards, from the rule presets (rules/presets.py).

The numbers live with the alert rules so a dashboard's red line and the alert that tells a
farmer to water are the same number. Dashboards are built for one crop (``--crop``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_CROP: Final = "tomato"


@dataclass(frozen=True, slots=True)
class CropThresholds:
    crop: str
    soil_refill_pct: float | None = None  # water below this
    soil_full_pct: float | None = None  # wetter than this is waterlogging
    frost_warn_c: float | None = None
    heat_c: float | None = None


def presets_available() -> bool:
    try:
        import rules.presets  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def crop_thresholds(crop: str = DEFAULT_CROP) -> CropThresholds:
    """The preset's thresholds; a missing key leaves that line off the dashboards.

    Until ``rules/presets.py`` exists the dashboards carry no crop lines at all (the CLI
    says so) rather than numbers typed in twice.
    """
    if not presets_available():
        return CropThresholds(crop)
    from rules.presets import thresholds

    t = thresholds(crop)
    return CropThresholds(
        crop=crop,
        soil_refill_pct=t.get("soil_moisture_pct.refill"),
        soil_full_pct=t.get("soil_moisture_pct.full"),
        frost_warn_c=t.get("temperature_c.frost_warn"),
        heat_c=t.get("temperature_c.heat"),
    )


def crop_names() -> list[str]:
    from rules.presets import names

    return list(names())


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
