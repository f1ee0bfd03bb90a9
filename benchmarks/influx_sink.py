"""InfluxDB sink benchmark (not a test): how fast a backlog drains, points/s and CPU per point.

    .venv/bin/python benchmarks/influx_sink.py [--rows 200000] [--batch-size 5000]

A SQLite outbox holding ``--rows`` reading rows (20 nodes, two sensors per packet, one
minute apart) is drained by :class:`InfluxSink` (``flush_once`` until the backlog is
empty, i.e. the sink thread's work without its sleeps) into real servers started as the
tests start them: InfluxDB 1.x through ``/write`` (v1) and VictoriaMetrics through
``/api/v2/write`` (v2, influxdb-client) and ``/write`` (v1). "client CPU" is this process
(reading SQLite, encoding line protocol, HTTP, advancing the cursor); "server CPU" is the
server process over the same interval. Each run ends by checking the server's count.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers.influx import InfluxDB1, VictoriaMetrics

from gateway.config.models import InfluxDBSinkConfig
from gateway.packet import Record
from gateway.sinks.influxdb import InfluxSink
from gateway.store.sqlite import Store

NODES = 20


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime in clock ticks


def fill(store: Store, rows: int) -> None:
    t0 = (time.time_ns() // 10**9 - 30 * 86400) * 10**9
    packets = rows // 2
    batch: list[Record] = []
    for i in range(packets):
        node, k = f"n{i % NODES + 1:02d}", i // NODES
        batch.append(Record(
            time_ns=t0 + k * 60 * 10**9, received_ns=time.time_ns(), site="farm",
            plot=f"p{i % 4}", node=node, seq=k, digest=f"{node}:{k}".encode(),
            source="bench", format="native", time_source="node",
            readings={"main": {"temperature_c": 18.0 + i % 100 / 10, "humidity_pct": 70.0,
                               "dew_point_c": 12.25, "vpd_kpa": 0.625},
                      "soil_10cm": {"soil_moisture_pct": 30.0 + i % 50 / 10,
                                    "soil_temperature_c": 17.5}},
        ))
        if len(batch) == 2000:
            store.write_batch(batch)
            batch = []
    store.write_batch(batch)


def drain(store_path: Path, cfg: InfluxDBSinkConfig, name: str, pid: int) -> dict[str, float]:
    sink = InfluxSink(store_path, cfg, name=name, gateway_id="bench")
    total = sink.backlog()["reading"]
    c0, s0, t0 = cpu_self(), cpu_of(pid), time.perf_counter()
    while any(sink.backlog().values()):
        sink.flush_once()
    wall = time.perf_counter() - t0
    client, server = cpu_self() - c0, cpu_of(pid) - s0
    sink.stop()
    return {"points": total, "wall_s": wall, "points_per_s": total / wall,
            "client_cpu_ms_per_point": client * 1000 / total,
            "server_cpu_ms_per_point": server * 1000 / total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        store = Store(d / "outbox.db")
        t = time.perf_counter()
        fill(store, args.rows)
        print(f"outbox: {store.count('reading')} reading rows "
              f"(filled in {time.perf_counter() - t:.1f} s)")
        influx = InfluxDB1(d / "influx").start()
        vm = VictoriaMetrics(d / "vm").start()
        assert influx.proc is not None and vm.proc is not None
        try:
            influx.create_database("bench")
            runs = [
                ("influxdb1 /write (v1)", "i1",
                 InfluxDBSinkConfig(url=influx.url, api="v1", database="bench",
                                    batch_size=args.batch_size), influx.proc.pid),
                ("victoria-metrics /api/v2/write (v2)", "vm2",
                 InfluxDBSinkConfig(url=vm.url, api="v2", org="o", bucket="b", token="t",
                                    batch_size=args.batch_size), vm.proc.pid),
                ("victoria-metrics /write (v1)", "vm1",
                 InfluxDBSinkConfig(url=vm.url, api="v1", database="bench",
                                    batch_size=args.batch_size), vm.proc.pid),
            ]
            print(f"batch_size {args.batch_size}")
            for label, name, cfg, pid in runs:
                r = drain(store.path, cfg, name, pid)
                print(f"{label:38s} {r['points']:>7.0f} points in {r['wall_s']:6.2f} s = "
                      f"{r['points_per_s']:>8.0f} points/s; CPU per point: client "
                      f"{r['client_cpu_ms_per_point']:.4f} ms, server "
                      f"{r['server_cpu_ms_per_point']:.4f} ms")
            got = influx.query("SELECT count(temperature_c), count(soil_moisture_pct) "
                               "FROM reading", "bench")["results"][0]["series"][0]["values"][0]
            print(f"check: InfluxDB 1.x holds {got[1]} main + {got[2]} soil_10cm points")
            n = sum(len(e["values"]) for e in vm.export('{__name__="reading_soil_moisture_pct"}'))
            print(f"check: VictoriaMetrics holds {n} soil moisture samples (two runs: "
                  "v2 and v1 each wrote them once)")
        finally:
            influx.stop()
            vm.stop()


if __name__ == "__main__":
    main()
