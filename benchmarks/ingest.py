"""Ingest benchmark (not a test): frames/s and CPU time per reading, serial path and replay.

    .venv/bin/python benchmarks/ingest.py [--frames N]

Serial path: frames written to a real pty -> SerialSource thread -> bounded queue ->
pipeline worker (deframe, validate, dedup) -> SQLite commits (WAL, synchronous=FULL).
Replay path: `satoyama replay`'s code over a frame-hex file and a native JSON-lines file.
CPU time is the whole process (all threads), divided by stored readings (a reading = one
quantity value of one packet).
"""

from __future__ import annotations

import argparse
import json
import queue
import resource
import tempfile
import threading
import time
from pathlib import Path

from firmware_bridge.frame import Deframer, encode_frame
from gateway.pipeline.ingest import Pipeline
from gateway.pipeline.validate import Policy
from gateway.replay import replay_files
from gateway.sources.pty_link import PtyPair
from gateway.sources.serial import SerialSource
from gateway.store.sqlite import Store

NODES = 20
T0 = 1_790_000_000


def frames(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        node, seq = i % NODES + 1, i // NODES
        out.append(encode_frame(node, seq, {
            ("temperature_c", "main"): 18.0 + (i % 100) / 10,
            ("humidity_pct", "main"): 70.0,
            ("soil_moisture_pct", "soil_10cm"): 30.0 + (i % 50) / 10,
            ("soil_temperature_c", "soil_10cm"): 17.5,
        }, battery_v=3.7, node_time_s=T0 + seq * 60))
    return out


READINGS_PER_FRAME = 4


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bench_deframe(data: list[bytes]) -> dict[str, float]:
    blob = b"".join(data)
    d = Deframer()
    c0, t0 = cpu(), time.perf_counter()
    for i in range(0, len(blob), 4096):
        d.feed(blob[i:i + 4096])
    wall, used = time.perf_counter() - t0, cpu() - c0
    return {"frames_per_s": len(data) / wall, "cpu_us_per_frame": used / len(data) * 1e6}


def bench_serial(data: list[bytes], tmp: Path) -> dict[str, float]:
    store = Store(tmp / "serial.db")
    pipeline = Pipeline(store, Policy(default_site="bench"))
    pipeline.add_stream("serial", "frame")
    inbox: queue.Queue[object] = queue.Queue(maxsize=10_000)
    stop = threading.Event()
    with PtyPair() as pty:
        source = SerialSource("serial", pty.slave_path, 115200, inbox, stop=stop)
        worker = threading.Thread(target=pipeline.run, args=(inbox, stop), daemon=True)
        worker.start()
        source.start()
        deadline = time.monotonic() + 5
        while not source.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        blob = b"".join(data)
        c0, t0 = cpu(), time.perf_counter()
        for i in range(0, len(blob), 8192):
            pty.write(blob[i:i + 8192])
        while pipeline.totals.get("stored", 0) < len(data) and time.perf_counter() - t0 < 300:
            time.sleep(0.005)
        wall, used = time.perf_counter() - t0, cpu() - c0
        stop.set()
        source.stop()
        worker.join()
    stored = pipeline.totals.get("stored", 0)
    store.close()
    return {"frames": len(data), "stored": stored, "frames_per_s": stored / wall,
            "cpu_ms_per_reading": used / (stored * READINGS_PER_FRAME) * 1e3,
            "cpu_ms_per_frame": used / stored * 1e3}


def bench_replay(data: list[bytes], tmp: Path, fmt: str) -> dict[str, float]:
    path = tmp / f"replay.{fmt}"
    if fmt == "frame-hex":
        path.write_text("".join(f.hex() + "\n" for f in data))
    else:
        lines = []
        for i in range(len(data)):
            node, seq = i % NODES + 1, i // NODES
            lines.append(json.dumps({
                "node": f"n{node}", "seq": seq, "ts": T0 + seq * 60,
                "readings": {"temperature_c": 18.0 + (i % 100) / 10, "humidity_pct": 70.0,
                             "soil_moisture_pct@10cm": 30.0, "soil_temperature_c@10cm": 17.5},
                "battery_v": 3.7}))
        path.write_text("\n".join(lines) + "\n")
    store = Store(tmp / f"replay-{fmt}.db")
    pipeline = Pipeline(store, Policy(default_site="bench"))
    c0, t0 = cpu(), time.perf_counter()
    counts = replay_files(pipeline, "native" if fmt == "jsonl" else fmt, [path])
    wall, used = time.perf_counter() - t0, cpu() - c0
    store.close()
    stored = counts.get("stored", 0)
    return {"lines": len(data), "stored": stored, "lines_per_s": stored / wall,
            "cpu_ms_per_reading": used / (stored * READINGS_PER_FRAME) * 1e3}


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.4g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=100_000)
    args = ap.parse_args()
    data = frames(args.frames)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = {
            "deframe_only": bench_deframe(data),
            "serial_pty_to_sqlite": bench_serial(data, tmp),
            "replay_frame_hex": bench_replay(data, tmp, "frame-hex"),
            "replay_native_jsonl": bench_replay(data, tmp, "jsonl"),
        }
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name, figures in results.items():
        shown = "  ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
        print(f"{name:<22} {shown}")
    print(f"peak RSS {peak_mb:.0f} MB  ({args.frames} frames, {NODES} nodes, "
          f"{READINGS_PER_FRAME} readings + battery per frame)")


if __name__ == "__main__":
    main()
