"""Rule unit tests: input series, evaluation times and the alerts expected, in YAML.

The shape of ``promtool test rules``, so a rule change is checked before it reaches a
farm (``satoyama rules test FILE``)::

    rule_files: [preset:common, preset:tomato]   # relative paths: against this file
    nodes: {n1: {site: farm, plot: p3, crop: tomato, depth_cm: {main: 15}}}  # as the registry
    start: "2026-07-01T06:00:00+09:00"
    interval: 10m          # spacing of series values (default 10m)
    tick: 1m               # the scheduler's clock for `for` and `absent_for` (default 1m)
    tests:
      - name: dry soil becomes an alert after an hour
        series:
          - {node: n1, sensor: soil_10cm, quantity: soil_moisture_pct, values: "30-1x10 20x6"}
        restart_at: [1h30m]  # the engine is rebuilt from its saved states here
        alerts:              # at an offset from start: every pending/firing alert, exactly
          - at: 1h
            firing: []
          - at: 2h50m
            firing: [{rule: tomato.soil_dry, sensor: soil_10cm}]
        transitions:         # optional: the exact list of transitions, in order
          - {at: 1h50m, rule: tomato.soil_dry, state: pending}

Series values use promtool's expanding notation: ``a+bxn`` is ``a, a+b, ... a+n*b``
(n+1 values), ``axn`` repeats ``a`` n+1 times, ``_`` is a missing sample (``_xn``:
n+1 of them). Values of one node and sensor at one time form one sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from gateway.config.problems import ConfigError, ConfigProblem, translate
from gateway.config.yamlmarks import compose_marks
from rules.alert import AlertEvent
from rules.durations import format_duration, parse_duration
from rules.engine import NS, Engine, NodeContext, Sample
from rules.loader import LoadedRule, load_rule_files

Seconds = Annotated[float, BeforeValidator(parse_duration)]
_TERM = re.compile(r"^(_|-?\d+(?:\.\d+)?)(?:([+-]\d+(?:\.\d+)?)?x(\d+))?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NodeSpec(_Model):
    site: str = "farm"
    plot: str = "plot-1"
    crop: str | None = None
    depth_cm: dict[str, int] = Field(default_factory=dict, description="Probe depth per "
                                     "sensor, as the registry's sensors.<tag>.depth_cm.")


class SeriesSpec(_Model):
    node: str
    sensor: str = "main"
    quantity: str
    values: str
    start: Seconds = Field(default=0, description="Offset of the first value.")
    interval: Seconds | None = None


class Rejection(_Model):
    at: Seconds
    node: str
    reason: str = "out_of_range"


class AlertMatch(_Model):
    rule: str
    node: str | None = None
    sensor: str | None = None
    plot: str | None = None
    site: str | None = None

    def matches(self, key: tuple[str, str, str, str, str]) -> bool:
        rule, site, plot, node, sensor = key
        return rule == self.rule and all(
            want is None or want == got
            for want, got in ((self.node, node), (self.sensor, sensor), (self.plot, plot),
                              (self.site, site)))


class Checkpoint(_Model):
    at: Seconds
    pending: list[AlertMatch] | None = None
    firing: list[AlertMatch] | None = None


class TransitionMatch(AlertMatch):
    at: Seconds | None = None
    state: str
    message: str | None = Field(default=None, description="Substring of the English text.")
    message_ja: str | None = None


class TestCase(_Model):
    name: str
    series: list[SeriesSpec] = Field(default_factory=list)
    rejections: list[Rejection] = Field(default_factory=list)
    restart_at: list[Seconds] = Field(default_factory=list)
    end: Seconds | None = Field(default=None, description="Run the clock to here "
                                "(default: the last checkpoint or sample).")
    alerts: list[Checkpoint] = Field(default_factory=list)
    transitions: list[TransitionMatch] | None = None
    watch: list[str] | None = Field(default=None, description="Only these rules' alerts "
                                    "and transitions are compared (default: all).")


class TestFile(_Model):
    rule_files: list[str]
    timezone: str = "Asia/Tokyo"
    nodes: dict[str, NodeSpec] = Field(default_factory=dict)
    start: datetime
    interval: Seconds = 600
    tick: Seconds = 60
    tests: list[TestCase]


@dataclass
class CaseResult:
    name: str
    failures: list[str] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def expand_values(text: str) -> list[float | None]:
    """promtool's series notation -> values (None for ``_``)."""
    out: list[float | None] = []
    for term in text.split():
        m = _TERM.match(term)
        if m is None:
            raise ValueError(f"{term!r} is not a value, 'a+bxn', 'axn' or '_'")
        first, step, count = m.groups()
        n = int(count) if count is not None else 0
        if first == "_":
            if step:
                raise ValueError(f"{term!r}: '_' takes no step")
            out.extend([None] * (n + 1))
            continue
        a, b = float(first), float(step or 0)
        out.extend(round(a + i * b, 9) for i in range(n + 1))
    return out


def load_test_file(path: Path) -> tuple[TestFile, list[LoadedRule]]:
    """The test file and its rules; raises ConfigError with located problems."""
    text = path.read_text(encoding="utf-8")
    try:
        marks = compose_marks(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(path, "", None, f"not valid YAML: {exc}")]) from None
    try:
        spec = TestFile.model_validate(data)
    except ValidationError as exc:
        problems = [p for e in exc.errors() for p in translate(
            e, path, lambda loc: (marks.line_of(loc), None), root=TestFile)]
        raise ConfigError(problems) from None
    rules = load_rule_files(list(spec.rule_files), base_dir=path.parent)
    return spec, rules


def run_case(spec: TestFile, rules: list[LoadedRule], case: TestCase) -> CaseResult:
    start_ns = int(spec.start.timestamp()) * NS
    nodes = {name: NodeContext(crop=n.crop, site=n.site, plot=n.plot, depth_cm=n.depth_cm)
             for name, n in spec.nodes.items()}

    # Samples: one per (time, node, sensor), merging the series' quantities.
    merged: dict[tuple[int, str, str], dict[str, float]] = {}
    for s in case.series:
        step = int((s.interval or spec.interval) * NS)
        for i, v in enumerate(expand_values(s.values)):
            if v is not None:
                t = start_ns + int(s.start * NS) + i * step
                merged.setdefault((t, s.node, s.sensor), {})[s.quantity] = v
    samples = []
    for (t, node, sensor), values in sorted(merged.items()):
        n = spec.nodes.get(node, NodeSpec())
        samples.append(Sample(t, n.site, n.plot, node, sensor, values))

    checkpoints = sorted(case.alerts, key=lambda c: c.at)
    last = max([c.at for c in checkpoints] + [(s.time_ns - start_ns) / NS for s in samples]
               + [0.0])
    end_ns = start_ns + int((case.end if case.end is not None else last) * NS)
    restarts = sorted(start_ns + int(r * NS) for r in case.restart_at)
    rejections = sorted((start_ns + int(r.at * NS), r.node, r.reason) for r in case.rejections)

    saved: dict[tuple[str, str], str] = {}

    def build() -> Engine:
        return Engine(rules, timezone=spec.timezone, nodes=nodes, states=saved)

    def save(engine: Engine) -> None:
        for key, value in engine.take_changes().items():
            if value is None:
                saved.pop(key, None)
            else:
                saved[key] = value

    engine = build()
    engine.watch_nodes([(n.site, n.plot, name) for name, n in spec.nodes.items()], start_ns)
    save(engine)
    result = CaseResult(case.name)
    tick_ns = int(spec.tick * NS)
    # One timeline: samples, ticks, rejections, restarts and checkpoints, in time order;
    # at one instant: rejections, then samples, then the tick, then restarts, then checks.
    timeline: list[tuple[int, int, Any]] = []
    timeline += [(s.time_ns, 1, s) for s in samples]
    timeline += [(t, 0, r) for t, *r in rejections]
    timeline += [(t, 2, None) for t in range(start_ns + tick_ns, end_ns + 1, tick_ns)]
    timeline += [(t, 3, None) for t in restarts]
    timeline += [(start_ns + int(c.at * NS), 4, c) for c in checkpoints]
    timeline.sort(key=lambda x: (x[0], x[1]))
    for t, kind, item in timeline:
        if kind == 0:
            engine.observe_rejection(item[0], item[1], t)
        elif kind == 1:
            result.events.extend(engine.observe(item))
        elif kind == 2:
            result.events.extend(engine.tick(t))
        elif kind == 3:
            save(engine)
            engine = build()
        else:
            result.failures.extend(_check(engine, item, case.watch))
        save(engine)
    if case.transitions is not None:
        events = [e for e in result.events if case.watch is None or e.rule in case.watch]
        result.failures.extend(_check_transitions(events, case.transitions, start_ns))
    return result


def _active(engine: Engine, watch: list[str] | None
            ) -> dict[str, list[tuple[str, str, str, str, str]]]:
    out: dict[str, list[tuple[str, str, str, str, str]]] = {"pending": [], "firing": []}
    for r in engine.rules:
        if watch is not None and r.name not in watch:
            continue
        for series, st in r.states.items():
            if st.phase in out:
                out[st.phase].append((r.name, *series.split("/", 3)))  # type: ignore[arg-type]
    return out


def _check(engine: Engine, cp: Checkpoint, watch: list[str] | None) -> list[str]:
    failures = []
    active = _active(engine, watch)
    for state in ("pending", "firing"):
        wanted: list[AlertMatch] | None = getattr(cp, state)
        if wanted is None:
            continue
        got = sorted(active[state])
        unmatched = list(got)
        missing = []
        for want in wanted:
            hit = next((k for k in unmatched if want.matches(k)), None)
            if hit is None:
                missing.append(want.rule)
            else:
                unmatched.remove(hit)
        if missing or unmatched:
            failures.append(
                f"at {format_duration(cp.at)}: {state}: expected "
                f"{[w.model_dump(exclude_none=True) for w in wanted]}, got "
                f"{[_show(k) for k in got]}")
    return failures


def _show(key: tuple[str, str, str, str, str]) -> str:
    rule, site, plot, node, sensor = key
    return f"{rule}@{site}/{plot}/{node}/{sensor}"


def _check_transitions(events: list[AlertEvent], wanted: list[TransitionMatch],
                       start_ns: int) -> list[str]:
    got = [(format_duration((e.time_ns - start_ns) / NS), e) for e in events]
    failures = []
    if len(got) != len(wanted):
        failures.append(f"expected {len(wanted)} transitions, got {len(got)}: "
                        + "; ".join(f"{at} {e.rule} {e.state}" for at, e in got))
    for i, (want, (at, e)) in enumerate(zip(wanted, got, strict=False)):
        ok = (want.matches((e.rule, e.site, e.plot, e.node, e.sensor)) and want.state == e.state
              and (want.at is None or int(want.at * NS) == e.time_ns - start_ns)
              and (want.message is None or want.message in e.message("en"))
              and (want.message_ja is None or want.message_ja in e.message("ja")))
        if not ok:
            failures.append(
                f"transition {i + 1}: expected {want.model_dump(exclude_none=True)}, got "
                f"at {at} {e.rule} {e.state} on {e.site}/{e.plot}/{e.node}/{e.sensor}: "
                f"{e.message('en')!r}")
    return failures


def run_test_file(path: Path) -> list[CaseResult]:
    spec, rules = load_test_file(path)
    return [run_case(spec, rules, case) for case in spec.tests]
