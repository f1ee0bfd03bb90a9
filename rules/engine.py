"""The alert state machine: inactive -> pending -> firing -> resolved, with ``now`` passed in.

Pure: samples and clock ticks in, :class:`AlertEvent` transitions out, no I/O. The runner
(rules/runner.py) feeds it committed rows from the store, ticks it on a schedule for
time-based conditions, and saves :meth:`Engine.take_changes` with the events in one
transaction, so a restart resumes exactly where it stopped.

Per rule and series (site/plot/node/sensor) the engine keeps a :class:`SeriesState`.
A sample whose condition holds counts towards ``confirm``; after that many in a row the
alert is *pending* (or *firing* at once when ``for`` is 0); it fires when the condition has
held (or stayed between its alert and clear limits) for ``for``; it resolves only when the
condition is clearly over (hysteresis). ``unless`` rules firing on the same node, recent
quarantined readings of the node and recent rain at the site hold a rule back from
becoming pending (and cancel a pending one), never flip a firing one; the scheduler's tick
asks the same before a ``for`` or an ``absent_for`` fires an alert.

States restored at start-up are those of the configuration the gateway last ran with: a
node moved to another plot, a plot's crop changed or a rule file removed leave alerts that
no reading will ever clear. :meth:`Engine.retire_unconfigured` resolves them once, saying
why, as Alertmanager resolves an alert whose rule or series is gone.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from gateway.catalogue import BY_NAME
from rules.alert import AlertEvent, AlertText, fingerprint
from rules.conditions import Condition, SeriesState, compile_condition
from rules.durations import say_duration
from rules.loader import LoadedRule
from rules.model import Rule, Scope, Texts, number
from rules.templates import render

NS: Final = 1_000_000_000
_RESOLVED: Final = {"en": "Resolved: ", "ja": "解消: "}
RAIN_KEY: Final = "_rain"  # rule_state rows the engine keeps besides rules
QUARANTINE_KEY: Final = "_quarantine"
# Rejections that say a node's sensor readings are not to be trusted right now.
SENSOR_TROUBLE: Final = frozenset({"out_of_range", "sensor_fault", "stuck_value"})
# Where the gateway stores readings of nodes the device registry does not list
# (gateway/pipeline/validate.py): the one plot an unregistered node's series can be in.
UNASSIGNED_PLOT: Final = "unassigned"
# Why a restored alert is resolved at start-up (Engine.retire_unconfigured): the first
# words, then what changed.
_NO_LONGER: Final = {"en": "no longer configured: ", "ja": "設定の変更で対象外: "}
_UNFIT: Final = {
    "moved": {"en": "node {node} is now in plot {plot}",
              "ja": "ノード {node} は区画 {plot} に移動"},
    "moved_site": {"en": "node {node} is now at {site}/{plot}",
                   "ja": "ノード {node} は {site}/{plot} に移動"},
    "unregistered": {"en": "node {node} is not in the device registry",
                     "ja": "ノード {node} は機器登録にありません"},
    "crop": {"en": "node {node} now grows {crop}", "ja": "ノード {node} の作物は {crop} に変更"},
    "no_crop": {"en": "node {node} has no crop now", "ja": "ノード {node} の作物は未設定に変更"},
    "scope": {"en": "rule {rule} no longer applies to {series}",
              "ja": "ルール {rule} は {series} に適用されなくなりました"},
    "unloaded": {"en": "rule {rule} is no longer loaded",
                 "ja": "ルール {rule} は読み込まれていません"},
}


@dataclass(frozen=True, slots=True)
class Sample:
    """One stored row: the readings of one sensor of one node at one time."""

    time_ns: int
    site: str
    plot: str
    node: str
    sensor: str
    values: Mapping[str, float]

    @property
    def series(self) -> str:
        return f"{self.site}/{self.plot}/{self.node}/{self.sensor}"


@dataclass(frozen=True, slots=True)
class NodeContext:
    """What the device registry says about a node, for scopes, texts and telling a
    restored series of a node registered elsewhere since (None: the registry says none)."""

    crop: str | None = None
    site: str | None = None
    plot: str | None = None
    # Probe depth below ground per sensor tag (``sensors.<tag>.depth_cm``): a soil probe
    # on ``main`` has no depth in its name.
    depth_cm: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class CompiledRule:
    rule: Rule
    scope: tuple[Scope, ...]
    condition: Condition | None
    quantity: str | None  # what a sample must carry for this rule to look at it
    labels: dict[str, str]
    states: dict[str, SeriesState] = field(default_factory=dict)
    matches: dict[tuple[str, str, str, str], bool] = field(default_factory=dict)
    # Read once from ``rule`` for the per-sample path (evaluations run per row).
    name: str = ""
    for_ns: float = 0.0
    may_hold_back: bool = False  # has unless / unless_quarantined / unless_rain
    per_node: bool = False  # absent_for without a quantity: one series per node

    def __post_init__(self) -> None:
        rule = self.rule
        self.name = rule.name
        self.for_ns = rule.for_ * NS
        self.may_hold_back = bool(rule.unless) or rule.unless_quarantined is not None \
            or rule.unless_rain is not None
        self.per_node = rule.absent_for is not None and self.quantity is None


def _in(patterns: list[str] | None, value: str | None) -> bool:
    if patterns is None:
        return True
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _depth(sensor: str, depth_cm: Mapping[str, int]) -> str:
    """``10 cm``: from the registry, else from a ``soil_10cm`` tag; "" when unknown."""
    if sensor in depth_cm:
        return f"{depth_cm[sensor]} cm"
    if sensor.startswith("soil_") and sensor.endswith("cm") and sensor[5:-2].isdigit():
        return sensor[5:-2] + " cm"
    return ""


def _at_depth(depth: str, language: str) -> str:
    """The depth as a phrase that disappears when the depth is unknown (a probe on
    ``main``): "soil{at_depth} is" reads "soil at 10 cm is" or "soil is", and
    "{at_depth}土壌水分が" reads "深さ10 cmの土壌水分が" or "土壌水分が"."""
    if not depth:
        return ""
    return f"深さ{depth}の" if language == "ja" else f" at {depth}"


def _unfit(why: str, **names: str) -> dict[str, str]:
    """The reason of a retirement in each language, e.g. "no longer configured: node n1 is
    now in plot terrace-5"."""
    return {language: _NO_LONGER[language] + text.format(**names)
            for language, text in _UNFIT[why].items()}


def _retired(told: AlertEvent, previous: str, t_ns: int, reason: Mapping[str, str]
             ) -> AlertEvent:
    """The resolution of ``told`` (an alert's last transition) at ``t_ns``, for ``reason``.

    Severity and labels stay those of the transition people were told about: the notifier
    routes and groups a resolution by them, and one that no longer matched the alert's
    group would leave it to be reminded of forever."""
    text = {}
    for language in _NO_LONGER:
        summary = (told.text.get(language) or told.text.get("en")
                   or AlertText(told.message(language))).summary
        open_, close = ("（", "）") if language == "ja" else (" (", ")")
        text[language] = AlertText(
            f"{_RESOLVED[language]}{summary}{open_}{reason[language]}{close}")
    return dataclasses.replace(told, time_ns=t_ns, state="resolved", previous=previous,
                               text=text)


def _pick(texts: Texts | None, language: str) -> str:
    if texts is None:
        return ""
    return texts.by_language().get(language) or texts.en


def _eta(hours: float | None, language: str) -> str:
    # Templates put it after "within", "in", "以内に" and before "で": always an amount of
    # time, never a word like "now" ("within now", "今すぐ以内に").
    if hours is None:
        return "?"
    if hours < 36:
        n = max(1, round(hours))
        return f"約{n}時間" if language == "ja" else f"~{n} h"
    n = round(hours / 24)
    return f"約{n}日" if language == "ja" else f"~{n} days"


class Engine:
    def __init__(
        self,
        rules: Sequence[LoadedRule],
        *,
        timezone: str = "Asia/Tokyo",
        nodes: Mapping[str, NodeContext] | None = None,
        states: Mapping[tuple[str, str], str] | None = None,
        time_scale: float = 1.0,
    ) -> None:
        """``nodes`` is the device registry (None: there is none to go by, e.g. a backtest
        over raw history; then no node counts as unregistered). ``time_scale`` > 1 runs
        every duration and rate that many times faster (the demo's fast-forwarded field);
        texts still speak in field time."""
        self.tz = ZoneInfo(timezone)
        self.time_scale = time_scale
        self.nodes = dict(nodes or {})
        self._registry_given = nodes is not None
        self.rules: list[CompiledRule] = []
        for item in rules:
            rule = item.rule if time_scale == 1.0 else scaled(item.rule, time_scale)
            condition = compile_condition(rule, self.tz)
            scopes = tuple(s for s in (item.file.scope, rule.scope) if s is not None)
            labels = {"kind": rule.kind, **rule.labels}
            quantity = rule.quantity if condition is None else condition.quantity
            if quantity is not None:
                labels["quantity"] = quantity
            if item.file.preset:
                labels["preset"] = item.file.preset
            self.rules.append(CompiledRule(rule, scopes, condition, quantity, labels))
        self.by_name = {r.name: r for r in self.rules}
        self._by_quantity: dict[str | None, list[CompiledRule]] = {}
        for r in self.rules:
            self._by_quantity.setdefault(r.quantity, []).append(r)
        # Per kind of sample (where it comes from, which quantities it carries): the rules
        # that watch it and their series, in evaluation order. Scopes depend only on that
        # and on the node registry given here, so a sample meets only its own rules.
        self._plans: dict[tuple[str, str, str, str, tuple[str, ...]],
                          tuple[tuple[CompiledRule, str], ...]] = {}
        # Rain per site as (time, mm, gauge): gauges at one site measure the same rain, so
        # "rain at the site" is the largest total of any one gauge, never their sum.
        self._rain: dict[str, list[tuple[int, float, str]]] = {}
        self._rain_keep_ns = int(max([86400.0] + [
            r.rule.unless_rain.within for r in self.rules if r.rule.unless_rain is not None
        ]) * NS)
        self._quarantine: dict[str, int] = {}
        self._firing: dict[str, dict[str, int]] = {}  # rule -> node -> firing series
        self._changed: set[tuple[str, str]] = set()
        # Saved states of rules that are not loaded now, (rule, series): forgotten by
        # retire_unconfigured.
        self._unloaded: list[tuple[str, str]] = []
        self.last_tick_ns = 0
        # What a rule that raises on a sample means is the shell's choice: None re-raises
        # (unit tests, backtests: a broken rule fails loudly); the live runner logs and
        # counts it, and the sample's other rules are still evaluated.
        self.on_rule_error: Callable[[str, Sample, Exception], None] | None = None
        # The live runner sets it, before the first sample: rows stored before a node was
        # moved (or taken out of the registry), read after the start that retired their
        # series, are history of the old place and evaluated by no rule; else they would
        # bring back the retired alerts, and a "node silent" for a plot the node left.
        # Off, a backtest evaluates history where it was measured.
        self.registered_places_only = False
        if states:
            self._restore(states)

    # ------------------------------------------------------------------ persistence

    def _restore(self, states: Mapping[tuple[str, str], str]) -> None:
        for (rule, series), text in states.items():
            data = json.loads(text)
            if rule == RAIN_KEY:
                # entries saved before gauges were told apart have no gauge: one gauge
                self._rain[series] = [(int(e[0]), float(e[1]), str(e[2]) if len(e) > 2 else "")
                                      for e in data]
            elif rule == QUARANTINE_KEY:
                self._quarantine[series] = int(data)
            elif rule in self.by_name:
                st = SeriesState.from_json(data)
                self.by_name[rule].states[series] = st
                if st.phase == "firing":
                    self._mark_firing(rule, series, +1)
            else:
                self._unloaded.append((rule, series))

    def take_changes(self) -> dict[tuple[str, str], str | None]:
        """States changed since the last call, as JSON (None: forget it)."""
        out: dict[tuple[str, str], str | None] = {}
        for rule, series in self._changed:
            if rule == RAIN_KEY:
                out[(rule, series)] = json.dumps(self._rain.get(series, []))
            elif rule == QUARANTINE_KEY:
                out[(rule, series)] = json.dumps(self._quarantine.get(series, 0))
            else:
                r = self.by_name.get(rule)
                st = None if r is None else r.states.get(series)
                out[(rule, series)] = None if st is None else json.dumps(
                    st.to_json(), separators=(",", ":"))
        self._changed.clear()
        return out

    # ------------------------------------------------------------------ configuration

    def retire_unconfigured(self, now_ns: int, announced: Iterable[AlertEvent] = ()
                            ) -> list[AlertEvent]:
        """Resolve, at ``now_ns``, the restored alerts the configuration no longer gives,
        and forget those states; call it once, right after building the engine.

        A state no longer fits when its rule is not loaded, its node is registered in
        another site or plot (or, with a registry, not registered and yet not in plot
        ``unassigned``), or the rule's scope no longer takes its series (the node's crop
        changed). No reading will ever come for such a series, or none that the rule
        looks at, so a pending or firing alert would stay so, and be reminded of, forever;
        an inactive one could even fire "node silent" for a plot the node left.

        ``announced``: the last transition of each alert that is pending or firing by the
        store (:meth:`Store.active_alerts`), so that a resolution carries what people were
        told (severity, labels, text), and alerts of rules that are not loaded any more
        can be resolved at all.
        """
        told = {e.fingerprint: e for e in announced}
        events: list[AlertEvent] = []
        for key in self._unloaded:
            self._changed.add(key)  # take_changes: forget it
        self._unloaded.clear()
        for r in self.rules:
            for series, st in list(r.states.items()):
                reason = self._unfit_reason(r, series)
                if reason is None:
                    continue
                del r.states[series]
                self._changed.add((r.name, series))
                if st.phase == "inactive":
                    continue  # nobody was told anything about it
                if st.phase == "firing":
                    self._mark_firing(r.name, series, -1)
                last = told.get(fingerprint(r.name, *series.split("/", 3)))
                if last is None:  # no store to say it: as the engine would have told it
                    last = self._event(r, series, st, st.phase, st.phase, now_ns)
                events.append(_retired(last, st.phase, now_ns, reason))
        for last in told.values():
            if last.rule not in self.by_name:
                events.append(_retired(last, last.state, now_ns,
                                       _unfit("unloaded", rule=last.rule)))
        return events

    def _unfit_reason(self, r: CompiledRule, series: str) -> dict[str, str] | None:
        """Why the configuration no longer gives rule ``r`` the series ``series``; None
        when it still does."""
        site, plot, node, sensor = series.split("/", 3)
        moved = self._place_unfit(site, plot, node)
        if moved is not None:
            return moved
        # A silent node's series is on main whatever sensor its samples came from.
        if self._in_scope(r, site, plot, node, None if r.per_node else sensor):
            return None
        context = self.nodes.get(node)
        crop = context.crop if context is not None else None
        if not all(_in(sc.crop, crop or "none") for sc in r.scope):
            return _unfit("crop", node=node, crop=crop) if crop else _unfit("no_crop",
                                                                              node=node)
        return _unfit("scope", rule=r.name, series=series)

    def _place_unfit(self, site: str, plot: str, node: str) -> dict[str, str] | None:
        """Why the registry no longer puts ``node`` at ``site``/``plot`` (registered in
        another site or plot, or, with a registry, not registered and yet not in plot
        ``unassigned``); None when it still does."""
        context = self.nodes.get(node)
        if context is None:
            if self._registry_given and plot != UNASSIGNED_PLOT:
                return _unfit("unregistered", node=node)
            return None
        now_site, now_plot = context.site or site, context.plot or plot
        if now_site != site:
            return _unfit("moved_site", node=node, site=now_site, plot=now_plot)
        if now_plot != plot:
            return _unfit("moved", node=node, plot=now_plot)
        return None

    # ------------------------------------------------------------------ inputs

    def observe(self, sample: Sample) -> list[AlertEvent]:
        """Evaluate every rule that watches this sample, at the sample's time."""
        events: list[AlertEvent] = []
        rain = sample.values.get("rain_mm")
        if rain:
            self._rain.setdefault(sample.site, []).append(
                (sample.time_ns, rain, f"{sample.node}/{sample.sensor}"))
            self._changed.add((RAIN_KEY, sample.site))
        key = (sample.site, sample.plot, sample.node, sample.sensor, tuple(sample.values))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(sample)
            if len(self._plans) > 65536:  # sites, nodes and sensors come from the field
                self._plans.clear()
            self._plans[key] = plan
        for r, series in plan:
            try:
                self._evaluate(r, series, sample, events)
            except Exception as exc:
                if self.on_rule_error is None:
                    raise
                self.on_rule_error(r.name, sample, exc)  # the other rules still see it
        return events

    def _plan(self, sample: Sample) -> tuple[tuple[CompiledRule, str], ...]:
        """The rules that watch ``sample`` and the series each keeps it in: rules that
        need no quantity first, then by the sample's quantities in their order; none
        for a sample from where the registry no longer puts its node, when
        :attr:`registered_places_only`."""
        if self.registered_places_only and self._place_unfit(
                sample.site, sample.plot, sample.node) is not None:
            return ()
        return tuple(
            (r, self._series(r, sample))
            for quantity in (None, *sample.values)
            for r in self._by_quantity.get(quantity, ())
            if self._matches(r, sample)
        )

    def observe_rejection(self, node: str | None, reason: str, time_ns: int) -> None:
        """A quarantined reading: rules with ``unless_quarantined`` hold back on its node."""
        if node and reason in SENSOR_TROUBLE:
            self._quarantine[node] = max(time_ns, self._quarantine.get(node, 0))
            self._changed.add((QUARANTINE_KEY, node))

    def tick(self, now_ns: int) -> list[AlertEvent]:
        """Time-based conditions: ``for`` durations elapsing without new samples, and
        series silent for ``absent_for``; a rule held back now (``unless``...) fires on
        neither, and its pending alert is cancelled."""
        self.last_tick_ns = max(self.last_tick_ns, now_ns)
        events: list[AlertEvent] = []
        for r in self.rules:
            rule = r.rule
            for series, st in r.states.items():
                if rule.absent_for is not None:
                    if st.phase == "inactive" and now_ns - st.last_ns >= rule.absent_for * NS \
                            and not self._series_held_back(r, series, now_ns):
                        silent_s = (now_ns - st.last_ns) / NS * self.time_scale
                        st.value = round(silent_s / 3600, 1)
                        # seconds, worded per language when the texts are written
                        st.variables = {"silent_for_s": silent_s // 60 * 60}
                        self._transition(r, series, st, "firing", now_ns, events,
                                         since=st.last_ns)
                elif st.phase != "pending":
                    continue
                elif self._series_held_back(r, series, now_ns):
                    # cancelled as a held-back reading would: while a node's readings
                    # are quarantined or its battery fails, none may come to do it
                    self._transition(r, series, st, "inactive", now_ns, events)
                elif st.holds is not False and now_ns - st.since_ns >= rule.for_ * NS \
                        and (rule.during is None or self._within(rule, now_ns)):
                    self._transition(r, series, st, "firing", now_ns, events)
        self._forget_old(now_ns)
        return events

    def watch_nodes(self, nodes: Iterable[tuple[str, str, str]], now_ns: int) -> None:
        """Start the ``absent_for`` clock for registered nodes never heard from, so a node
        that never reports is noticed too. ``nodes``: (site, plot, node)."""
        for r in self.rules:
            if r.rule.absent_for is None or r.quantity is not None:
                continue
            for site, plot, node in nodes:
                sample = Sample(now_ns, site, plot, node, "main", {})
                series = sample.series
                if series not in r.states and self._matches(r, sample):
                    r.states[series] = SeriesState(last_ns=now_ns)
                    self._changed.add((r.name, series))

    # ------------------------------------------------------------------ evaluation

    def _matches(self, r: CompiledRule, s: Sample) -> bool:
        key = (s.site, s.plot, s.node, s.sensor)
        hit = r.matches.get(key)
        if hit is None:
            hit = self._in_scope(r, s.site, s.plot, s.node, s.sensor)
            if len(r.matches) > 65536:
                r.matches.clear()
            r.matches[key] = hit
        return hit

    def _in_scope(self, r: CompiledRule, site: str, plot: str, node: str,
                  sensor: str | None) -> bool:
        """Whether ``r``'s scopes take this place, with the node's crop from the registry
        (``sensor`` None: any sensor)."""
        crop = self.nodes.get(node, NodeContext()).crop
        return all(
            _in(sc.site, site) and _in(sc.plot, plot) and _in(sc.node, node)
            and (sensor is None or _in(sc.sensor, sensor)) and _in(sc.crop, crop or "none")
            for sc in r.scope
        )

    def _series(self, r: CompiledRule, s: Sample) -> str:
        if r.per_node:
            return f"{s.site}/{s.plot}/{s.node}/main"  # a silent node, whatever sensor
        return s.series

    def _evaluate(self, r: CompiledRule, series: str, s: Sample,
                  events: list[AlertEvent]) -> None:
        st = r.states.get(series)
        t = s.time_ns
        if st is None:
            st = r.states[series] = SeriesState()
        elif t < st.last_ns:
            return  # late (replayed or re-anchored) data: it cannot rewrite the past
        st.last_ns = t
        self._changed.add((r.name, series))
        condition = r.condition
        if condition is None:  # absent_for: a sample ends the silence
            if st.phase == "firing":
                self._transition(r, series, st, "inactive", t, events)
            return
        rule = r.rule
        holds = condition(st, s.values, t)
        if rule.during is not None and not self._within(rule, t):
            holds = False
        st.holds = holds
        held_back = r.may_hold_back and self._held_back(rule, s.site, s.node, s.time_ns)
        # confirm counts readings that agree in a row: one between the limits, or one
        # taken while the rule is held back (battery failing, readings quarantined),
        # starts the count again.
        st.streak = st.streak + 1 if holds is True and not held_back else 0
        phase = st.phase
        if phase == "inactive":
            if holds and st.streak >= rule.confirm:
                st.since_ns = t
                self._transition(r, series, st, "pending" if rule.for_ else "firing", t,
                                 events)
        elif phase == "pending":
            if holds is False or held_back:
                self._transition(r, series, st, "inactive", t, events)
            elif t - st.since_ns >= r.for_ns:
                self._transition(r, series, st, "firing", t, events)
        elif phase == "firing" and holds is False:
            self._transition(r, series, st, "inactive", t, events)

    def _within(self, rule: Rule, t_ns: int) -> bool:
        during = rule.during
        assert during is not None
        local = datetime.fromtimestamp(t_ns / NS, self.tz)
        if during.months and local.month not in during.months:
            return False
        now, start, end = local.time(), during.start, during.end
        return start <= now < end if start <= end else now >= start or now < end

    def _series_held_back(self, r: CompiledRule, series: str, t_ns: int) -> bool:
        """:meth:`_held_back` for the scheduler's tick, which has a series, not a sample."""
        if not r.may_hold_back:
            return False
        site, _, node, _ = series.split("/", 3)
        return self._held_back(r.rule, site, node, t_ns)

    def _held_back(self, rule: Rule, site: str, node: str, t_ns: int) -> bool:
        """Whether ``unless``, ``unless_quarantined`` or ``unless_rain`` hold ``rule`` back
        on ``node`` at ``site`` at ``t_ns``."""
        for dep in rule.unless:
            by_node = self._firing.get(dep)
            if by_node and by_node.get(node):
                return True
        if rule.unless_quarantined is not None:
            last = self._quarantine.get(node)
            if last is not None and t_ns - last <= rule.unless_quarantined * NS:
                return True
        if rule.unless_rain is not None:
            start = t_ns - int(rule.unless_rain.within * NS)
            per_gauge: dict[str, float] = {}
            for t, mm, gauge in self._rain.get(site, ()):
                if start <= t <= t_ns:
                    per_gauge[gauge] = per_gauge.get(gauge, 0.0) + mm
            if max(per_gauge.values(), default=0.0) >= number(rule.unless_rain.above_mm):
                return True
        return False

    def _mark_firing(self, rule: str, series: str, delta: int) -> None:
        node = series.split("/")[2]
        by_node = self._firing.setdefault(rule, {})
        by_node[node] = max(0, by_node.get(node, 0) + delta)

    def _forget_old(self, now_ns: int) -> None:
        keep = self._rain_keep_ns
        for site, events in self._rain.items():
            fresh = [e for e in events if now_ns - e[0] <= keep]
            if len(fresh) != len(events):
                self._rain[site] = fresh
                self._changed.add((RAIN_KEY, site))

    # ------------------------------------------------------------------ transitions

    def _transition(self, r: CompiledRule, series: str, st: SeriesState, to: str,
                    t_ns: int, events: list[AlertEvent], *, since: int | None = None) -> None:
        previous = st.phase
        if since is not None:
            st.since_ns = since
        if previous == "firing":
            self._mark_firing(r.name, series, -1)
        if to == "firing":
            self._mark_firing(r.name, series, +1)
        st.phase = to
        self._changed.add((r.name, series))
        if to == "inactive":
            st.streak = 0
        if to == "inactive" and previous == "inactive":
            return
        events.append(self._event(r, series, st, "resolved" if to == "inactive" else to,
                                  previous, t_ns))

    def _event(self, r: CompiledRule, series: str, st: SeriesState, state: str,
               previous: str, t_ns: int) -> AlertEvent:
        site, plot, node, sensor = series.split("/", 3)
        rule = r.rule
        context = self.nodes.get(node, NodeContext())
        crop = context.crop or ""
        depth = _depth(sensor, context.depth_cm)
        quantity = BY_NAME.get(r.quantity or "")
        base: dict[str, Any] = {
            "site": site, "plot": plot, "node": node, "sensor": sensor, "crop": crop,
            "depth": depth, "value": st.value, "rule": rule.name,
            "unit": quantity.unit if quantity else "",
            "since": datetime.fromtimestamp(st.since_ns / NS, self.tz).strftime("%H:%M"),
            "time": datetime.fromtimestamp(t_ns / NS, self.tz).strftime("%m-%d %H:%M"),
            **st.variables,
        }
        if self.time_scale != 1.0:  # back to field time for people
            if base.get("rate") is not None:
                base["rate"] = base["rate"] / self.time_scale
            if base.get("eta_h") is not None:
                base["eta_h"] = base["eta_h"] * self.time_scale
        text: dict[str, AlertText] = {}
        for language in ("en", "ja"):
            variables = {**base, "eta": _eta(base.get("eta_h"), language),
                         "at_depth": _at_depth(depth, language),
                         "for": say_duration(rule.for_ * self.time_scale, language)}
            if "silent_for_s" in base:  # states saved before carry the English silent_for
                variables["silent_for"] = say_duration(base["silent_for_s"], language)
            summary = render(_pick(rule.message, language), variables)
            if state == "resolved":
                summary = (render(_pick(rule.resolved, language), variables) if rule.resolved
                           else f"{_RESOLVED[language]}{summary}")
            text[language] = AlertText(
                summary,
                render(_pick(rule.why, language), variables),
                render(_pick(rule.action, language), variables),
            )
        value = st.value if isinstance(st.value, int | float) else None
        return AlertEvent(
            time_ns=t_ns, rule=rule.name, severity=rule.severity, state=state,
            previous=previous, site=site, plot=plot, node=node, sensor=sensor,
            value=value, since_ns=st.since_ns, text=text,
            labels={**r.labels, **({"crop": crop} if crop else {})},
        )


_DURATIONS: Final = {
    "rate": ("window",), "refill": ("within", "window"), "frost": ("lead_time", "window"),
    "unless_rain": ("within",),
}
_PER_HOUR: Final = ("below", "above", "clear_above", "clear_below")


def scaled(rule: Rule, k: float) -> Rule:
    """``rule`` with its durations divided by ``k`` and its rates per hour multiplied by it."""
    update: dict[str, Any] = {
        name: getattr(rule, name) / k for name in ("for_", "absent_for", "unless_quarantined")
        if getattr(rule, name) is not None
    }
    for part, keys in _DURATIONS.items():
        sub = getattr(rule, part)
        if sub is not None:
            changes = {key: getattr(sub, key) / k for key in keys}
            if part == "rate":
                changes |= {key: number(getattr(sub, key)) * k for key in _PER_HOUR
                            if getattr(sub, key) is not None}
            update[part] = sub.model_copy(update=changes)
    return rule.model_copy(update=update)
