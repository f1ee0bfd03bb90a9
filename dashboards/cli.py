"""``satoyama dashboards build|publish``, registered on the main command's subparsers.

The Grafana SDK and client are imported inside the commands, so ``satoyama run`` never
loads them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dashboards.crops import DEFAULT_CROP

EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dashboards`` with its ``build`` and ``publish`` subcommands."""
    from dashboards.build import JSON_DIR

    p = sub.add_parser("dashboards", help="Grafana dashboards: build JSON, publish to Grafana")
    dsub = p.add_subparsers(dest="dashboards_command", required=True, metavar="ACTION")

    b = dsub.add_parser("build", help="write the dashboard JSON (deterministic)")
    b.add_argument("--out", type=Path, default=JSON_DIR,
                   help=f"directory to write (default: {JSON_DIR})")
    b.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if the files differ from what the code builds")
    b.add_argument("--crop", default=DEFAULT_CROP,
                   help=f"rule preset whose soil-moisture and temperature thresholds the "
                        f"dashboards draw (default: {DEFAULT_CROP}); the committed JSON uses "
                        "the default")
    b.set_defaults(func=cmd_build)

    u = dsub.add_parser("publish", help="upload the dashboards to a Grafana (HTTP API)")
    u.add_argument("--url", default=os.environ.get("GRAFANA_URL"),
                   help="Grafana base URL, e.g. http://office-server:3000 (env GRAFANA_URL)")
    u.add_argument("--token", help="service account token (or env GRAFANA_TOKEN, or "
                   "--token-file); never logged")
    u.add_argument("--token-file", type=Path, help="file holding the token")
    u.add_argument("--dir", type=Path, default=JSON_DIR, help="dashboard JSON to upload")
    u.add_argument("--influxdb-url", help="only if Grafana lacks the datasource: the "
                   "InfluxDB URL as Grafana reaches it")
    u.add_argument("--influxdb-database", help="InfluxQL database (InfluxDB 2.x: the bucket "
                   "name, mapped by DBRP)")
    u.add_argument("--influxdb-token", help="InfluxDB token for the datasource (or env "
                   "INFLUXDB_TOKEN)")
    u.set_defaults(func=cmd_publish)


def cmd_build(args: argparse.Namespace) -> int:
    from dashboards.build import build_all, differences, write
    from dashboards.crops import crop_names

    if args.crop not in crop_names():
        print(f"satoyama: no crop preset {args.crop!r} with soil-moisture thresholds; "
              f"choose one of: {', '.join(crop_names())}", file=sys.stderr)
        return EXIT_USAGE
    built = build_all(args.crop)
    if args.check:
        problems = differences(args.out, built)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("run `satoyama dashboards build` and commit the result", file=sys.stderr)
            return 1
        print(f"{len(built)} dashboards in {args.out} are up to date")
        return 0
    changed = write(args.out, built)
    print(f"{len(built)} dashboards in {args.out}, {len(changed)} changed")
    return 0


def read_token(args: argparse.Namespace) -> str | None:
    if args.token:
        return str(args.token)
    if args.token_file:
        return Path(args.token_file).read_text(encoding="utf-8").strip()
    return os.environ.get("GRAFANA_TOKEN") or None


def cmd_publish(args: argparse.Namespace) -> int:
    from dashboards.publish import InfluxTarget, PublishError, publish

    if not args.url:
        print("satoyama: --url (or GRAFANA_URL) is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        token = read_token(args)
    except OSError as e:
        print(f"satoyama: cannot read the token file: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not token:
        print("satoyama: a Grafana token is required: --token, --token-file or GRAFANA_TOKEN",
              file=sys.stderr)
        return EXIT_USAGE
    influx = None
    if args.influxdb_url:
        if not args.influxdb_database:
            print("satoyama: --influxdb-url needs --influxdb-database", file=sys.stderr)
            return EXIT_USAGE
        influx = InfluxTarget(args.influxdb_url, args.influxdb_database,
                              args.influxdb_token or os.environ.get("INFLUXDB_TOKEN"))
    try:
        n = publish(args.url, token, args.dir, influx)
    except PublishError as e:
        print(f"satoyama: {e}", file=sys.stderr)
        return e.exit_code
    print(f"{n} dashboards published to {args.url}")
    return 0
