"""The engine's rule index (a plan of rules per kind of sample) skips no rule it should
evaluate and adds none: on random rule sets and random rows it behaves exactly like an
engine that looks at every rule for every sample and matches its scope afresh."""

from __future__ import annotations

import fnmatch
import random
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import presets
from rules.alert import AlertEvent
from rules.engine import CompiledRule, Engine, NodeContext, Sample
from rules.loader import LoadedRule, load_rule_files

# Rules whose file and rule scopes use every scope key, patterns and crop "none".
SCOPED = {
    "scope": {"site": ["s1", "s3"]},
    "rules": [
        {"name": "g.hot_p", "threshold": {"quantity": "temperature_c", "above": 30},
         "scope": {"plot": ["p*"]}, "message": {"en": "{node} hot"}},
        {"name": "g.dry_nodes", "threshold": {"quantity": "soil_moisture_pct", "below": 20,
                                              "clear_above": 25},
         "scope": {"node": ["n1", "n3"]}, "confirm": 2, "for": "10m",
         "unless": ["battery_low"], "message": {"en": "{node} dry"}},
        {"name": "g.soil_rate", "rate": {"quantity": "soil_moisture_pct", "window": "3h",
                                         "below": -1},
         "scope": {"sensor": ["soil_*"]}, "message": {"en": "{node} drying"}},
        {"name": "g.humid_nocrop", "threshold": {"quantity": "humidity_pct", "above": 95},
         "scope": {"crop": ["none"]}, "unless_rain": {"above_mm": 5, "within": "1h"},
         "message": {"en": "{node} humid"}},
        {"name": "g.silent_n12", "absent_for": "1h", "scope": {"node": ["n[12]"]},
         "message": {"en": "{node} silent"}},
    ],
}
ANYWHERE = {
    "rules": [
        {"name": "h.hot_dry_main", "expr": {"when": "temperature_c > 30 and humidity_pct < 30"},
         "scope": {"sensor": ["main"], "crop": ["tomato", "strawberry"]},
         "unless_quarantined": "30m", "message": {"en": "{node} hot and dry"}},
        {"name": "h.rain_silent", "absent_for": "2h", "quantity": "rain_mm",
         "message": {"en": "{node} no rain figure"}},
        {"name": "h.tank", "threshold": {"quantity": "water_level_cm", "below": 2},
         "scope": {"plot": ["q?"]}, "message": {"en": "{node} tank"}},
    ],
}
NODES = {"n1": NodeContext(crop="tomato"), "n2": NodeContext(crop="strawberry"),
         "n3": NodeContext(), "n4": NodeContext(crop="green_pepper")}  # n5: unregistered
VALUES = {
    "temperature_c": [-3.0, 1.0, 5.0, 20.0, 33.0, 38.0], "humidity_pct": [20.0, 60.0, 99.9],
    "soil_moisture_pct": [5.0, 15.0, 22.0, 30.0, 45.0], "battery_v": [3.2, 3.5, 3.9],
    "rssi_dbm": [-125.0, -110.0, -90.0], "rain_mm": [0.0, 2.0, 15.0],
    "dew_point_c": [-5.0, 3.0], "water_level_cm": [1.0, 3.0, 10.0],
}
T0 = 1_782_860_400 * 10**9
MINUTE = 60 * 10**9


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> list[LoadedRule]:
    d = tmp_path_factory.mktemp("rules")
    files: list[str | Path] = [presets.entry(n) for n in presets.names()]
    files += sorted(Path("rules/tests/rules").glob("*.yaml"))
    for name, data in (("scoped.yaml", SCOPED), ("anywhere.yaml", ANYWHERE)):
        (d / name).write_text(yaml.safe_dump(data))
        files.append(d / name)
    return load_rule_files(files)


def _scope_holds(r: CompiledRule, s: Sample, nodes: dict[str, NodeContext]) -> bool:
    crop = nodes[s.node].crop if s.node in nodes else None
    wanted = (("site", s.site), ("plot", s.plot), ("node", s.node), ("sensor", s.sensor),
              ("crop", crop or "none"))
    return all(
        getattr(sc, key) is None or any(fnmatch.fnmatchcase(value, p)
                                        for p in getattr(sc, key))
        for sc in r.scope for key, value in wanted
    )


class EveryRuleEngine(Engine):
    """Reference: every rule considered for every sample, scope matched afresh each time."""

    def observe(self, sample: Sample) -> list[AlertEvent]:
        self._plans.clear()  # no plan is reused: each sample is planned from scratch
        return super().observe(sample)

    def _plan(self, sample: Sample) -> tuple[tuple[CompiledRule, str], ...]:
        plan = []
        for quantity in (None, *sample.values):
            for r in self.rules:
                if r.quantity == quantity and _scope_holds(r, sample, self.nodes):
                    per_node = r.rule.absent_for is not None and r.quantity is None
                    sensor = "main" if per_node else sample.sensor
                    plan.append((r, f"{sample.site}/{sample.plot}/{sample.node}/{sensor}"))
        return tuple(plan)


# Hypothesis draws the seed; the script is long and random, with a few places and sets of
# quantities per example, so that samples of one kind repeat (a plan is reused) and kinds
# that differ in one part only meet (a plan must not be).
def _script(rnd: random.Random, steps: int) -> list[tuple[str, int, object]]:
    where = [(rnd.choice(["s1", "s2", "s3"]), rnd.choice(["p1", "p2", "q1"]),
              rnd.choice(["n1", "n2", "n3", "n4", "n5"])) for _ in range(rnd.randint(1, 4))]
    sensors = rnd.sample(["main", "soil_10cm", "soil_30cm", "leaf"], rnd.randint(1, 3))
    keysets = [rnd.sample(sorted(VALUES), rnd.randint(0, 4)) for _ in range(rnd.randint(1, 4))]
    script: list[tuple[str, int, object]] = []
    for _ in range(steps):
        roll = rnd.random()
        if roll < 0.85:
            values = {k: rnd.choice(VALUES[k]) for k in rnd.choice(keysets)}
            script.append(("observe", rnd.choice([0, 1, 10, 10, 60, 180, -10]),
                           (*rnd.choice(where), rnd.choice(sensors), values)))
        elif roll < 0.95:
            script.append(("tick", rnd.choice([1, 30, 90]), None))
        else:
            script.append(("reject", rnd.choice([0, 5]), rnd.choice(["n1", "n2", "n3"])))
    return script


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_indexed_engine_matches_every_rule_engine(pool: list[LoadedRule], seed: int) -> None:
    rnd = random.Random(seed)
    rules = [r for r in pool if rnd.random() < 0.6]
    script = _script(rnd, 300)
    indexed = Engine(rules, nodes=NODES)
    reference = EveryRuleEngine(rules, nodes=NODES)
    watched = [("s1", "p1", "n1"), ("s1", "q1", "n2"), ("s3", "p2", "n3")]
    indexed.watch_nodes(watched, T0)
    reference.watch_nodes(watched, T0)
    t = T0
    for kind, minutes, arg in script:
        t += minutes * MINUTE
        if kind == "observe":
            site, plot, node, sensor, values = arg  # type: ignore[misc]
            s = Sample(t, site, plot, node, sensor, values)
            assert indexed.observe(s) == reference.observe(s)
        elif kind == "tick":
            assert indexed.tick(t) == reference.tick(t)
        else:
            indexed.observe_rejection(str(arg), "out_of_range", t)
            reference.observe_rejection(str(arg), "out_of_range", t)
        assert indexed.take_changes() == reference.take_changes()
