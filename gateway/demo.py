"""`satoyama demo`: the embedded default, runnable with no servers and no hardware.

Simulated field nodes (with occasional radio faults) write frames to a real pty serial
line; the gateway reads it exactly as it reads a radio receiver on /dev/ttyUSB0, validates,
deduplicates and stores into SQLite under ``--data-dir``. Every few seconds a summary shows
each node's last values and what was rejected, and why.

Alerts come from the shipped presets (common + each node's crop). The field runs
``--speed`` times faster than the clock (weather, soil and every rule duration alike), and
the scene is set so that something happens within a minute: the first tomato plot starts
just below its refill point (a watering alert; the simulated farmer waters half an hour of
field time after it fires, and it clears), and one node's battery is nearly flat.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from firmware_bridge.simulator import FaultPlan, NodeModel, Simulator
from gateway.app import Gateway
from gateway.config import default_settings
from gateway.config.models import DeviceConfig
from gateway.packet import Record
from gateway.sources.pty_link import PtyPair
from gateway.store.sqlite import BatchResult
from rules import presets
from rules.alert import AlertEvent

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
    speed: float = 240.0,
    out: Callable[[str], None] = print,
) -> int:
    data_dir = data_dir or DEFAULT_DATA_DIR
    started = time.monotonic()
    sim = Simulator(
        nodes, seed, start_time_s=time.time(), interval_s=1.0 / rate, fmt="frame",
        faults=FaultPlan.uniform(0.01) if faults else None, time_scale=speed,
    )
    _set_the_scene(sim.models)
    plots = {f"n{m.node_id}": (m.plot, m.crop) for m in sim.models}
    farmer = Farmer(sim.models, speed, out)
    with PtyPair() as pty:
        settings = default_settings(data_dir, "demo", serial_port=pty.slave_path)
        settings.devices = {node: DeviceConfig(plot=plot, crop=crop)
                            for node, (plot, crop) in plots.items()}
        crop_presets = presets.crop_presets()
        settings.rules = [Path(presets.entry("common")), *sorted(
            {Path(presets.entry(crop_presets[c])) for _, c in plots.values()
             if c in crop_presets})]
        console = Console(lambda: dict(gw.pipeline.totals), plots)
        gw = Gateway(settings, on_commit=console.on_commit, on_alerts=farmer.on_alerts,
                     rules_time_scale=speed)
        out(f"Satoyama demo: {nodes} simulated nodes -> pty {pty.slave_path} -> "
            f"{settings.sqlite_path}")
        out("Frames are validated and stored; faults (garbage, bad CRC, duplicates, skewed "
            "clocks...) are quarantined with a reason. Ctrl-C stops.")
        out(f"Alert rules: {', '.join(str(r) for r in settings.rules)}; the field runs "
            f"{speed:g}x faster than the clock.")
        stop = gw.stop_event
        radio = threading.Thread(target=_radio, args=(sim, pty, rate, stop), daemon=True)
        reporter = threading.Thread(
            target=_report, args=(console, summary_every, stop, out), daemon=True)
        radio.start()
        reporter.start()
        gw.run_until_stopped(duration)
        radio.join(2)
        farmer.cancel()
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


def _set_the_scene(models: list[NodeModel]) -> None:
    """Something for the alerts to notice within a minute of starting."""
    tomato = next((m for m in models if m.crop == "tomato"), None)
    if tomato is not None:  # just below the tomato refill point (22.2 %), not yet irrigated
        tomato.soil_moisture[min(tomato.depths_cm)] = 21.6
    if len(models) >= 3:
        models[2].battery_v = 3.36  # below battery_low's 3.45 V


class Farmer:
    """Prints alerts as they happen and, like a farmer, waters a plot some time after its
    watering alert fires (half an hour of field time), so the alert can clear."""

    def __init__(self, models: list[NodeModel], speed: float,
                 out: Callable[[str], None]) -> None:
        self._models = {f"n{m.node_id}": m for m in models}
        self._delay_s = 1800.0 / speed
        self._out = out
        self._timers: list[threading.Timer] = []

    def on_alerts(self, events: list[AlertEvent]) -> None:
        for e in events:
            if e.state == "pending":
                continue
            mark = "RESOLVED" if e.state == "resolved" else f"ALERT {e.severity.upper()}"
            if e.state == "resolved" and e.previous == "pending":
                continue
            text = e.text.get("en")
            self._out(f"*** {mark} [{e.rule}] {e.message('en')}"
                      + (f"\n    what to do: {text.action}" if text and text.action
                         and e.state == "firing" else ""))
            model = self._models.get(e.node)
            if e.state == "firing" and e.rule.endswith(".soil_dry") and model is not None:
                timer = threading.Timer(self._delay_s, self._water, args=(model, e.plot))
                timer.daemon = True
                timer.start()
                self._timers.append(timer)

    def _water(self, model: NodeModel, plot: str) -> None:
        model.water(10.0)
        self._out(f"    (the farmer waters {plot})")

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()
