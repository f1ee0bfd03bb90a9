"""Rule evaluation benchmark (not a test): CPU per stored reading with 100 active rules.

    .venv/bin/python benchmarks/rules_eval.py [--rules 100] [--nodes 20] [--rounds 720]
                                              [--farm-messages 20000] [--repeat 5]

Simulated 10-minute uplinks from ``--nodes`` nodes (the first deployment's crops) are
stored through the real pipeline into a SQLite store; then the rules runner (the live
outbox consumer: read rows, evaluate, save states + cursors + transitions in one
transaction) evaluates them with ``--rules`` active rules: the shipped presets plus
generated threshold, rate, refill, frost and expression rules scoped to every node, so
every reading meets many rules. Reported:

* engine only: ``Engine.observe`` per stored row (a row = one sensor's readings of one
  packet, or one packet's device fields), and per rule evaluation;
* runner: the same rows through :class:`RulesRunner` steps, SQLite included;
* the scheduler's tick over all series.

Then the farm of ``benchmarks/mqtt_influx.py --rules`` without MQTT and InfluxDB: its
message bodies stored through the pipeline (2 ``reading`` rows and 1 ``device`` row each),
``preset:common`` + ``preset:tomato``, its 4 nodes registered as tomato plots; the engine and
the runner per message, ``--repeat`` times on copies of one store (min, median, max: the
machine is shared).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mqtt_influx import NODES, SITE, T0_MS, body  # the farm and messages of the end-to-end run

from firmware_bridge.simulator import Simulator
from gateway.app import build_pipeline, open_store, store_path
from gateway.config import default_settings
from gateway.config.models import DeviceConfig
from gateway.sources.mqtt_formats import message_decoder
from rules import presets
from rules.engine import Engine, NodeContext, Sample
from rules.loader import load_rule_files
from rules.runner import RulesRunner, stored_samples
from rules.wiring import build_runner, node_contexts


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def generated_rules(n: int) -> dict[str, object]:
    """``n`` extra rules of the kinds the presets use least, all scoped to every node."""
    kinds = [
        lambda i: {"threshold": {"quantity": "soil_moisture_pct", "below": 10 + i % 10,
                                 "clear_above": 14 + i % 10}, "for": "1h", "confirm": 2},
        lambda i: {"rate": {"quantity": "soil_moisture_pct", "window": "3h",
                            "below": -2 - i % 3}},
        lambda i: {"refill": {"refill_at": 15 + i % 5, "within": "1d", "window": "12h"}},
        lambda i: {"frost": {"warn_at": -1 - i % 3}, "scope": {"sensor": ["main"]}},
        lambda i: {"expr": {"when": f"temperature_c > {36 + i % 4} and humidity_pct < 30"}},
        lambda i: {"threshold": {"quantity": "humidity_pct", "above": 99.5 - i % 3 * 0.1}},
    ]
    rules = []
    for i in range(n):
        rule = {"name": f"bench.r{i:03d}", "message": {"en": "{node} {value}"}}
        rule.update(kinds[i % len(kinds)](i))  # type: ignore[arg-type]
        rules.append(rule)
    return {"rules": rules}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=100, help="active rules in all")
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=720, help="uplinks per node (720: 5 days)")
    ap.add_argument("--farm-messages", type=int, default=20_000,
                    help="messages of the mqtt_influx.py --rules farm")
    ap.add_argument("--repeat", type=int, default=5, help="runs of the farm part")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        settings = default_settings(data, "bench")
        sim = Simulator(args.nodes, seed=5, start_time_s=1_782_860_400, interval_s=600)
        settings.devices = {f"n{m.node_id}": DeviceConfig(plot=m.plot, crop=m.crop)
                            for m in sim.models}
        store = open_store(settings)
        pipeline = build_pipeline(settings, store)
        pipeline.add_stream("radio", "frame")
        for k, e in enumerate(sim.run(args.rounds)):
            pipeline.feed("radio", e.data, received_ns=int(e.time_s * 1e9))
            if k % 500 == 0:
                pipeline.commit()
        pipeline.commit()
        entries: list[str | Path] = [presets.entry(n) for n in presets.names()]
        n_preset = len(load_rule_files(entries))
        extra = data / "bench-rules.yaml"
        extra.write_text(yaml.safe_dump(generated_rules(max(0, args.rules - n_preset))))
        rules = load_rule_files([*entries, extra])
        nodes = {f"n{m.node_id}": NodeContext(crop=m.crop) for m in sim.models}
        samples = list(stored_samples(store))
        store.close()

        evaluations = evaluations_of(Engine(rules, nodes=nodes), samples)
        engine = Engine(rules, nodes=nodes)
        c0, w0 = cpu(), time.perf_counter()
        transitions = sum(len(engine.observe(s)) for s in samples)
        c_engine = cpu() - c0
        w_engine = time.perf_counter() - w0
        series = sum(len(r.states) for r in engine.rules)
        c0 = cpu()
        ticks = 100
        for k in range(ticks):
            engine.tick(samples[-1].time_ns + k * 60 * 10**9)
        c_tick = (cpu() - c0) / ticks

        runner = RulesRunner(data / "satoyama.db",
                             lambda st: Engine(rules, nodes=nodes, states=st),
                             batch_size=2000)
        c0, w0 = cpu(), time.perf_counter()
        runner.drain()
        c_runner, w_runner = cpu() - c0, time.perf_counter() - w0
        stored_alerts = runner.store.count("alert")
        runner.stop()

    rows = len(samples)
    print(f"rules      {len(rules)} active ({n_preset} from the presets, "
          f"{len(rules) - n_preset} generated), {args.nodes} nodes, {series} rule series")
    print(f"input      {rows} stored rows ({args.rounds} uplinks per node), "
          f"{evaluations} rule evaluations ({evaluations / rows:.1f} per row), "
          f"{transitions} transitions")
    print(f"engine     {c_engine / rows * 1e3:.3f} ms CPU per row, "
          f"{c_engine / evaluations * 1e6:.1f} µs per rule evaluation "
          f"({rows / w_engine:,.0f} rows/s)")
    print(f"runner     {c_runner / rows * 1e3:.3f} ms CPU per row incl. SQLite reads, state "
          f"and transition writes ({rows / w_runner:,.0f} rows/s, {stored_alerts} alert rows)")
    print(f"tick       {c_tick * 1e3:.2f} ms CPU per scheduler tick over {series} series",
          flush=True)
    farm(args.farm_messages, args.repeat)
    return 0


def evaluations_of(engine: Engine, samples: list[Sample]) -> int:
    """How many rule evaluations ``samples`` make (the engine's plan for each)."""
    return sum(len(engine._plan(s)) for s in samples)


def spread(values: list[float], unit: str, scale: float) -> str:
    return (f"{min(values) * scale:.1f}-{max(values) * scale:.1f} {unit} "
            f"(median {statistics.median(values) * scale:.1f})")


def farm(messages: int, repeat: int) -> None:
    """The rules workload of ``benchmarks/mqtt_influx.py --rules``, in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        settings = default_settings(data, SITE)
        settings.rules = ["preset:common", "preset:tomato"]
        settings.devices = {f"n{n}": DeviceConfig(plot=f"plot-{n}", crop="tomato")
                            for n in range(1, NODES + 1)}
        store = open_store(settings)
        pipeline = build_pipeline(settings, store)
        decode = message_decoder("native", default_site=SITE)
        for i in range(messages):
            node, seq = i % NODES + 1, i // NODES
            pipeline.handle("mqtt", decode(f"satoyama/{SITE}/n{node}/up",
                                           body(node, seq).encode()),
                            received_ns=(T0_MS + seq) * 1_000_000)
            if i % 500 == 499:
                pipeline.commit()
        pipeline.commit()
        rows = store.count("reading") + store.count("device")
        samples = list(stored_samples(store))
        store.close()
        rules = load_rule_files(list(settings.rules))
        nodes = node_contexts(settings)
        evaluations = evaluations_of(Engine(rules, nodes=nodes), samples)

        engine_s: list[float] = []
        runner_s: list[float] = []
        for k in range(repeat):
            engine = Engine(rules, timezone=settings.timezone, nodes=nodes)
            c0 = cpu()
            for s in samples:
                engine.observe(s)
            engine_s.append(cpu() - c0)
            copy = data / f"run{k}"
            copy.mkdir()
            shutil.copy(store_path(settings), copy / "satoyama.db")
            runner = build_runner(settings, copy / "satoyama.db")
            assert runner is not None
            c0 = cpu()
            runner.drain()
            runner_s.append(cpu() - c0)
            runner.stop()

    print(f"farm       mqtt_influx.py --rules: {len(rules)} rules, {NODES} tomato nodes, "
          f"{messages:,} messages = {rows:,} stored rows, "
          f"{evaluations / messages:.1f} rule evaluations per message")
    per_msg = [c / messages for c in engine_s]
    print(f"farm       engine {spread(per_msg, 'µs', 1e6)} CPU per message, "
          f"{spread([c / evaluations for c in engine_s], 'µs', 1e6)} per rule evaluation, "
          f"{repeat} runs")
    print(f"farm       runner {spread([c / messages for c in runner_s], 'µs', 1e6)} CPU per "
          f"message incl. SQLite reads and state writes, {repeat} runs")


if __name__ == "__main__":
    sys.exit(main())
