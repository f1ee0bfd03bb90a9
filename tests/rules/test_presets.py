"""The shipped presets load, name their sources, and expose their numbers once."""

from __future__ import annotations

import pytest

from rules import presets
from rules.loader import load_rule_files

CROPS = ("tomato", "strawberry", "green_pepper", "japanese_yam")


def test_every_preset_loads_together_without_problems() -> None:
    loaded = load_rule_files([presets.entry(n) for n in presets.names()])
    assert {r.file.preset for r in loaded} == set(presets.names())
    assert len({r.rule.name for r in loaded}) == len(loaded)


@pytest.mark.parametrize("name", presets.names())
def test_every_threshold_names_its_source_and_every_rule_explains_itself(name: str) -> None:
    model = presets.load(name)
    assert model.sources, f"{name}: no sources"
    for key, t in model.thresholds.items():
        assert t.source.strip(), f"{name}: threshold {key} has no source"
    for rule in model.rules:
        assert rule.why is not None and rule.action is not None, rule.name
        for texts in (rule.message, rule.why, rule.action):
            assert texts.ja, f"{rule.name}: no Japanese text"


def test_first_deployment_crops_have_presets_with_watering_thresholds() -> None:
    assert {c: presets.crop_presets()[c] for c in CROPS} == {c: c for c in CROPS}
    for crop in CROPS:
        t = presets.thresholds(crop)
        # refill point below field capacity, both plausible volumetric water contents
        assert 5 < t["soil_moisture_pct.refill"] < t["soil_moisture_pct.full"] < 60
    # FAO-56 Table 22: strawberry (p=0.20) is refilled wetter than tomato (p=0.40)
    assert presets.thresholds("strawberry")["soil_moisture_pct.refill"] == 25.6
    assert presets.thresholds("tomato")["soil_moisture_pct.refill"] == 22.2
