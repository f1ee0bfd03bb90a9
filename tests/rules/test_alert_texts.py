"""Alert texts read as sentences in English and Japanese whatever the engine fills in: a
soil probe without a depth (on ``main``), a refill point less than an hour away, a node
silent for hours. Every preset text is rendered the way the engine renders it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config import default_settings
from gateway.config.models import DeviceConfig, SensorConfig
from rules import presets
from rules.alert import AlertEvent
from rules.durations import say_duration
from rules.engine import NS, Engine, NodeContext, Sample
from rules.loader import load_rule_files
from rules.wiring import node_contexts

T0 = 1_782_853_200 * NS  # 2026-07-01 06:00 JST
STEP = 600 * NS
SOIL_PRESETS = [n for n in presets.names() if n != "common"]
WATERING_CROPS = ("tomato", "strawberry", "green_pepper", "japanese_yam")
# What a broken fill looks like: an empty depth ("soil at  is", "深さの"), "now" where an
# amount of time belongs ("within now", "今すぐ以内に"), English units in Japanese, a field
# left unfilled.
BROKEN = re.compile(r"  | at (?:is|\(|—)|深さの|\bnow\b|今すぐ|\d+[hmd]\b[^a-z]|[{}]")


def _node(preset: str) -> NodeContext:
    crop = presets.load(preset).scope.crop[0]  # type: ignore[union-attr,index]
    return NodeContext(crop=None if crop == "none" else crop)


def _texts(events: list[AlertEvent]) -> list[str]:
    return [part for e in events for language in ("en", "ja")
            for part in (e.text[language].summary, e.text[language].why,
                         e.text[language].action)]


def _run(preset: str, sensor: str, values: list[float], node: NodeContext) -> list[AlertEvent]:
    engine = Engine(load_rule_files(["preset:common", presets.entry(preset)]),
                    nodes={"n1": node})
    events: list[AlertEvent] = []
    for i, v in enumerate(values):
        t = T0 + i * STEP
        events += engine.observe(Sample(t, "farm", "p1", "n1", sensor,
                                        {"soil_moisture_pct": v}))
        events += engine.tick(t)
    return [e for e in events if e.state == "firing"]


@pytest.mark.parametrize("sensor", ["main", "soil_10cm"])
@pytest.mark.parametrize("preset", SOIL_PRESETS)
def test_dry_soil_texts_read_well_with_and_without_a_depth(preset: str, sensor: str) -> None:
    refill = presets.thresholds(preset)["soil_moisture_pct.refill"]
    firing = _run(preset, sensor, [refill - 1] * 12, _node(preset))
    assert [e.rule for e in firing] == [f"{preset}.soil_dry"]
    en, ja = firing[0].text["en"].summary, firing[0].text["ja"].summary
    if sensor == "main":
        assert "soil is " in en and "深さ" not in ja, (en, ja)
    else:
        assert "soil at 10 cm is " in en and "深さ10 cmの土壌水分が" in ja, (en, ja)
    for text in _texts(firing):
        assert not BROKEN.search(text), text


@pytest.mark.parametrize("sensor", ["main", "soil_10cm"])
@pytest.mark.parametrize("crop", WATERING_CROPS)
def test_water_soon_less_than_an_hour_ahead_says_an_amount_of_time(crop: str,
                                                                    sensor: str) -> None:
    # 0.3 %/h: when the slope is known (4 h) the refill point is 20 minutes away
    refill = presets.thresholds(crop)["soil_moisture_pct.refill"]
    values = [round(refill + 1.3 - 0.05 * i, 3) for i in range(25)]
    firing = [e for e in _run(crop, sensor, values, NodeContext(crop=crop))
              if e.rule == f"{crop}.water_soon"]
    assert len(firing) == 1
    texts = firing[0].text
    assert "water within ~1 h" in texts["en"].summary
    assert "約1時間以内に水やりを" in texts["ja"].summary
    assert "in ~1 h." in texts["en"].why and "約1時間で" in texts["ja"].why
    for text in _texts(firing):
        assert not BROKEN.search(text), text


def test_the_registry_names_the_depth_of_a_probe_on_main() -> None:
    node = NodeContext(crop="tomato", depth_cm={"main": 15})
    firing = _run("tomato", "main", [21.0] * 12, node)
    assert "soil at 15 cm is 21.0 %" in firing[0].text["en"].summary
    assert "深さ15 cmの土壌水分が 21.0 %" in firing[0].text["ja"].summary


def test_the_engine_gets_the_probe_depths_of_the_device_registry(tmp_path: Path) -> None:
    settings = default_settings(tmp_path, "kamiyama")
    settings.devices = {
        "n1": DeviceConfig(plot="p1", crop="tomato", sensors={
            "main": SensorConfig(depth_cm=15), "air": SensorConfig()}),
        "n2": DeviceConfig(plot="p2"),
    }
    nodes = node_contexts(settings)
    assert nodes["n1"].depth_cm == {"main": 15} and nodes["n2"].depth_cm == {}


def test_a_silent_node_is_reported_in_japanese_units_in_japanese() -> None:
    engine = Engine(load_rule_files(["preset:common"]))
    engine.watch_nodes([("farm", "p1", "n1")], T0)
    firing = engine.tick(T0 + (2 * 3600 + 5 * 60) * NS)
    assert firing[0].text["en"].summary == "Node n1 (p1) has sent nothing for 2h5m"
    assert firing[0].text["ja"].summary == "ノード n1（p1）から2時間5分受信がありません"


@pytest.mark.parametrize(("seconds", "en", "ja"), [
    (7200, "2h", "2時間"), (5400, "1h30m", "1時間30分"), (45 * 60, "45m", "45分"),
    (90000, "1d1h", "1日1時間"), (30, "30s", "30秒"),
])
def test_durations_are_worded_per_language(seconds: int, en: str, ja: str) -> None:
    assert say_duration(seconds, "en") == en
    assert say_duration(seconds, "ja") == ja
