"""Instructions per message, end to end, counted by valgrind (not a test).

    .venv/bin/python benchmarks/mqtt_instructions.py [--messages N] [--threads]

Timed figures on a shared 2-core VM move by a third between runs of the same code
(benchmarks/mqtt_influx.py prints them; docs/mqtt.md "Performance" has the series). This
counts work instead: `satoyama run` drains a backlog of N native uplinks, queued in a real
Mosquitto while it was stopped, into a real InfluxDB 1.x, under `valgrind --tool=callgrind`;
the same run with no backlog is subtracted. The count covers every thread of the gateway
process (user space: system calls are not counted) and moves by about 1 % between runs of
the same code, so two versions can be compared with a few runs instead of dozens.

``--threads`` also prints each thread's share, from callgrind's per-thread files, numbered
in start order: 01 the main thread, 02 the pipeline, 04 the InfluxDB sink, 07 paho's network
thread (as of this writing). Needs `valgrind` (Debian package).
Takes about 40 s per 1,000 messages plus a minute of start-up under valgrind.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mqtt_influx as bench  # the same servers, publishers and gateway config


def _connected(db: Path, pid: int) -> bool:
    """The gateway under valgrind has reported an MQTT connection (its runtime report)."""
    with contextlib.suppress(sqlite3.Error), contextlib.closing(
            sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        row = c.execute("SELECT value FROM meta WHERE key='runtime'").fetchone()
        return bool(row) and f'"pid": {pid}' in row[0] and '"connected": true' in row[0]
    return False


def count(messages: int, *, threads: bool, rules: bool = False,
          keep: Path | None = None) -> dict[str, int]:
    """Instructions of one `satoyama run` draining ``messages``, per callgrind output file
    (one per thread with ``threads``); ``keep``: copy the callgrind files there, for
    ``callgrind_annotate``."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = bench.Mosquitto(tmp / "mqtt").start()
        influx = bench.InfluxDB1(tmp / "influx").start()
        try:
            influx.create_database("satoyama")
            config = tmp / "satoyama.yaml"
            config.write_text(yaml.safe_dump({
                "site": bench.SITE, "data_dir": str(tmp / "data"),
                "sources": {"mqtt": {"url": broker.url,
                                     "topics": [f"satoyama/{bench.SITE}/+/up"],
                                     "client_id": "bench-gateway"}},
                "sinks": {"influxdb": {"url": influx.url, "api": "v1",
                                       "database": "satoyama"}},
                **({"rules": ["preset:common", "preset:tomato"],
                    "devices": {f"n{n}": {"plot": f"plot-{n}", "crop": "tomato"}
                                for n in range(1, bench.NODES + 1)}} if rules else {}),
            }))
            db = tmp / "data" / "satoyama.db"
            gw = bench.GatewayProcess(config, tmp / "gateway.log")
            gw.start()  # once, to create the broker session that keeps the backlog
            gw.wait_started()
            gw.stop()
            if messages:
                pubs = bench.Publishers(broker)
                pubs.send(messages, None)
                pubs.close()
                time.sleep(2.0)
            out = tmp / "callgrind.out"
            with (tmp / "valgrind.log").open("wb") as log:
                proc = subprocess.Popen(
                    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                     *(["--separate-threads=yes"] if threads else []),
                     sys.executable, "-m", "gateway.cli", "run", "-c", str(config)],
                    stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 60 + messages / 20
            while not (bench.accepted(db) >= messages * bench.ROWS_PER_MESSAGE if messages
                       else _connected(db, proc.pid)):
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise SystemExit(f"gateway under valgrind did not finish; see "
                                     f"{bench.gateway_counters(db)}")
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            proc.wait(600)
            if bench.stored(influx) != messages:
                raise SystemExit(f"InfluxDB holds {bench.stored(influx)} of {messages}")
            totals = {}
            for f in sorted(tmp.glob("callgrind.out*")):
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(f, keep / f.name)
                m = re.search(r"^(?:summary|totals): (\d+)", f.read_text(errors="replace"),
                              re.M)
                if m:
                    totals[f.name] = int(m.group(1))
            return totals
        finally:
            broker.stop()
            influx.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--threads", action="store_true", help="also each thread's share")
    ap.add_argument("--rules", action="store_true",
                    help="also run the alert rules, as benchmarks/mqtt_influx.py --rules does")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="keep the callgrind files of the run with messages in DIR "
                         "(callgrind_annotate DIR/callgrind.out-02 shows the pipeline's)")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    idle = count(0, threads=args.threads, rules=args.rules)
    busy = count(args.messages, threads=args.threads, rules=args.rules, keep=args.keep)
    n = args.messages
    total = (sum(busy.values()) - sum(idle.values())) / n
    print(f"end to end {total:,.0f} instructions per message ({n:,} messages drained from "
          "the broker into InfluxDB; start-up and shutdown subtracted)")
    if args.threads:
        for name in sorted(busy):
            share = (busy[name] - idle.get(name, 0)) / n
            if share > 1000:
                print(f"  thread {name.rsplit('-', 1)[-1]}: {share:,.0f} per message")


if __name__ == "__main__":
    main()
