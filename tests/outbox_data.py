"""Outbox contents and sink set-up shared by the InfluxDB sink tests."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from servers.influx import InfluxDB1

from gateway.config.models import InfluxDBSinkConfig
from gateway.packet import Record
from gateway.sinks.influxdb import InfluxSink
from gateway.sinks.retry import RetryPolicy

T0 = (time.time_ns() // 10**9 - 3 * 3600) * 10**9  # recent: inside every retention
_digests = itertools.count()


def make_records(n: int, *, node: str = "n1", site: str = "farm", plot: str = "east",
                 start_ns: int = T0, device: dict[str, float] | None = None) -> list[Record]:
    """n packets of one node, one second apart: 2 reading rows and 1 device row each."""
    out = []
    for i in range(n):
        t = start_ns + i * 10**9
        seq = next(_digests)
        out.append(Record(
            time_ns=t, received_ns=time.time_ns(), site=site, plot=plot, node=node, seq=seq,
            digest=f"{node}:{seq}".encode(), source="test", format="native",
            time_source="node",
            readings={"main": {"temperature_c": 20.0 + i % 10 / 4, "humidity_pct": 65.5},
                      "soil_10cm": {"soil_moisture_pct": 30.25}},
            device=dict(device) if device is not None else {
                "battery_v": 3.7, "rssi_dbm": -97.0, "seq": float(seq)},
        ))
    return out


def v1_config(db: InfluxDB1, database: str, **over: Any) -> InfluxDBSinkConfig:
    return InfluxDBSinkConfig(url=db.url, api="v1", database=database, **over)


def v2_config(url: str, **over: Any) -> InfluxDBSinkConfig:
    return InfluxDBSinkConfig(url=url, api="v2", org="satoyama", bucket="farm",
                              token="test-token", **over)


def sink(store_path: Path, cfg: InfluxDBSinkConfig, **kw: Any) -> InfluxSink:
    kw.setdefault("retry", RetryPolicy.fast())
    kw.setdefault("gateway_id", "gw-test")
    return InfluxSink(store_path, cfg, **kw)
