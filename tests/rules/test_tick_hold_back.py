"""The scheduler's tick holds a rule back as a reading does (``unless``,
``unless_quarantined``, ``unless_rain``): the time-driven path is where a rule decides when
no reading comes, and a node whose readings are all quarantined sends none.

The pending-then-``for`` cases of the tomato preset are rule unit tests
(rules/tests/tomato.yaml); these are the ``absent_for`` ones, which only the tick fires.
"""

from __future__ import annotations

from pathlib import Path

from rules.alert import AlertEvent
from rules.engine import Engine, NodeContext, Sample
from rules.loader import load_rule_files

M = 60 * 10**9
T0 = 1_782_860_400 * 10**9  # 2026-07-01 08:00 JST
NODES = {"n1": NodeContext(site="farm", plot="p1")}
RULES = """\
version: 1
rules:
  - name: battery_low
    threshold: {quantity: battery_v, below: 3.45, clear_above: 3.6}
    message: {en: "{node}: battery {value:.2f} V"}
  - name: probe_silent
    absent_for: 1h
    quantity: soil_moisture_pct
    unless: [battery_low]
    unless_quarantined: 2h
    unless_rain: {above_mm: 10, within: 3h}
    message: {en: "{node}: soil probe sent nothing for {silent_for}"}
"""


def _engine(tmp_path: Path) -> Engine:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return Engine(load_rule_files([path]), nodes=NODES)


def _sample(minute: int, **values: float) -> Sample:
    sensor = "soil_10cm" if "soil_moisture_pct" in values else "main"
    return Sample(T0 + minute * M, "farm", "p1", "n1", sensor, values)


def _ticks(engine: Engine, minutes: range) -> list[AlertEvent]:
    return [e for m in minutes for e in engine.tick(T0 + m * M)]


def _fired(events: list[AlertEvent]) -> list[tuple[str, int]]:
    return [(e.rule, (e.time_ns - T0) // M) for e in events if e.state == "firing"]


def test_a_probe_whose_readings_are_quarantined_is_not_also_reported_silent(
        tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    engine.observe(_sample(0, soil_moisture_pct=30.0))
    for minute in range(10, 61, 10):  # every later soil reading rejected, the last at 1 h
        engine.observe_rejection("n1", "sensor_fault", T0 + minute * M)
    # held back until 2 h after the last rejection (at 1 h), then the silence is told
    assert _fired(_ticks(engine, range(1, 181))) == []
    assert _fired(_ticks(engine, range(181, 183))) == [("probe_silent", 181)]


def test_a_node_whose_battery_is_failing_is_not_also_reported_silent(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    engine.observe(_sample(0, soil_moisture_pct=30.0))
    assert _fired(engine.observe(_sample(30, battery_v=3.3))) == [("battery_low", 30)]
    assert _fired(_ticks(engine, range(1, 121))) == []
    engine.observe(_sample(121, battery_v=3.8))  # battery back: the silence is told now
    assert _fired(_ticks(engine, range(122, 124))) == [("probe_silent", 122)]


def test_rain_at_the_site_holds_back_a_silent_probe_rule_that_says_so(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    engine.observe(_sample(0, soil_moisture_pct=30.0))
    engine.observe(_sample(30, rain_mm=12.0))
    assert _fired(_ticks(engine, range(1, 211))) == []  # rain within 3 h until 3h30m
    assert _fired(_ticks(engine, range(211, 213))) == [("probe_silent", 211)]
