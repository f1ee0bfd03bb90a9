"""Rule evaluation benchmark (not a test): CPU per stored reading with 100 active rules.

    .venv/bin/python benchmarks/rules_eval.py [--rules 100] [--nodes 20] [--rounds 720]

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
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

from firmware_bridge.simulator import Simulator
from gateway.app import build_pipeline, open_store
from gateway.config import default_settings
from gateway.config.models import DeviceConfig
from rules import presets
from rules.engine import Engine, NodeContext
from rules.loader import load_rule_files
from rules.runner import RulesRunner, stored_samples


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

        engine = Engine(rules, nodes=nodes)
        c0, w0 = cpu(), time.perf_counter()
        evaluations = 0
        for s in samples:
            for q in (None, *s.values):
                evaluations += sum(1 for r in engine._by_quantity.get(q, ())
                                   if engine._matches(r, s))
        c_count = cpu() - c0
        engine = Engine(rules, nodes=nodes)
        c0, w0 = cpu(), time.perf_counter()
        transitions = sum(len(engine.observe(s)) for s in samples)
        c_engine = cpu() - c0 - c_count * 0  # matching is part of observe; counted apart above
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
    print(f"tick       {c_tick * 1e3:.2f} ms CPU per scheduler tick over {series} series")
    return 0


if __name__ == "__main__":
    sys.exit(main())
