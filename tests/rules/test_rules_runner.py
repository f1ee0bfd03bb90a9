"""The rules engine against real SQLite stores: the runner, restarts, demo, backtest, status,
and its transitions in a real InfluxDB 1.x (the `alert` measurement Grafana reads)."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from pathlib import Path

import pytest
from outbox_data import sink, v1_config
from servers.influx import InfluxDB1

from firmware_bridge.simulator import Simulator
from gateway.cli import main
from gateway.config import default_settings
from gateway.config.models import DeviceConfig
from gateway.demo import run_demo
from gateway.packet import Record
from gateway.status import collect
from gateway.store.sqlite import Store
from rules import presets
from rules.engine import Engine, NodeContext, Sample
from rules.loader import load_rule_files
from rules.runner import RulesRunner

H = 3600 * 10**9
T0 = 1_782_860_400 * 10**9  # 2026-07-01 08:00 JST


def _record(i: int, node: str, t: int, soil: float, battery: float = 3.9) -> Record:
    return Record(
        time_ns=t, received_ns=t, site="kamiyama", plot="terrace-3", node=node, seq=i,
        digest=f"{node}:{i}".encode(), source="test", format="test", time_source="node",
        readings={"soil_10cm": {"soil_moisture_pct": soil}}, device={"battery_v": battery},
    )


def _runner(path: Path, clock: list[int]) -> RulesRunner:
    rules = load_rule_files([presets.entry("common"), presets.entry("tomato")])
    nodes = {"n1": NodeContext(crop="tomato"), "n9": NodeContext(crop="tomato")}
    return RulesRunner(
        path, lambda states: Engine(rules, nodes=nodes, states=states),
        clock_ns=lambda: clock[0],
        registered_nodes=[("kamiyama", "terrace-3", "n1"), ("kamiyama", "terrace-9", "n9")],
    )


def test_runner_survives_restarts_mid_for_and_emits_each_transition_once(tmp_path: Path) -> None:
    path = tmp_path / "satoyama.db"
    store = Store(path)
    clock = [T0]
    runner = _runner(path, clock)
    # 10-minute readings below the tomato refill point: pending after 3, firing 1 h later.
    for i in range(4):
        store.write_batch([_record(i, "n1", T0 + i * H // 6, 20.0)])
    assert runner.step() == 8  # 4 reading rows + 4 device rows
    runner.store.close()  # the gateway stops in the middle of `for` ...

    runner = _runner(path, clock)  # ... and starts again from what the store holds
    assert runner.step() == 0  # nothing is read twice
    for i in range(4, 10):
        store.write_batch([_record(i, "n1", T0 + i * H // 6, 20.0)])
    runner.step()
    runner.store.close()

    runner = _runner(path, clock)
    clock[0] = T0 + 2 * H + H // 2
    runner.tick()  # n9 never sent anything: silent for 2.5 h since the runner first started
    rows = store.alert_rows(0, 100)
    assert [(r["rule"], r["node"], r["state"]) for r in rows] == [
        ("tomato.soil_dry", "n1", "pending"),
        ("tomato.soil_dry", "n1", "firing"),
        ("node_silent", "n9", "firing"),
    ]
    assert rows[1]["time_ns"] - rows[0]["time_ns"] == H  # `for: 1h`, across the restart
    assert "soil at 10 cm is 20.0 %" in rows[1]["message"]
    assert store.cursor("rules", "reading") == 10
    assert store.counters()["rules.transitions"] == 3
    active = {(a["rule"], a["node"]) for a in store.active_alerts()}
    assert active == {("tomato.soil_dry", "n1"), ("node_silent", "n9")}
    runner.stop()


def test_the_demo_shows_alerts_firing_and_clearing(tmp_path: Path) -> None:
    lines: list[str] = []
    run_demo(data_dir=tmp_path / "demo", duration=14, nodes=4, speed=1200,
             summary_every=100, out=lines.append)
    text = "\n".join(lines)
    assert "*** ALERT WARNING [battery_low] Node n3 (terrace-2): battery at 3.3" in text
    assert "*** ALERT WARNING [tomato.soil_dry] terrace-1 summer-autumn tomato: soil at 10 cm" \
        in text
    assert "(the farmer waters terrace-1)" in text
    assert "*** RESOLVED [tomato.soil_dry] terrace-1 summer-autumn tomato: soil moisture " \
        "back to" in text
    store = Store(tmp_path / "demo" / "satoyama.db", readonly=True)
    states = [r[0] for r in store.execute(
        "SELECT state FROM alert WHERE rule='tomato.soil_dry' ORDER BY id")]
    assert states[-2:] == ["firing", "resolved"]
    store.close()
    info = collect(Store(tmp_path / "demo" / "satoyama.db", readonly=True))
    assert ("battery_low", "n3", "firing") in {(a["rule"], a["node"], a["state"])
                                                for a in info["alerts"]}


def test_backtest_replays_stored_history_through_the_rules(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # A week of simulated 10-minute uplinks from 4 nodes, stored through the real pipeline.
    from gateway.app import build_pipeline, open_store

    settings = default_settings(tmp_path, "kamiyama")
    sim = Simulator(4, seed=3, start_time_s=T0 / 1e9, interval_s=600, fmt="frame")
    for m in sim.models:
        if m.crop == "tomato":
            m.soil_moisture[10] = 23.0  # dries past the refill point within the week
    settings.devices = {f"n{m.node_id}": DeviceConfig(plot=m.plot, crop=m.crop)
                        for m in sim.models}
    store = open_store(settings)
    pipeline = build_pipeline(settings, store)
    pipeline.add_stream("radio", "frame")
    for e in sim.run(7 * 144):
        pipeline.feed("radio", e.data, received_ns=int(e.time_s * 1e9))
        pipeline.commit()
    store.close()
    config = tmp_path / "satoyama.yaml"
    config.write_text(
        "site: kamiyama\ntimezone: Asia/Tokyo\n"
        f"data_dir: {tmp_path}\n"
        "rules: [preset:common, preset:tomato]\n"
        "devices:\n" + "".join(f"  n{m.node_id}: {{plot: {m.plot}, crop: {m.crop}}}\n"
                               for m in sim.models),
        encoding="utf-8")
    capsys.readouterr()
    assert main(["rules", "backtest", "-c", str(config), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    fired = {(e["rule"], e["node"]) for e in events if e["state"] == "firing"}
    assert ("tomato.soil_dry", "n1") in fired
    assert all(e["node"] != "n2" or not e["rule"].startswith("tomato.") for e in events)
    # backtests read the history; they write nothing
    assert Store(tmp_path / "satoyama.db", readonly=True).count("alert") == 0
    # and the same history backtested twice gives the same answer
    assert main(["rules", "backtest", "-c", str(config), "--json"]) == 0
    assert [json.loads(x) for x in capsys.readouterr().out.splitlines()] == events


def test_alert_transitions_are_written_to_influxdb_with_string_state_and_message(
    tmp_path: Path, influx: InfluxDB1
) -> None:
    influx.create_database("alerts")
    path = tmp_path / "satoyama.db"
    store = Store(path)
    clock = [T0]
    runner = _runner(path, clock)
    soil = [20.0] * 10 + [30.0, 30.0]  # dry for 1.5 h, then watered
    for i, value in enumerate(soil):
        store.write_batch([_record(i, "n1", T0 + i * H // 6, value)])
    runner.step()
    runner.stop()
    s = sink(path, v1_config(influx, "alerts"))
    while sum(s.backlog().values()):
        s.flush_once()
    s.stop()
    series = influx.series(
        "SELECT state, value, message FROM alert GROUP BY rule, node, sensor, severity, site",
        "alerts")
    assert len(series) == 1
    assert series[0]["tags"] == {"rule": "tomato.soil_dry", "node": "n1", "sensor": "soil_10cm",
                                 "severity": "warning", "site": "kamiyama"}
    rows = [dict(zip(series[0]["columns"], v, strict=True)) for v in series[0]["values"]]
    assert [(r["time"], r["state"], r["value"]) for r in rows] == [
        (T0 + 2 * H // 6, "pending", 20.0),
        (T0 + 8 * H // 6, "firing", 20.0),
        (T0 + 10 * H // 6, "resolved", 30.0),
    ]
    assert rows[1]["message"].startswith("terrace-3 summer-autumn tomato: soil at 10 cm is 20.0 %")
    fields = dict(map(tuple, influx.series("SHOW FIELD KEYS FROM alert", "alerts")[0]["values"]))
    assert fields == {"state": "string", "value": "float", "message": "string"}


def test_runner_feeds_a_commits_rows_in_time_order_though_ids_follow_column_layouts(
        tmp_path: Path) -> None:
    """A commit inserts its rows one column layout at a time, so the middle reading below
    (its probe also reports a temperature) gets the last id. The engine must still see the
    three in time order: taken in id order, the middle one would be late and not counted,
    and the third consecutive dry reading that makes `tomato.soil_dry` pending is missing."""
    path = tmp_path / "satoyama.db"
    store = Store(path)
    records = [_record(i, "n1", T0 + i * H // 6, 20.0) for i in range(3)]
    records[1].readings["soil_10cm"]["soil_temperature_c"] = 24.0
    store.write_batch(records)
    ids = store.execute("SELECT time_ns FROM reading ORDER BY id")
    assert [t for (t,) in ids] == [T0, T0 + 2 * H // 6, T0 + H // 6]  # ids: not time order
    runner = _runner(path, [T0 + H // 2])
    assert runner.step() == 6
    rows = store.alert_rows(0, 100)
    assert [(r["rule"], r["node"], r["state"], r["time_ns"]) for r in rows] == [
        ("tomato.soil_dry", "n1", "pending", T0 + 2 * H // 6)]
    runner.stop()


def test_runner_fed_by_the_pipelines_hand_off_decides_as_one_reading_the_store(
        tmp_path: Path) -> None:
    """The runner of a gateway takes each commit's rows from memory (as the InfluxDB sink
    does) and reads the store only for what memory does not continue. Both ways give the
    same transitions, states and cursors, for commits of several column layouts and a
    reading that arrives after a newer one of its node."""
    def batches() -> list[list[Record]]:
        out = []
        for b in range(3):
            batch = []
            for i in range(6):
                k = b * 6 + i
                for node in ("n1", "n9"):
                    r = _record(k, node, T0 + k * H // 6, 20.0 if node == "n1" else 45.0)
                    r.readings["main"] = {"temperature_c": 24.0 + k % 3, "humidity_pct": 70.0}
                    if k % 4 == 1:
                        r.readings["soil_10cm"]["soil_temperature_c"] = 21.0
                    batch.append(r)
            out.append(batch)
        out[0][4], out[0][6] = out[0][6], out[0][4]  # n1: its 4th reading arrives before its 3rd
        return out

    clock = [T0 + 4 * H]
    memory_store, store_only = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    memory, from_store = _runner(memory_store.path, clock), _runner(store_only.path, clock)
    for i, batch in enumerate(batches()):
        memory.offer(memory_store.write_batch(batch).appended)
        store_only.write_batch([copy.deepcopy(r) for r in batch])
        if i != 1:  # one step over two commits
            assert memory.step() == from_store.step()
    assert memory.rows_from == {"memory": 36 * 3, "store": 0}
    assert from_store.rows_from == {"memory": 0, "store": 36 * 3}

    def outcome(store: Store) -> tuple[object, ...]:
        alerts = [(r["rule"], r["node"], r["state"], r["time_ns"], r["message"])
                  for r in store.alert_rows(0, 100)]
        return (alerts, store.rule_states(),
                [store.cursor("rules", t) for t in ("reading", "device")])

    assert outcome(memory_store) == outcome(store_only)
    assert ("tomato.soil_dry", "n1", "firing") in {a[:3] for a in outcome(memory_store)[0]}
    memory.stop()
    from_store.stop()


def test_a_rule_that_raises_loses_its_readings_loudly_and_stops_no_other_rule(
        tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    # A gdd season start the check once let through (02-29) raised on every reading; the
    # step was retried on the same rows forever and the frost rule beside it never fired.
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(
        "version: 1\nrules:\n"
        "  - name: wheat.gdd\n    gdd: {base_c: 0, above: 1500}\n"
        "    message: {en: \"{gdd:.0f} degree days\"}\n"
        "  - name: frost_simple\n    severity: critical\n"
        "    threshold: {quantity: temperature_c, below: 0}\n"
        "    message: {en: \"freezing {value:.1f} °C\"}\n", encoding="utf-8")
    rules = load_rule_files([rule_file])
    gdd = rules[0].rule.gdd
    assert gdd is not None  # what an unchecked 02-29 made of it
    rules[0] = dataclasses.replace(rules[0], rule=rules[0].rule.model_copy(
        update={"gdd": gdd.model_copy(update={"season_start": "02-29"})}))
    t0 = 1_772_290_800 * 10**9  # 2026-03-01 00:00 JST
    path = tmp_path / "s.db"
    store = Store(path)
    store.write_batch([Record(
        time_ns=t0 + i * 600 * 10**9, received_ns=t0 + i * 600 * 10**9, site="farm",
        plot="p1", node="n1", seq=i, digest=f"n1:{i}".encode(), source="test", format="test",
        time_source="node", readings={"main": {"temperature_c": -2.0}}) for i in range(3)])
    store.close()
    runner = RulesRunner(path, lambda states: Engine(rules, states=states),
                         clock_ns=lambda: t0 + H)
    with caplog.at_level(logging.ERROR, logger="rules.runner"):
        assert runner.step() == 3
    assert [(r["rule"], r["state"]) for r in runner.store.alert_rows(0, 100)] == [
        ("frost_simple", "firing")]
    assert runner.store.cursor("rules", "reading") > 0  # the rows are not read again
    assert runner.store.counters()["rules.evaluation_errors"] == 3
    [record] = caplog.records
    assert "rule wheat.gdd failed on 3 reading(s)" in record.getMessage()
    assert record.exc_info is not None
    assert runner.step() == 0
    # Outside the live runner (unit tests, backtests) a broken rule still fails loudly.
    with pytest.raises(ValueError):
        Engine(rules).observe(Sample(t0, "farm", "p1", "n1", "main", {"temperature_c": 1.0}))
    runner.stop()
