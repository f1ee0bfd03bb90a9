"""``satoyama rules check|test|backtest``: rule files checked, unit-tested and tried on history."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``rules`` command to the ``satoyama`` subparsers."""
    sp = sub.add_parser("rules", help="check, unit-test and backtest alert rules")
    rules_sub = sp.add_subparsers(dest="rules_command", required=True, metavar="ACTION")

    c = rules_sub.add_parser("check", help="validate rule files (every problem, located)")
    c.add_argument("files", nargs="+", help="rule files, or preset:NAME")
    c.set_defaults(func=cmd_check)

    t = rules_sub.add_parser("test", help="run rule unit tests (YAML, like promtool)")
    t.add_argument("files", nargs="+", help="rule test files")
    t.add_argument("-q", "--quiet", action="store_true", help="print failures only")
    t.set_defaults(func=cmd_test)

    b = rules_sub.add_parser("backtest", help="which alerts the rules would have raised "
                             "over stored history")
    b.add_argument("-c", "--config", help="config file (its rules, devices, time zone)")
    b.add_argument("--data-dir", help="data directory holding satoyama.db")
    b.add_argument("--rules", nargs="+", help="rule files or preset:NAME (default: the "
                   "config's rules, else every preset)")
    b.add_argument("--from", dest="time_from", help="ISO 8601 start (site time if no offset)")
    b.add_argument("--to", dest="time_to", help="ISO 8601 end, exclusive")
    b.add_argument("--tick", default="1m", help="scheduler tick to simulate (default 1m)")
    b.add_argument("--language", default="en", choices=["en", "ja"])
    b.add_argument("--json", action="store_true", help="transitions as JSON lines")
    b.set_defaults(func=cmd_backtest)


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.config.problems import print_problems
    from rules.loader import check_rule_files

    loaded, problems = check_rule_files(list(args.files), Path.cwd())
    if print_problems(problems, ", ".join(args.files)):
        return 1
    print(f"OK: {len(loaded)} rule(s) in {len(args.files)} file(s)")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError
    from rules.testing import run_test_file

    failed = total = 0
    for name in args.files:
        try:
            results = run_test_file(Path(name))
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        for r in results:
            total += 1
            if r.passed:
                if not args.quiet:
                    print(f"PASS {name}: {r.name}")
                continue
            failed += 1
            print(f"FAIL {name}: {r.name}")
            for f in r.failures:
                print(f"     {f}")
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


def _time_ns(text: str | None, tz: Any) -> int | None:
    if not text:
        return None
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=tz)
    return int(t.timestamp() * 1e9)


def cmd_backtest(args: argparse.Namespace) -> int:
    from gateway.app import store_path
    from gateway.cli import _settings
    from gateway.config import ConfigError, Settings
    from gateway.store.sqlite import Store
    from rules import presets
    from rules.durations import parse_duration
    from rules.engine import Engine
    from rules.loader import load_rule_files
    from rules.runner import run_history, stored_samples
    from rules.wiring import node_contexts

    settings = _settings(args)
    assert isinstance(settings, Settings)
    entries: list[str | Path] = list(args.rules or settings.rules
                                     or [presets.entry(n) for n in presets.names()])
    try:
        rules = load_rule_files(entries, Path.cwd())
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    tz = settings.tzinfo
    start, end = _time_ns(args.time_from, tz), _time_ns(args.time_to, tz)
    path = store_path(settings)
    try:
        store = Store(path, readonly=True)
    except FileNotFoundError as exc:
        print(f"{exc}: give --data-dir or -c", file=sys.stderr)
        return 1
    engine = Engine(rules, timezone=settings.timezone, nodes=node_contexts(settings))
    try:
        events = run_history(engine, stored_samples(store, start, end),
                             tick_every_s=parse_duration(args.tick), end_ns=end)
    finally:
        store.close()
    fired: Counter[str] = Counter()
    for e in events:
        local = datetime.fromtimestamp(e.time_ns / 1e9, tz).isoformat(timespec="minutes")
        if e.state == "firing":
            fired[e.rule] += 1
        if args.json:
            print(json.dumps({"time": datetime.fromtimestamp(e.time_ns / 1e9, UTC)
                              .isoformat(), "rule": e.rule, "state": e.state,
                              "severity": e.severity, "site": e.site, "plot": e.plot,
                              "node": e.node, "sensor": e.sensor, "value": e.value,
                              "message": e.message(args.language)}, ensure_ascii=False))
        else:
            print(f"{local}  {e.state:<8} {e.rule:<28} {e.node}/{e.sensor}: "
                  f"{e.message(args.language)}")
    if not args.json:
        print(f"\n{len(events)} transition(s) from {len(rules)} rule(s); fired: "
              + (", ".join(f"{r} {n}" for r, n in fired.most_common()) or "none"))
    return 0
