"""`satoyama demo`: the embedded default, runnable with no servers and no hardware.

Simulated field nodes (with occasional radio faults) write frames to a real pty serial
line; the gateway reads it exactly as it reads a radio receiver on /dev/ttyUSB0, validates,
deduplicates and stores into SQLite under ``--data-dir``. Every few seconds a summary shows
each node's last values and what was rejected, and why.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from firmware_bridge.simulator import FaultPlan, Simulator
from gateway.app import Gateway
from gateway.config import default_settings
from gateway.config.models import DeviceConfig
from gateway.packet import Record
from gateway.sources.pty_link import PtyPair
from gateway.store.sqlite import BatchResult

DEFAULT_DATA_DIR = Path("demo-data")


class Console:
    """Keeps the last record of each node (from commits) and prints summaries."""

    def __init__(self, gateway_totals: Callable[[], dict[str, int]],
                 plots: dict[str, tuple[str, str]]) -> None:
        self._totals = gateway_totals
        self._plots = plots
        self._last: dict[str, Record] = {}
        self._lock = threading.Lock()

    def on_commit(self, _result: BatchResult, records: list[Record]) -> None:
        with self._lock:
            for rec in records:
                self._last[rec.node] = rec

    def render(self, elapsed_s: float) -> str:
        totals = self._totals()
        rejected = {k.removeprefix("rejected."): v for k, v in totals.items()
                    if k.startswith("rejected.")}
        lines = [
            f"--- {elapsed_s:5.0f} s  received {totals.get('received.packets', 0)}"
            f"  stored {totals.get('stored', 0)}  duplicates {totals.get('duplicates', 0)}"
            f"  rejected {sum(rejected.values())}"
            + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) + ")"
               if rejected else "")
        ]
        with self._lock:
            last = dict(self._last)
        for node in sorted(last, key=lambda n: (len(n), n)):
            rec = last[node]
            plot, crop = self._plots.get(node, (rec.plot, ""))
            lines.append(f"  {node:<4} {plot:<10} {crop:<13} {describe(rec)}")
        return "\n".join(lines)


def describe(rec: Record) -> str:
    """One line a farmer can read: air, soil by depth, battery and radio."""
    main = rec.readings.get("main", {})
    parts = []
    if "temperature_c" in main:
        air = f"air {main['temperature_c']:.1f}°C"
        if "humidity_pct" in main:
            air += f" {main['humidity_pct']:.0f}%"
        if "dew_point_c" in main:
            air += f" (dew {main['dew_point_c']:.1f}°C)"
        parts.append(air)
    soil = [
        f"{sensor.removeprefix('soil_')} {values['soil_moisture_pct']:.1f}%"
        for sensor, values in sorted(rec.readings.items(), key=lambda kv: _depth(kv[0]))
        if "soil_moisture_pct" in values
    ]
    if soil:
        parts.append("soil " + " ".join(soil))
    if "battery_v" in rec.device:
        parts.append(f"battery {rec.device['battery_v']:.2f}V")
    if rec.device.get("packet_loss_pct"):
        parts.append(f"loss {rec.device['packet_loss_pct']:.0f}%")
    return "  ".join(parts)


def _depth(sensor: str) -> int:
    digits = "".join(ch for ch in sensor if ch.isdigit())
    return int(digits) if digits else -1


def run_demo(
    *,
    data_dir: Path | None = None,
    duration: float | None = None,
    nodes: int = 4,
    rate: float = 2.0,
    faults: bool = True,
    summary_every: float = 5.0,
    seed: int = 1,
    out: Callable[[str], None] = print,
) -> int:
    data_dir = data_dir or DEFAULT_DATA_DIR
    started = time.monotonic()
    sim = Simulator(
        nodes, seed, start_time_s=time.time(), interval_s=1.0 / rate, fmt="frame",
        faults=FaultPlan.uniform(0.01) if faults else None,
    )
    plots = {f"n{m.node_id}": (m.plot, m.crop) for m in sim.models}
    with PtyPair() as pty:
        settings = default_settings(data_dir, "demo", serial_port=pty.slave_path)
        settings.devices = {node: DeviceConfig(plot=plot, crop=crop)
                            for node, (plot, crop) in plots.items()}
        console = Console(lambda: dict(gw.pipeline.totals), plots)
        gw = Gateway(settings, on_commit=console.on_commit)
        out(f"Satoyama demo: {nodes} simulated nodes -> pty {pty.slave_path} -> "
            f"{settings.sqlite_path}")
        out("Frames are validated and stored; faults (garbage, bad CRC, duplicates, skewed "
            "clocks...) are quarantined with a reason. Ctrl-C stops.")
        stop = gw.stop_event
        radio = threading.Thread(target=_radio, args=(sim, pty, rate, stop), daemon=True)
        reporter = threading.Thread(
            target=_report, args=(console, summary_every, stop, out), daemon=True)
        radio.start()
        reporter.start()
        gw.run_until_stopped(duration)
        radio.join(2)
    out(console.render(time.monotonic() - started))
    cmd = sys.argv[0] if sys.argv[0].endswith("satoyama") else "satoyama"
    out(f"\nData: {settings.sqlite_path}\n"
        f"  {cmd} status --data-dir {data_dir}\n"
        f"  {cmd} export --data-dir {data_dir} --format csv > readings.csv")
    return 0


def _radio(sim: Simulator, pty: PtyPair, rate: float, stop: threading.Event) -> None:
    """Play the radio receiver: one round of uplinks every 1/rate seconds."""
    period = 1.0 / rate
    next_at = time.monotonic()
    while not stop.is_set():
        for emission in sim.tick(time.time()):
            pty.write(emission.data, timeout=1.0)
        next_at += period
        stop.wait(max(0.0, next_at - time.monotonic()))


def _report(console: Console, every: float, stop: threading.Event,
            out: Callable[[str], None]) -> None:
    started = time.monotonic()
    while not stop.wait(every):
        out(console.render(time.monotonic() - started))
