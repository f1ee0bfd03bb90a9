"""The `satoyama` command. Each subcommand is a small function; heavy imports stay inside them."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config models load pydantic: imported where a command needs them
    from gateway.config.models import Settings
    from gateway.store import Store

log = logging.getLogger("satoyama")


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from -c FILE, else defaults for --data-dir (for replay/export/status)."""
    from gateway.config import ConfigError, default_settings, load_settings

    try:
        if getattr(args, "config", None):
            settings = load_settings(Path(args.config))
            if getattr(args, "data_dir", None):
                settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
                settings.sinks.sqlite.path = None  # follow the data dir
            return settings
        # the demo's site: `export --site` is a filter, not this gateway's own site (which
        # export.sites would treat as shared)
        return default_settings(Path(args.data_dir or "./data"))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    from gateway.config import check_config
    from gateway.config.problems import print_problems

    problems = check_config(Path(args.config))
    if print_problems(problems, args.config):
        return 1
    print(f"{args.config}: OK" + (f" ({len(problems)} warning(s) above)" if problems else ""))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.app import Gateway
    from gateway.tuning import settle_after_startup, share_malloc_arenas

    share_malloc_arenas()  # before any thread starts (gateway/tuning.py)
    gw = Gateway(_settings(args))
    settle_after_startup()
    gw.run_until_stopped(args.duration)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(
        data_dir=Path(args.data_dir) if args.data_dir else None,
        duration=args.duration, nodes=args.nodes, rate=args.rate, faults=not args.no_faults,
        summary_every=args.summary_every, seed=args.seed, speed=args.speed,
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.mqtt:
        from gateway.simulate_mqtt import run_simulate_mqtt

        return run_simulate_mqtt(
            args.mqtt, site=args.site, nodes=args.nodes, rate=args.rate, count=args.count,
            duration=args.duration, faults=args.faults, seed=args.seed,
            username=args.username, password_file=args.password_file, ca_file=args.ca_file,
            ack_timeout_s=args.ack_timeout, as_json=args.json,
        )
    from gateway.simulate import run_simulate

    return run_simulate(
        serial=args.serial, stdout=args.stdout, fmt=args.format,
        nodes=args.nodes, rate=args.rate, count=args.count, duration=args.duration,
        faults=args.faults, seed=args.seed, site=args.site,
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from gateway.app import build_pipeline, open_store, store_path
    from gateway.replay import MESSAGE_FORMATS, deliver, replay_files, topic_codec
    from gateway.sinks.influxdb import InfluxSink

    settings = _settings(args)
    mqtt = settings.sources.mqtt
    topics = mqtt.topic_formats if mqtt is not None else []
    if args.topic is not None and args.format not in MESSAGE_FORMATS:
        print(f"satoyama: --topic is for --format {' or '.join(MESSAGE_FORMATS)} (MQTT "
              "messages); other formats carry no topic", file=sys.stderr)
        return 2
    note = topic_codec(args.format, topics)[1] if args.topic is None else None
    if note:
        print(f"satoyama replay: {note}", file=sys.stderr)
    store = open_store(settings)
    try:
        pipeline = build_pipeline(settings, store)
        counts = replay_files(
            pipeline, args.format, [Path(p) for p in args.files],
            ids=settings.external_ids,
            device_codecs=settings.device_codecs,
            topics=topics, topic=args.topic, http=settings.sources.http,
        )
    finally:
        store.close()
    influx = settings.sinks.influxdb
    failure = None
    if influx is not None and influx.enabled:
        sink = InfluxSink(store_path(settings), influx,
                          gateway_id=settings.gateway_id)
        try:
            delivered, failure = deliver(sink)
        finally:
            sink.close()
        counts.update({f"influxdb.{k}": v for k, v in delivered.items()})
        if failure:
            print(f"satoyama: InfluxDB did not take the readings ({failure}); they stay in "
                  "the outbox and `satoyama run` sends them", file=sys.stderr)
    if args.json:
        print(json.dumps(counts, sort_keys=True))
        return 1 if failure else 0
    rejected = {k.removeprefix("rejected."): v for k, v in counts.items()
                if k.startswith("rejected.")}
    print(f"packets {counts.get('received.packets', 0)}  stored {counts.get('stored', 0)}  "
          f"duplicates {counts.get('duplicates', 0)}  rejected {sum(rejected.values())}")
    for reason, n in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  rejected {reason}: {n}")
    for name, n in sorted(counts.items()):
        if name.startswith("ignored."):  # well-formed, no readings (a LoRaWAN join...)
            print(f"  ignored {name.removeprefix('ignored.')}: {n}")
    if "influxdb.written" in counts:
        print(f"influxdb points written {counts['influxdb.written']}, "
              f"rejected {counts['influxdb.rejected']}")
    return 1 if failure else 0


def _open_readonly(settings: Settings) -> Store:
    from gateway.app import store_path
    from gateway.store import Store

    path = store_path(settings)
    try:
        return Store(path, readonly=True)
    except FileNotFoundError:
        print(f"satoyama: no store at {path} (run the gateway or the demo first, or pass "
              "--data-dir/-c)", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_export(args: argparse.Namespace) -> int:
    from gateway.export import parse_time, readings, write_csv
    from gateway.export_privacy import SitePrivacy

    if args.format == "parquet":
        try:
            import pyarrow  # noqa: F401  (optional: only Parquet exports need it)
        except ImportError:
            print("satoyama: --format parquet needs pyarrow, which is not installed: "
                  "pip install 'satoyama[parquet]' (or pip install pyarrow)", file=sys.stderr)
            return 2
        if not args.output:
            print("satoyama: Parquet is a binary file: give -o FILE.parquet", file=sys.stderr)
            return 2
    for option, text in (("--from", args.time_from), ("--to", args.time_to)):
        try:
            if text:
                parse_time(text)
        except ValueError as e:
            print(f"satoyama: {option} {text!r} is not an ISO 8601 date or date-time "
                  f"({e}); for example 2026-07-01, 2026-07-01T06:00 (UTC) or "
                  "2026-07-01T06:00+09:00", file=sys.stderr)
            return 2
    settings = _settings(args)
    privacy = SitePrivacy.from_settings(settings)
    store = _open_readonly(settings)
    try:
        rows = privacy.apply(readings(store, site=args.site, plot=args.plot, node=args.node,
                                      time_from=args.time_from, time_to=args.time_to))
        if args.format == "parquet":
            from gateway.export_parquet import write_parquet

            n = write_parquet(rows, Path(args.output))
        else:
            out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
            try:
                n = write_csv(rows, out, with_units=args.units_row)
            finally:
                if args.output:
                    out.close()
    finally:
        store.close()
    print(f"exported {n} rows", file=sys.stderr)
    for line in privacy.notes():
        print(f"export: {line}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from gateway.status import collect, render

    settings = _settings(args)
    store = _open_readonly(settings)
    influx = settings.sinks.influxdb
    sinks = ("influxdb",) if influx is not None and influx.enabled else ()
    try:
        info = collect(store, sinks=sinks)
    finally:
        store.close()
    if args.check:  # a health check: is a gateway running on this store and reporting?
        from gateway import runtime

        line = runtime.describe(info["runtime"], time.time_ns())[0]
        print(line)
        return 0 if info["runtime"] and info["runtime"]["state"] == "running" else 1
    if args.json:
        print(json.dumps(info, default=str, sort_keys=True, indent=1))
    else:
        print(render(info, tz=settings.timezone))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="satoyama", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser, required: bool = False) -> None:
        sp.add_argument("-c", "--config", required=required, help="YAML config file")

    def with_data_dir(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data-dir", help="data directory holding satoyama.db")

    sp = sub.add_parser("demo", help="simulated nodes on a pty serial line -> SQLite, live")
    sp.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    with_data_dir(sp)
    sp.add_argument("--nodes", type=int, default=4)
    sp.add_argument("--rate", type=float, default=2.0, help="packets per second per node")
    sp.add_argument("--no-faults", action="store_true", help="send only clean frames")
    sp.add_argument("--summary-every", type=float, default=5.0, help="seconds between summaries")
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--speed", type=float, default=240.0,
                    help="field time per second of clock time (default 240: four minutes of "
                    "weather, soil and alert durations per second)")
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("run", help="run the gateway as configured")
    with_config(sp, required=True)
    sp.add_argument("--duration", type=float, help="seconds to run (default: until signalled)")
    sp.set_defaults(func=cmd_run, data_dir=None)

    sp = sub.add_parser("check-config", help="validate a config file, its rules and devices")
    with_config(sp, required=True)
    sp.set_defaults(func=cmd_check_config)

    sp = sub.add_parser("simulate", help="simulated field nodes to a serial port, an MQTT "
                        "broker or stdout")
    target = sp.add_mutually_exclusive_group(required=True)
    target.add_argument("--serial", help="serial device to write to, or pty:PATH to create "
                        "a pty with a symlink PATH for the gateway to open")
    target.add_argument("--mqtt", metavar="URL", help="broker to publish native uplinks to "
                        "(mqtt://host:port or mqtts://host:port), QoS 1, on "
                        "satoyama/<site>/<node>/up")
    target.add_argument("--stdout", action="store_true", help="write to standard output")
    sp.add_argument("--format", default="frame", choices=["frame", "jsonl", "rylr", "frame-hex"],
                    help="wire format on --serial/--stdout (--mqtt always sends native JSON)")
    sp.add_argument("--nodes", type=int, default=4)
    sp.add_argument("--rate", type=float, default=1.0, help="packets per second per node")
    sp.add_argument("--count", type=int, help="packets per node, then stop")
    sp.add_argument("--duration", type=float, help="seconds, then stop")
    sp.add_argument("--faults", action="store_true",
                    help="inject garbage, bad CRC, truncation, duplicates, gaps, skewed clocks")
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--site", default="demo", help="the site in --mqtt topics")
    mq = sp.add_argument_group("--mqtt options")
    mq.add_argument("--username", help="broker user name")
    mq.add_argument("--password-file", help="file holding the broker password")
    mq.add_argument("--ca-file", help="CA that signed the broker's certificate (mqtts://; "
                    "default: the system CAs)")
    mq.add_argument("--ack-timeout", type=float, default=30.0,
                    help="seconds to wait at the end for the broker's acknowledgements")
    mq.add_argument("--json", action="store_true", help="print the tally (messages, "
                    "acknowledged, faults injected, counts a gateway should see) as JSON")
    sp.set_defaults(func=cmd_simulate)

    sp = sub.add_parser("replay", help="feed recorded messages through the pipeline")
    sp.add_argument("--format", required=True,
                    choices=["native", "frame-hex", "rylr", "frame", "lpp-hex", "rtl433",
                             "ecowitt", "ttn", "chirpstack"],
                    help="ecowitt: one upload body per line, decided as the HTTP source of "
                    "-c decides it (sources.http.stations, max_body_bytes); ttn/chirpstack: "
                    "one message per line, nodes by DevEUI (the registry's lorawan: ids, "
                    "else eui-<deveui>)")
    sp.add_argument("files", nargs="+")
    sp.add_argument("--topic", help="ttn/chirpstack: decode as if the messages had come on "
                    "this MQTT topic (its sources.mqtt.topics entry's format and codec; "
                    "ChirpStack's event type); quarantined messages keep it as their topic")
    with_config(sp)
    with_data_dir(sp)
    sp.add_argument("--json", action="store_true", help="counts as JSON")
    sp.set_defaults(func=cmd_replay)

    sp = sub.add_parser("export", help="readings as CSV or Parquet with units and provenance, "
                        "honouring the config's per-site sharing (export.sites)")
    with_config(sp)
    with_data_dir(sp)
    sp.add_argument("--format", default="csv", choices=["csv", "parquet"],
                    help="parquet needs pyarrow (pip install 'satoyama[parquet]') and -o")
    sp.add_argument("--site")
    sp.add_argument("--plot")
    sp.add_argument("--node")
    sp.add_argument("--from", dest="time_from", help="ISO 8601 start (UTC if no offset)")
    sp.add_argument("--to", dest="time_to", help="ISO 8601 end, exclusive")
    sp.add_argument("-o", "--output", help="file to write (default: standard output)")
    sp.add_argument("--units-row", action="store_true", help="add a second header row of units")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("status", help="the running gateway, its sources and queue, "
                        "counters, rejects and the latest quarantine entries, backlogs, "
                        "alerts, nodes and last values")
    with_config(sp)
    with_data_dir(sp)
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--check", action="store_true",
                    help="health check: exit 0 if a gateway on this store reported within "
                    "the last 15 s, else 1 (one line says why)")
    sp.set_defaults(func=cmd_status)

    from dashboards.cli import register as register_dashboards  # Grafana libs load lazily
    register_dashboards(sub)
    from rules.cli import register as register_rules
    register_rules(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # APScheduler logs two INFO lines per job run: with the rules' 1 s job that is a
        # flooded journal, not news. Its warnings and errors (a missed or failed job) stay.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `satoyama export ... | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
