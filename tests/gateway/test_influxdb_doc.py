"""docs/influxdb.md stays true: every dashboard query in it runs on a real InfluxDB 1.x
against data the sink wrote, and returns data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from outbox_data import T0, make_records, sink, v1_config
from servers.influx import InfluxDB1

from gateway.store.sqlite import Store

DOC = Path(__file__).resolve().parents[2] / "docs" / "influxdb.md"
QUERIES = re.findall(r"```sql\n(.*?)\n```", DOC.read_text(), re.S)
GRAFANA = {"$timeFilter": "time >= now() - 2d", "$__interval": "10m", "$site": "farm",
           "$node": "n1"}


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    tmp = tmp_path_factory.mktemp("doc")
    db = InfluxDB1(tmp / "influx").start()
    db.create_database("farm")
    store = Store(tmp / "s.db")
    records = make_records(120, device={"battery_v": 3.6, "rssi_dbm": -99.0, "snr_db": 7.5,
                                        "seq": 1.0, "packet_loss_pct": 2.0})
    for i, r in enumerate(records):
        r.readings["main"]["rain_mm"] = 0.2 * (i % 3)
    store.write_batch(records, counters={"received.packets": 120})
    for minutes_ago in (30, 0):  # two gateway points, in different intervals
        s = sink(store.path, v1_config(db, "farm"),
                 clock_ns=lambda m=minutes_ago: T0 + 3 * 3600 * 10**9 - m * 60 * 10**9)
        s.flush_once()
        s.write_self_metrics()
        s.stop()
    yield db
    db.stop()


def test_the_doc_has_the_dashboard_queries() -> None:
    assert len(QUERIES) >= 10


@pytest.mark.parametrize("query", QUERIES, ids=[q[:50] for q in QUERIES])
def test_dashboard_query_runs_and_returns_data(populated: InfluxDB1, query: str) -> None:
    for macro, value in GRAFANA.items():
        query = query.replace(macro, value)
    series = populated.series(query, "farm")
    assert series, f"no data for {query}"
    assert any(v is not None for s in series for row in s["values"] for v in row[1:])
