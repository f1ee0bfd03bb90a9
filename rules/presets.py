"""The shipped rule presets (``rules/presets/*.yaml``) and the numbers they hold.

Each preset file names its thresholds once, with their sources; rules refer to them by
name, and dashboards draw the same numbers (soil-moisture refill point, heat limit...)
through :func:`thresholds`, so a tuned number changes both.
"""

from __future__ import annotations

from functools import cache

from rules.loader import PRESET_DIR, PRESET_PREFIX, parse_rule_file
from rules.model import RuleFile


def names() -> list[str]:
    """Preset names, e.g. ``['common', 'green_pepper', ..., 'tomato']``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def entry(name: str) -> str:
    """How a config's ``rules:`` list names a preset: ``preset:tomato``."""
    return f"{PRESET_PREFIX}{name}"


@cache
def load(name: str) -> RuleFile:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"no preset {name!r}; presets: {', '.join(names())}")
    model, problems = parse_rule_file(path, path.read_text(encoding="utf-8"))
    if model is None:
        raise ValueError("; ".join(map(str, problems)))
    return model


def thresholds(preset: str) -> dict[str, float]:
    """``{'soil_moisture_pct.refill': 22.2, 'temperature_c.heat': 35.0, ...}``."""
    return {key: t.value for key, t in load(preset).thresholds.items()}


def crop_presets() -> dict[str, str]:
    """Crop name (as in the device registry's ``crop``) -> preset name."""
    out: dict[str, str] = {}
    for name in names():
        scope = load(name).scope
        for crop in (scope.crop or []) if scope else []:
            if crop != "none":
                out[crop] = name
    return out


def crop_title(crop: str, language: str) -> str:
    """How people name a crop: its preset's title (``夏秋トマト``), else the registry's word."""
    preset = crop_presets().get(crop)
    title = load(preset).title if preset else None
    if title is None:
        return crop
    return str(getattr(title, language, None) or title.en)
