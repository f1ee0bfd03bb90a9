"""A restart with a changed configuration: alerts the new one no longer gives are resolved.

The runner restores each rule's per-series states from the store. A node moved to another
plot, a node's crop changed or a rule file removed leave alerts that no reading will ever
clear (none comes for the old plot; the old crop's rules no longer look at the node), so
they fired and were reminded of forever. Now the first start with the new configuration
resolves each of them once, saying why, and forgets their states; an unchanged
configuration resolves nothing. Real SQLite stores, the real runner and the notifier's
planner fed with the stored transitions.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.config import default_settings
from gateway.config.models import DeviceConfig
from gateway.config.notifications import NotificationsConfig
from gateway.packet import Record
from gateway.store.sqlite import Store
from rules import presets
from rules.alert import AlertEvent
from rules.engine import Engine, NodeContext
from rules.loader import load_rule_files
from rules.notify.grouping import Notification, Planner
from rules.runner import RulesRunner
from rules.wiring import build_runner

H = 3600 * 10**9
T0 = 1_782_860_400 * 10**9  # 2026-07-01 08:00 JST
SITE = "kamiyama"
Registry = dict[str, tuple[str, str | None]]  # node -> (plot, crop)


def _record(i: int, node: str, plot: str, t: int, soil: float) -> Record:
    return Record(
        time_ns=t, received_ns=t, site=SITE, plot=plot, node=node, seq=i,
        digest=f"{node}:{plot}:{i}".encode(), source="test", format="test",
        time_source="node", readings={"main": {"soil_moisture_pct": soil}},
        device={"battery_v": 3.9},
    )


def _runner(path: Path, clock: list[int], registry: Registry,
            files: tuple[str, ...] = ("common", "tomato", "strawberry")) -> RulesRunner:
    rules = load_rule_files([presets.entry(f) for f in files])
    nodes = {n: NodeContext(crop=crop, site=SITE, plot=plot)
             for n, (plot, crop) in registry.items()}
    return RulesRunner(path, lambda states: Engine(rules, nodes=nodes, states=states),
                       clock_ns=lambda: clock[0],
                       registered_nodes=[(SITE, plot, n) for n, (plot, _) in registry.items()])


def _send(store: Store, registry: Registry, start_ns: int, hours: int, soil: float) -> None:
    """10-minute uplinks of every registered node from its registered plot."""
    for k in range(hours * 6 + 1):
        t = start_ns + k * H // 6
        store.write_batch([_record(start_ns // H + k, n, plot, t, soil)
                           for n, (plot, _) in registry.items()])


def _transitions(store: Store, after_id: int = 0) -> list[tuple[str, str, str, str, str]]:
    return [(r["state"], r["previous"], r["rule"], r["plot"], r["message"])
            for r in store.alert_rows(after_id, 1000)]


def _last_id(store: Store) -> int:
    return max((r["id"] for r in store.alert_rows(0, 10_000)), default=0)


def _notifications(store: Store, cfg: NotificationsConfig, times_ns: list[int]
                   ) -> list[Notification]:
    """What the notifier sends when it looks at ``times_ns``, having seen each transition
    when it was stored."""
    planner = Planner(cfg, ZoneInfo("Asia/Tokyo"))
    events = [AlertEvent.from_row(row) for row in store.alert_rows(0, 10_000)]
    notes = []
    for t in times_ns:
        while events and events[0].time_ns <= t:
            planner.observe(events[0], events.pop(0).time_ns)
        notes += planner.due(t)
    return notes


def _cfg(**extra: object) -> NotificationsConfig:
    return NotificationsConfig.model_validate({
        "recipients": {"grower": {"urls": ["json://localhost/x"], "language": "en"},
                       "officer": {"urls": ["json://localhost/y"], "language": "en"}},
        **extra})


def test_a_node_moved_while_silent_resolves_its_old_plots_alert_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store, clock = Store(path), [T0]
    before: Registry = {"n1": ("terrace-3", None), "n2": ("terrace-3", None)}
    runner = _runner(path, clock, before)
    _send(store, {"n2": before["n2"]}, T0, 2, 30.0)  # n1 never sends: silent
    clock[0] = T0 + 2 * H
    runner.step()
    runner.tick()
    runner.store.close()
    assert [a["node"] for a in store.active_alerts()] == ["n1"]

    # n1 and n2 (n2 not silent) are moved to terrace-5; both go on sending from there
    after: Registry = {"n1": ("terrace-5", None), "n2": ("terrace-5", None)}
    seen = _last_id(store)
    clock[0] = T0 + 3 * H
    runner = _runner(path, clock, after)
    for k in range(6 * 6):  # 6 h: n2's old series would have gone "silent" after 2 h
        clock[0] = T0 + 3 * H + k * H // 6
        store.write_batch([_record(100 + k, n, plot, clock[0], 30.0)
                           for n, (plot, _) in after.items()])
        runner.step()
        runner.tick()
    assert _transitions(store, seen) == [(
        "resolved", "firing", "node_silent", "terrace-3",
        "Resolved: Node n1 (terrace-3) has sent nothing for 2h "
        "(no longer configured: node n1 is now in plot terrace-5)")]
    retired = AlertEvent.from_row(store.alert_rows(seen, 1)[0])
    assert retired.time_ns == T0 + 3 * H  # at the start with the new registry
    assert retired.message("ja") == ("解消: ノード n1（terrace-3）から2時間受信がありません"
                                     "（設定の変更で対象外: ノード n1 は区画 terrace-5 に移動）")
    assert store.active_alerts() == []
    assert not [k for k in runner.store.rule_states() if "terrace-3" in k[1]]

    # The notifier tells the resolution once and reminds of nothing afterwards.
    notes = _notifications(store, _cfg(), [T0 + 2 * H + 60 * 10**9, T0 + 3 * H + H // 6,
                                           T0 + 30 * H, T0 + 60 * H])
    kinds = [(n.recipient, n.kind, [e.node for e in n.firing], [e.node for e in n.resolved])
             for n in notes]
    assert kinds == [("grower", "first", ["n1"], []), ("officer", "first", ["n1"], []),
                     ("grower", "update", [], ["n1"]), ("officer", "update", [], ["n1"])]
    runner.stop()


def test_a_crop_change_resolves_the_old_crops_alert_where_it_was_told(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store, clock = Store(path), [T0]
    runner = _runner(path, clock, {"n4": ("terrace-4", "tomato")})
    _send(store, {"n4": ("terrace-4", "tomato")}, T0, 2, 18.0)  # dry: tomato.soil_dry fires
    clock[0] = T0 + 2 * H
    runner.step()
    runner.store.close()
    assert [(a["rule"], a["state"]) for a in store.active_alerts()] == [
        ("tomato.soil_dry", "firing")]

    seen = _last_id(store)
    clock[0] = T0 + 3 * H
    runner = _runner(path, clock, {"n4": ("terrace-4", "strawberry")})
    _send(store, {"n4": ("terrace-4", "strawberry")}, T0 + 3 * H, 2, 30.0)
    runner.step()
    clock[0] = T0 + 5 * H
    runner.tick()
    [(state, previous, rule, _, message)] = _transitions(store, seen)
    assert (state, previous, rule) == ("resolved", "firing", "tomato.soil_dry")
    assert message.startswith("Resolved: terrace-4 summer-autumn tomato: soil is 18.0 %")
    assert message.endswith("(no longer configured: node n4 now grows strawberry)")
    retired = AlertEvent.from_row(store.alert_rows(seen, 1)[0])
    assert retired.labels["crop"] == "tomato"  # as told: routes and groups find it
    assert store.active_alerts() == []
    assert ("tomato.soil_dry", f"{SITE}/terrace-4/n4/main") not in runner.store.rule_states()

    # Routed by crop: only the tomato grower heard of it, and hears it cleared, once.
    cfg = _cfg(routes=[{"match": {"labels": {"crop": ["tomato"]}}, "recipients": ["grower"]},
                       {"match": {"labels": {"crop": ["strawberry"]}},
                        "recipients": ["officer"]}])
    notes = _notifications(store, cfg, [T0 + 2 * H + 60 * 10**9, T0 + 3 * H + H // 6,
                                        T0 + 30 * H])
    assert [(n.recipient, n.kind, len(n.firing), len(n.resolved)) for n in notes] == [
        ("grower", "first", 1, 0), ("grower", "update", 0, 1)]
    runner.stop()


def test_alerts_of_a_rule_file_removed_from_the_config_are_resolved(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store, clock = Store(path), [T0]
    registry: Registry = {"n4": ("terrace-4", "tomato")}
    runner = _runner(path, clock, registry, ("common", "tomato"))
    _send(store, registry, T0, 2, 18.0)
    clock[0] = T0 + 2 * H
    runner.step()
    runner.store.close()

    seen = _last_id(store)
    clock[0] = T0 + 3 * H
    runner = _runner(path, clock, registry, ("common",))  # preset:tomato no longer listed
    [(state, previous, rule, plot, message)] = _transitions(store, seen)
    assert (state, previous, rule, plot) == ("resolved", "firing", "tomato.soil_dry",
                                             "terrace-4")
    assert message.endswith("(no longer configured: rule tomato.soil_dry is no longer loaded)")
    assert AlertEvent.from_row(store.alert_rows(seen, 1)[0]).severity == "warning"
    assert store.active_alerts() == []
    assert not [k for k in runner.store.rule_states() if k[0].startswith("tomato.")]
    runner.stop()


def test_a_node_removed_from_the_registry_while_silent_is_resolved(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store, clock = Store(path), [T0]
    runner = _runner(path, clock, {"n1": ("terrace-3", None), "n2": ("terrace-3", None)})
    clock[0] = T0 + 2 * H
    runner.tick()  # both silent
    runner.store.close()

    seen = _last_id(store)
    clock[0] = T0 + 3 * H
    runner = _runner(path, clock, {"n2": ("terrace-3", None)})  # n1 taken out of the field
    [(state, _, rule, _, message)] = _transitions(store, seen)
    assert (state, rule) == ("resolved", "node_silent")
    assert message.endswith("(no longer configured: node n1 is not in the device registry)")
    assert [a["node"] for a in store.active_alerts()] == ["n2"]  # still registered, silent
    runner.stop()


def test_a_restart_with_the_same_configuration_resolves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store, clock = Store(path), [T0]
    registry: Registry = {"n1": ("terrace-3", None), "n4": ("terrace-4", "tomato")}
    runner = _runner(path, clock, registry)
    _send(store, {"n4": registry["n4"]}, T0, 2, 18.0)
    clock[0] = T0 + 2 * H
    runner.step()
    runner.tick()
    runner.store.close()
    states, alerts = store.rule_states(), store.active_alerts()
    assert {a["rule"] for a in alerts} == {"node_silent", "tomato.soil_dry"}

    seen = _last_id(store)
    runner = _runner(path, clock, registry)
    assert _transitions(store, seen) == []
    assert store.rule_states() == states
    assert store.active_alerts() == alerts
    runner.stop()


def test_the_gateways_wiring_retires_a_moved_node_and_keeps_one_whose_uplink_names_the_site(
        tmp_path: Path) -> None:
    """From settings as ``satoyama run`` builds the runner: n1 (no site in the registry;
    its uplinks say the site, which the pipeline stores before the config's) keeps its
    firing alert across a restart; n4, moved to another plot, has its alert resolved."""
    settings = default_settings(tmp_path, "config-site")
    settings.rules = [Path("preset:common"), Path("preset:tomato")]
    settings.devices = {"n1": DeviceConfig(plot="p1", crop="tomato"),
                        "n4": DeviceConfig(site=SITE, plot="p4", crop="tomato")}
    path = tmp_path / "s.db"
    store = Store(path)
    for k in range(13):  # dry for 2 h: tomato.soil_dry fires for both
        t = T0 + k * H // 6
        store.write_batch([_record(k, "n1", "p1", t, 18.0), _record(k, "n4", "p4", t, 18.0)])
    runner = build_runner(settings, path)
    assert runner is not None
    runner.step()
    runner.store.close()
    assert sorted(a["node"] for a in store.active_alerts()) == ["n1", "n4"]

    seen = _last_id(store)
    settings.devices["n4"] = DeviceConfig(site=SITE, plot="p5", crop="tomato")
    runner = build_runner(settings, path)
    assert runner is not None
    [(state, previous, rule, plot, message)] = _transitions(store, seen)
    assert (state, previous, rule, plot) == ("resolved", "firing", "tomato.soil_dry", "p4")
    assert message.endswith("(no longer configured: node n4 is now in plot p5)")
    assert [(a["site"], a["node"]) for a in store.active_alerts()] == [(SITE, "n1")]
    runner.stop()


def test_readings_stored_before_a_move_bring_no_alert_back_to_the_old_plot(
        tmp_path: Path) -> None:
    """The gateway stopped (a power cut) with readings of n4's old plot stored but not yet
    evaluated; n4 is moved before the next start. Those readings are history of the old
    plot: they stay in the store, but no rule takes them up again after the start retired
    the old plot's alert: no new alert, no state, no "node silent" for a plot n4 left."""
    path = tmp_path / "s.db"
    store, clock = Store(path), [T0]
    before: Registry = {"n4": ("terrace-4", "tomato")}
    runner = _runner(path, clock, before)
    _send(store, before, T0, 2, 18.0)  # dry for 2 h: tomato.soil_dry fires
    clock[0] = T0 + 2 * H
    runner.step()
    for k in range(1, 7):  # stored, not evaluated yet: a power cut
        store.write_batch([_record(100 + k, "n4", "terrace-4", T0 + 2 * H + k * H // 6, 18.0)])
    runner.store.close()
    assert [(a["rule"], a["plot"]) for a in store.active_alerts()] == [
        ("tomato.soil_dry", "terrace-4")]

    after: Registry = {"n4": ("terrace-5", "tomato")}
    seen = _last_id(store)
    clock[0] = T0 + 4 * H
    runner = _runner(path, clock, after)
    runner.step()
    for k in range(6 * 6):  # 6 h from terrace-5, moist: old plot's "silent" would fire
        clock[0] = T0 + 4 * H + k * H // 6
        store.write_batch([_record(500 + k, "n4", "terrace-5", clock[0], 30.0)])
        runner.step()
        runner.tick()
    assert [(state, previous, rule, plot) for state, previous, rule, plot, _ in
            _transitions(store, seen)] == [
        ("resolved", "firing", "tomato.soil_dry", "terrace-4")]
    assert store.active_alerts() == []
    assert not [k for k in runner.store.rule_states() if "terrace-4" in k[1]]
    plots = [r["plot"] for r in store.rows_between("reading", None, None)]
    assert plots.count("terrace-4") == 13 + 6  # the old plot's history stays
    runner.stop()
