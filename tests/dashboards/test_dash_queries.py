"""Every dashboard query against a real InfluxDB 1.x holding simulated farms.

Three sites of simulated field nodes (firmware_bridge's simulator: RYLR radio lines with
RSSI and SNR, with faults) go through
the real pipeline into a real SQLite outbox and out through the real InfluxDB sink (v1
``/write``); the sink's own ``gateway`` self-metrics points are written the same way, at
the simulated times; ``alert`` points are written with the schema of DESIGN.md §3.

Then every panel target, template variable and annotation of the committed dashboard JSON
is run the way Grafana would send it (macros and variables substituted by
tests/grafana_influxql.py), with every variable at "All" and with narrower selections,
with a relative and an absolute time range. A query that InfluxDB cannot parse, that
returns no series, or whose series are all null fails; so does one whose series do not
cover the sites, plots and nodes the selection should show.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from grafana_influxql import Context, Selection, TimeRange, interpolate
from servers.influx import InfluxDB1, free_port

from dashboards.build import JSON_DIR
from firmware_bridge.simulator import FaultPlan, Simulator
from gateway.config.models import InfluxDBSinkConfig
from gateway.pipeline.ingest import Pipeline
from gateway.pipeline.validate import DeviceInfo, Policy
from gateway.sinks.influxdb import FailureClass, InfluxSink, V1Writer, WriteError
from gateway.sinks.line_protocol import encode_point
from gateway.sinks.retry import RetryPolicy
from gateway.store.sqlite import Store

DATABASE = "satoyama"
SITES = ("kawabata", "tanada", "yamabe")
NODES_PER_SITE = 4
INTERVAL_S = 300.0
HOURS = 6
RETENTION_DAYS = 2
NOW_S = float(int(time.time()) // 60 * 60)
START_S = NOW_S - HOURS * 3600 + 60


@dataclass
class Farms:
    """What was written, to know what each query should return."""

    db: InfluxDB1
    plots: dict[str, set[str]] = field(default_factory=dict)  # site -> plots
    nodes: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (site, plot) -> nodes
    gateways: set[str] = field(default_factory=set)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # gateway -> last report
    firing: set[tuple[str, str, str, str]] = field(default_factory=set)  # site, plot, node, rule
    resolved: set[tuple[str, str, str, str]] = field(default_factory=set)


def _load_site(index: int, site: str, influx: InfluxDB1, tmp: Path, farms: Farms) -> None:
    sim = Simulator(NODES_PER_SITE, seed=index + 1, start_time_s=START_S,
                    interval_s=INTERVAL_S, fmt="rylr", faults=FaultPlan.uniform(0.02),
                    first_node_id=10 * (index + 1) + 1)
    devices = {f"n{m.node_id}": DeviceInfo(site=site, plot=m.plot) for m in sim.models}
    for m in sim.models:
        farms.plots.setdefault(site, set()).add(m.plot)
        farms.nodes.setdefault((site, m.plot), set()).add(f"n{m.node_id}")
    store_path = tmp / f"{site}.db"
    store = Store(store_path)
    pipeline = Pipeline(store, Policy(default_site=site), devices=devices)
    pipeline.add_stream("serial", "rylr")
    gateway_id = f"gw-{site}"
    farms.gateways.add(gateway_id)
    clock = [int(START_S * 1e9)]
    cfg = InfluxDBSinkConfig(url=influx.url, api="v1", database=DATABASE)
    sink = InfluxSink(store_path, cfg, gateway_id=gateway_id, retry=RetryPolicy.fast(),
                      clock_ns=lambda: clock[0])
    rounds = int(HOURS * 3600 // INTERVAL_S) - 1
    try:
        for k in range(rounds):
            t = START_S + k * INTERVAL_S
            for emission in sim.tick(t):
                pipeline.feed("serial", emission.data, received_ns=int(t * 1e9))
            pipeline.commit()
            if k == 3:
                _count_a_refused_write(store_path, cfg, gateway_id)
                _replay_an_ancient_uplink(pipeline, sorted(devices)[0])
            if k % 3 == 2:  # the sink drains and reports itself every 15 simulated minutes
                clock[0] = int(t * 1e9)
                while any(sink.backlog().values()):
                    sink.flush_once()
                sink.write_self_metrics()
                farms.counters[gateway_id] = store.counters()
    finally:
        sink.close()
        store.close()


def _count_a_refused_write(store_path: Path, cfg: InfluxDBSinkConfig, gateway_id: str) -> None:
    """A real failed write (nothing listens there): the store counts it by class."""
    down = cfg.model_copy(update={"url": f"http://127.0.0.1:{free_port()}"})
    sink = InfluxSink(store_path, down, gateway_id=gateway_id, retry=RetryPolicy.fast(),
                      timeout_s=2.0)
    try:
        with pytest.raises(WriteError):
            sink.flush_once()
    finally:
        sink.close()


def _replay_an_ancient_uplink(pipeline: Pipeline, node: str) -> None:
    """A replayed uplink keeps its node time, here older than the database's retention:
    InfluxDB refuses that point (a partial write), so the sink bisects it out, quarantines
    it and counts it as a rejected point."""
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW_S - (RETENTION_DAYS + 2) * 86400))
    line = json.dumps({"node": node, "seq": 999_999, "ts": old,
                       "readings": {"temperature_c": 21.5}})
    pipeline.add_stream("replay", "jsonl")
    pipeline.feed("replay", line.encode() + b"\n", replay=True)
    pipeline.commit()


def _write_alerts(influx: InfluxDB1, farms: Farms) -> None:
    """Alert state changes with the `alert` schema (tags as gateway/sinks/line_protocol.py
    writes them): per site one still firing, one resolved (pending -> firing -> resolved)
    and one that began firing a day ago, before the dashboards' time ranges."""
    lines = []
    writer = V1Writer(influx.url, DATABASE, None, 10.0)
    for site in SITES:
        plot = sorted(farms.plots[site])[0]
        node = sorted(farms.nodes[(site, plot)])[0]
        other_plot = sorted(farms.plots[site])[-1]
        other = sorted(farms.nodes[(site, other_plot)])[0]
        t0 = int((NOW_S - 3 * 3600) * 1e9)
        changes = [
            ((site, plot, node, "soil_dry"), "warning", "pending", 0, 17.5),
            ((site, plot, node, "soil_dry"), "warning", "firing", 600, 16.9),
            ((site, other_plot, other, "frost"), "critical", "pending", 900, 2.1),
            ((site, other_plot, other, "frost"), "critical", "firing", 1200, 1.4),
            ((site, other_plot, other, "frost"), "critical", "resolved", 3600, 4.0),
            # firing since a day ago, before the dashboards' 6 h range: still firing now
            ((site, other_plot, other, "node_silent"), "warning", "firing", -86400, 2.0),
        ]
        for (s, p, n, rule), severity, state, dt_s, value in changes:
            tags = {"site": s, "plot": p, "node": n, "sensor": "main", "rule": rule,
                    "severity": severity}
            message = f"{rule.replace('_', ' ')} on {p}: {value:g}"
            lines.append(encode_point("alert", tags, {"state": state, "value": value,
                                                      "message": message},
                                      t0 + dt_s * 10**9))
        farms.firing.add((site, plot, node, "soil_dry"))
        farms.firing.add((site, other_plot, other, "node_silent"))
        farms.resolved.add((site, other_plot, other, "frost"))
    try:
        writer.write("\n".join(lines).encode())
    finally:
        writer.close()


@pytest.fixture(scope="module")
def farms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farms]:
    influx = InfluxDB1(tmp_path_factory.mktemp("influxdb")).start()
    try:
        influx.query(f'CREATE DATABASE "{DATABASE}" WITH DURATION {RETENTION_DAYS}d')
        data = Farms(influx)
        tmp = tmp_path_factory.mktemp("stores")
        for i, site in enumerate(SITES):
            _load_site(i, site, influx, tmp, data)
        _write_alerts(influx, data)
        yield data
    finally:
        influx.stop()


# --------------------------------------------------------------------------- the dashboards


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(JSON_DIR.glob("*.json"))}


DASHBOARDS = _dashboards()


@dataclass(frozen=True)
class Target:
    dashboard: str
    title: str
    query: str

    def __str__(self) -> str:
        return f"{self.dashboard}: {self.title}"


def _targets() -> list[Target]:
    out = []
    for name, dash in DASHBOARDS.items():
        for panel in dash.get("panels", []):
            for target in panel.get("targets", []):
                out.append(Target(name, f"{panel['title']} [{target['refId']}]",
                                  target["query"]))
        for anno in dash.get("annotations", {}).get("list", []):
            if anno.get("datasource", {}).get("type") == "influxdb":
                out.append(Target(name, f"annotation {anno['name']}", anno["target"]["query"]))
    return out


TARGETS = _targets()


def _variables(dashboard: str) -> list[dict[str, Any]]:
    return list(DASHBOARDS[dashboard].get("templating", {}).get("list", []))


def run(farms: Farms, query: str) -> list[dict[str, Any]]:
    """Run one InfluxQL statement (raises on a parse or execution error)."""
    return farms.db.series(query, DATABASE)


def resolve_variables(farms: Farms, dashboard: str, ctx: Context,
                      choose: dict[str, list[str]] | None = None) -> Context:
    """Fill the dashboard's variables in order, as Grafana does on load: each query
    variable runs with the ones before it; multi ones take All unless ``choose`` says,
    single ones their first value; custom ones their current value."""
    choose = choose or {}
    selections: dict[str, Selection] = {}
    for var in _variables(dashboard):
        name = var["name"]
        multi = bool(var.get("multi") or var.get("includeAll"))
        if var["type"] == "custom":
            selections[name] = Selection([var["current"]["value"]], multi)
            continue
        assert var["type"] == "query", var
        query = interpolate(var["query"], Context(ctx.time, ctx.interval, ctx.interval_ms,
                                                  selections))
        series = run(farms, query)
        values = sorted(v[1] for s in series for v in s["values"])
        assert values, f"{dashboard}: variable {name} has no values: {query}"
        if name in choose:
            assert set(choose[name]) <= set(values), (name, choose[name], values)
            values = choose[name]
        selections[name] = Selection(values if multi else values[:1], multi)
    return Context(ctx.time, ctx.interval, ctx.interval_ms, selections)


TIME_RANGES = {
    "relative": TimeRange(relative=f"{HOURS}h"),
    "absolute": TimeRange(relative=None, from_ms=int((NOW_S - HOURS * 3600) * 1000),
                          to_ms=int(NOW_S * 1000) + 60_000),
}


def _group_tags(query: str) -> set[str]:
    """Tags of the outermost GROUP BY."""
    m = re.search(r"GROUP BY ([^()]*?)(?: fill\(\w+\))?$", query)
    if not m:
        return set()
    return set(re.findall(r'"(\w+)"', m.group(1)))


def check_series(target: Target, query: str, series: list[dict[str, Any]], farms: Farms,
                 ctx: Context) -> None:
    assert series, f"{target}: no series for {query}"
    for s in series:
        values = [v for row in s["values"] for v in row[1:]]
        assert any(v is not None for v in values), f"{target}: only nulls in {s}"
    chosen = {k: set(v.values) for k, v in ctx.variables.items()}
    tags = [s.get("tags", {}) for s in series]
    grouped = _group_tags(query)
    # Every series stays inside the selection...
    for t in tags:
        for key in ("site", "plot", "node", "gateway"):
            if key in t and key in chosen:
                assert t[key] in chosen[key], f"{target}: {key}={t[key]} not selected"
    # ...and the selection's sites and gateways all show up where the query groups by them.
    if "site" in grouped and "site" in chosen and "alert" not in query:
        assert {t["site"] for t in tags} == chosen["site"], target
    if "gateway" in grouped:
        assert {t["gateway"] for t in tags} == chosen["gateway"], target
    if "node" in grouped and "node" in chosen and "FROM \"alert\"" not in query and (
            "site" in chosen and "plot" in chosen):
        expected_nodes = {n for (s, p), nodes in farms.nodes.items() if s in chosen["site"]
                          and p in chosen["plot"] for n in nodes} & chosen["node"]
        assert {t["node"] for t in tags} == expected_nodes, target


@pytest.mark.parametrize("time_range", sorted(TIME_RANGES))
@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_every_query_returns_the_selected_series(farms: Farms, target: Target,
                                                 time_range: str) -> None:
    ctx = resolve_variables(farms, target.dashboard, Context(TIME_RANGES[time_range]))
    query = interpolate(target.query, ctx)
    check_series(target, query, run(farms, query), farms, ctx)


@pytest.mark.parametrize("target", [t for t in TARGETS if "$site" in t.query
                                    and DASHBOARDS[t.dashboard]["templating"]["list"][0]
                                    .get("multi")], ids=str)
def test_queries_honour_a_two_site_selection(farms: Farms, target: Target) -> None:
    chosen = {"site": list(SITES[:2])}
    ctx = resolve_variables(farms, target.dashboard, Context(TIME_RANGES["relative"]), chosen)
    query = interpolate(target.query, ctx)
    assert "(kawabata|tanada)" in query
    check_series(target, query, run(farms, query), farms, ctx)


def test_variables_list_what_was_written(farms: Farms) -> None:
    ctx = resolve_variables(farms, "farm-overview.json", Context())
    assert set(ctx.variables["site"].values) == set(SITES)
    assert set(ctx.variables["plot"].values) == set().union(*farms.plots.values())
    plot_ctx = resolve_variables(farms, "plot-detail.json", Context())
    site, plot = plot_ctx.variables["site"].values[0], plot_ctx.variables["plot"].values[0]
    assert set(plot_ctx.variables["node"].values) == farms.nodes[(site, plot)]
    gw_ctx = resolve_variables(farms, "gateway.json", Context())
    assert set(gw_ctx.variables["gateway"].values) == farms.gateways


# --------------------------------------------------------------------------- meaning


def _query(dashboard: str, title: str, ref_id: str = "A") -> str:
    for panel in DASHBOARDS[dashboard]["panels"]:
        if panel["title"] == title:
            return str(next(t["query"] for t in panel["targets"] if t["refId"] == ref_id))
    raise AssertionError(f"{dashboard} has no panel {title!r}")


def _run_panel(farms: Farms, dashboard: str, title: str, ref_id: str = "A"
               ) -> list[dict[str, Any]]:
    ctx = resolve_variables(farms, dashboard, Context(TIME_RANGES["relative"]))
    return run(farms, interpolate(_query(dashboard, title, ref_id), ctx))


def test_alerts_firing_lists_only_alerts_still_firing(farms: Farms) -> None:
    series = _run_panel(farms, "farm-overview.json", "Alerts firing")
    got = {(s["tags"]["site"], s["tags"]["plot"], s["tags"]["node"], s["tags"]["rule"])
           for s in series}
    assert got == farms.firing
    assert not got & farms.resolved
    counts = _run_panel(farms, "farm-overview.json", "Active alerts")
    assert {s["tags"]["site"]: s["values"][0][1] for s in counts} == dict.fromkeys(SITES, 2)


def _totals(series: list[dict[str, Any]], prefix: str) -> dict[str, dict[str, int]]:
    """gateway -> {counter: latest non-null value} from `last(/regex/)` series."""
    out: dict[str, dict[str, int]] = {}
    for s in series:
        got = out.setdefault(s["tags"]["gateway"], {})
        for row in s["values"]:
            for name, value in zip(s["columns"][1:], row[1:], strict=True):
                if value is not None:
                    got[name.removeprefix(prefix)] = value
    return out


def test_quarantine_panel_shows_each_gateways_counts_by_reason(farms: Farms) -> None:
    series = _run_panel(farms, "data-quality.json", "Quarantined by reason")
    expected = {gw: {k.removeprefix("rejected."): v for k, v in counters.items()
                     if k.startswith("rejected.")} for gw, counters in farms.counters.items()}
    assert all(expected.values()), "the simulated faults produced no rejection"
    assert _totals(series, "last_rejected_") == expected


def test_write_errors_panel_shows_refused_writes_and_points(farms: Farms) -> None:
    errors = _totals(_run_panel(farms, "gateway.json", "Write errors"), "last_")
    rejected = _totals(_run_panel(farms, "gateway.json", "Write errors", "B"), "last_")
    for gw, counters in farms.counters.items():
        # one refused connection; the ancient uplink's reading and device points refused
        # (bad_data, batches split until each stood alone) and quarantined
        assert errors[gw]["sink_influxdb_write_errors_network"] == 1
        # every failure class is there from the start, 0 until it counts something
        assert errors[gw] == {f"sink_influxdb_write_errors_{c}": 0 for c in FailureClass} | {
            k.replace(".", "_"): v for k, v in counters.items() if ".write_errors." in k}
        assert errors[gw]["sink_influxdb_write_errors_bad_data"] >= 1
        assert rejected[gw] == {"sink_influxdb_rejected_points": 2}


def test_packet_loss_comes_from_sequence_gaps(farms: Farms) -> None:
    series = _run_panel(farms, "device-health.json", "Packet loss")
    assert max(v for s in series for row in s["values"] for v in row[1:] if v is not None) > 0


def test_plot_detail_shows_both_depths(farms: Farms) -> None:
    series = _run_panel(farms, "plot-detail.json", "Soil moisture by depth")
    assert {s["tags"]["sensor"] for s in series} == {"soil_10cm", "soil_30cm"}
