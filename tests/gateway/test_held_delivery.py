"""Readings held while the gateway clock is untrusted reach InfluxDB only once their time
is known. A Pi without an RTC boots with a stale clock: its readings are stored *held*, at
a provisional time, and re-anchored in place (same ids) once NTP has synchronised. They
used to be delivered at once, at the provisional time, which re-anchoring could no longer
correct (the ids were behind the sink's cursor): InfluxDB kept points hours off."""

from __future__ import annotations

import time
from pathlib import Path

from gateway.clock import ClockMonitor
from gateway.config.models import InfluxDBSinkConfig
from gateway.packet import Packet
from gateway.pipeline.ingest import Pipeline
from gateway.pipeline.validate import Policy
from gateway.sinks.influxdb import InfluxSink
from gateway.store.sqlite import Store
from tests.servers.influx import InfluxDB1


def test_held_readings_reach_influxdb_at_their_reanchored_time(
        tmp_path: Path, influx: InfluxDB1) -> None:
    influx.create_database("held")
    store = Store(tmp_path / "s.db")
    synced = False
    clock = ClockMonitor(require_sync=True, sync_probe=lambda: synced, recheck_s=0)
    pipeline = Pipeline(store, Policy(default_site="farm"), clock=clock)
    sink = InfluxSink(tmp_path / "s.db", InfluxDBSinkConfig(url=influx.url, api="v1",
                                                            database="held"),
                      gateway_id="gw")
    pipeline.commit_listeners.append(lambda result, _records: sink.offer(result.appended))
    behind = 3 * 3600 * 10**9  # the clock saved at the last shutdown

    def uplink(seq: int) -> Packet:
        return Packet("n1", seq, {("temperature_c", "main"): 20.0 + seq}, "native", b"x")

    pipeline.handle("serial", [uplink(1)], received_ns=time.time_ns() - behind,
                    monotonic_ns=time.monotonic_ns())
    pipeline.commit()
    sink.flush_once()
    assert influx.query("SELECT count(temperature_c) FROM reading", db="held") == {
        "results": [{"statement_id": 0}]}  # nothing yet: its time is not known
    assert store.backlog("influxdb", ("reading",)) == {"reading": 1}

    synced = True
    assert pipeline.reanchor_held() == 1
    pipeline.handle("serial", [uplink(2)])
    pipeline.commit()
    sink.flush_once()
    sink.close()
    (series,) = influx.query("SELECT temperature_c FROM reading", db="held",
                             epoch="ns")["results"][0]["series"]
    stored = dict(store.execute("SELECT time_ns, temperature_c FROM reading"))
    assert {t: v for t, v in series["values"]} == stored
    assert all(abs(t - time.time_ns()) < 60 * 10**9 for t in stored)  # not 3 h behind
