"""The InfluxDB sink against real servers: InfluxDB 1.x (v1 /write, InfluxQL /query) and
VictoriaMetrics (v2 /api/v2/write through influxdb-client). Exact counts, not "some"."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for
from outbox_data import T0, make_records, sink, v1_config, v2_config
from servers.influx import InfluxDB1, VictoriaMetrics, free_port

from gateway.config.models import InfluxDBSinkConfig
from gateway.sinks.influxdb import FailureClass, InfluxSink, WriteError
from gateway.sinks.line_protocol import row_to_line
from gateway.store.sqlite import Store
from rules.alert import AlertEvent, AlertText


def drain(s: InfluxSink) -> None:
    while any(s.backlog().values()):
        s.flush_once()


def influx_points(db: InfluxDB1, database: str, measurement: str
                  ) -> list[tuple[tuple[tuple[str, str], ...], int, dict[str, Any]]]:
    """Every point as (sorted tags, time, non-null fields), via InfluxQL."""
    out = []
    for series in db.series(f'SELECT * FROM "{measurement}" GROUP BY *', database):
        tags = tuple(sorted(series["tags"].items()))
        cols = series["columns"]
        for values in series["values"]:
            row = dict(zip(cols, values, strict=True))
            t = row.pop("time")
            out.append((tags, t, {k: v for k, v in row.items() if v is not None}))
    return out


def stored_points(store: Store, table: str
                  ) -> list[tuple[tuple[tuple[str, str], ...], int, dict[str, Any]]]:
    """The same view of the SQLite outbox rows."""
    tag_keys = ("node", "plot", "sensor", "site") if table == "reading" else (
        "node", "plot", "site")
    out = []
    for row in store.rows_after(table, 0, 10**9):
        tags = tuple((k, row[k]) for k in tag_keys)
        fields = {k: v for k, v in row.items()
                  if v is not None and k not in (*tag_keys, "id", "packet_id", "time_ns")}
        out.append((tags, row["time_ns"], fields))
    return out


@pytest.fixture
def database(influx: InfluxDB1, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("[", "_").replace("]", "")[:60]
    influx.create_database(name)
    return name


# --------------------------------------------------------------------------- happy paths


def test_v1_writes_every_row_once_with_its_tags_and_fields(
    tmp_path: Path, influx: InfluxDB1, database: str
) -> None:
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(150, node="n1") + make_records(150, node="n2", plot="west"))
    s = sink(store.path, v1_config(influx, database, batch_size=100))
    drain(s)
    for table, n in (("reading", 600), ("device", 300)):
        got = influx_points(influx, database, table)
        assert len(got) == n
        assert sorted(got, key=repr) == sorted(stored_points(store, table), key=repr)
    device_fields = influx.series("SHOW FIELD KEYS FROM device", database)[0]["values"]
    assert dict(map(tuple, device_fields)) == {  # type: ignore[arg-type]
        "battery_v": "float", "rssi_dbm": "float", "seq": "float"}
    assert store.counters()["sink.influxdb.written"] == 900
    assert s.backlog() == {"reading": 0, "device": 0, "alert": 0}
    assert s.backlog_age_s() == 0.0
    s.stop()


def test_v2_through_influxdb_client_into_victoria_metrics(
    tmp_path: Path, vm: VictoriaMetrics
) -> None:
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(200, node="vm1"))
    s = sink(store.path, v2_config(vm.url, batch_size=64, flush_interval_s=0.05))
    s.start()
    wait_for(lambda: not any(s.backlog().values()), 10, "backlog drained")
    s.stop()
    assert not s.running

    def samples(metric: str) -> dict[tuple[tuple[str, str], ...], list[int]]:
        return {
            tuple(sorted((k, v) for k, v in e["metric"].items() if k != "__name__")):
                e["timestamps"]
            for e in vm.export(f'{metric}{{node="vm1"}}')
        }

    wait_for(lambda: sum(map(len, samples("reading_soil_moisture_pct").values())) == 200,
             10, "200 soil samples visible")
    expect_ms = [(T0 + i * 10**9) // 10**6 for i in range(200)]
    assert samples("reading_temperature_c") == {
        (("node", "vm1"), ("plot", "east"), ("sensor", "main"), ("site", "farm")): expect_ms}
    assert samples("reading_soil_moisture_pct") == {
        (("node", "vm1"), ("plot", "east"), ("sensor", "soil_10cm"), ("site", "farm")):
            expect_ms}
    assert samples("device_seq") == {
        (("node", "vm1"), ("plot", "east"), ("site", "farm")): expect_ms}
    assert Store(store.path).counters()["sink.influxdb.written"] == 600


HOSTILE = ["a,b", "a b", "a=b", 'quo"te', "back\\slash", "日本語 の 畑", "=x", "trailing "]


def test_hostile_tag_values_come_back_unchanged(
    tmp_path: Path, influx: InfluxDB1, database: str, vm: VictoriaMetrics
) -> None:
    store = Store(tmp_path / "s.db")
    for i, value in enumerate(HOSTILE):
        store.write_batch(make_records(1, node=value, site=f"site {value}", plot="p,1",
                                       start_ns=T0 + i * 10**9))
    to_influx = sink(store.path, v1_config(influx, database))
    drain(to_influx)
    to_influx.stop()
    nodes = influx.series('SHOW TAG VALUES FROM reading WITH KEY = "node"', database)
    assert sorted(v[1] for v in nodes[0]["values"]) == sorted(HOSTILE)
    sites = influx.series('SHOW TAG VALUES FROM device WITH KEY = "site"', database)
    assert sorted(v[1] for v in sites[0]["values"]) == sorted(f"site {v}" for v in HOSTILE)
    assert len(influx_points(influx, database, "reading")) == 2 * len(HOSTILE)

    to_vm = sink(store.path, v2_config(vm.url), name="vm")
    drain(to_vm)
    to_vm.stop()
    wait_for(lambda: len(vm.export('device_battery_v{plot="p,1"}')) == len(HOSTILE), 10,
             "hostile series in VictoriaMetrics")
    got = {e["metric"]["node"]: e["metric"]["site"]
           for e in vm.export('device_battery_v{plot="p,1"}')}
    assert got == {v: f"site {v}" for v in HOSTILE}


def test_self_metrics_point_carries_counters_and_backlog(
    tmp_path: Path, influx: InfluxDB1, database: str
) -> None:
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(10), counters={"received.packets": 10})
    s = sink(store.path, v1_config(influx, database, batch_size=5), gateway_id="gw-east")
    s.flush_once()  # 5 of 20 reading rows, 5 of 10 device rows
    s.write_self_metrics()
    series = influx.series("SELECT * FROM gateway GROUP BY *", database)
    assert series[0]["tags"] == {"gateway": "gw-east"}
    point = dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))
    assert point["received_packets"] == 10
    assert point["stored"] == 10
    assert point["sink_influxdb_written"] == 10
    assert (point["backlog_reading"], point["backlog_device"]) == (15, 5)
    assert 0 <= point["backlog_age_s"] < 60
    s.stop()


def _alert(node: str, summary: str, t: int) -> AlertEvent:
    return AlertEvent(
        time_ns=t, rule="soil_dry", severity="warning", state="firing", previous="pending",
        site="farm", plot="east", node=node, sensor="soil_10cm", value=12.5, since_ns=t,
        text={"en": AlertText(summary)},
    )


# A rendered YAML block scalar ends in a newline; a multi-line one holds more.
MULTILINE = {"a1": "soil is dry\n", "a2": "line one\r\nline two\n", "a3": "plain"}


def test_alert_messages_with_line_breaks_reach_victoria_metrics(
    tmp_path: Path, vm: VictoriaMetrics
) -> None:
    """VictoriaMetrics splits a body at every newline, also inside a quoted string field,
    answers 204 and drops the point: no line break may reach it."""
    store = Store(tmp_path / "s.db")
    store.rules_step("rules", {}, {}, [_alert(node, text, T0 + i * 10**9)
                                       for i, (node, text) in enumerate(MULTILINE.items())])
    s = sink(store.path, v2_config(vm.url), name="vm_alerts")
    drain(s)
    s.stop()
    wait_for(lambda: len(vm.export('alert_value{rule="soil_dry"}')) == len(MULTILINE), 10,
             "every alert point in VictoriaMetrics")
    assert sorted(e["metric"]["node"] for e in vm.export('alert_value{rule="soil_dry"}')) == [
        "a1", "a2", "a3"]
    assert Store(store.path).counters()["sink.vm_alerts.written"] == len(MULTILINE)


def test_alert_messages_with_line_breaks_arrive_as_one_line_in_influxdb(
    tmp_path: Path, influx: InfluxDB1, database: str
) -> None:
    store = Store(tmp_path / "s.db")
    store.rules_step("rules", {}, {}, [_alert(node, text, T0 + i * 10**9)
                                       for i, (node, text) in enumerate(MULTILINE.items())])
    s = sink(store.path, v1_config(influx, database))
    drain(s)
    s.stop()
    series = influx.series('SELECT message FROM alert GROUP BY node', database)
    assert {x["tags"]["node"]: x["values"][0][1] for x in series} == {
        "a1": "soil is dry", "a2": "line one line two", "a3": "plain"}


# --------------------------------------------------------------------------- failures


def test_one_refused_point_is_quarantined_and_the_rest_of_its_batch_stored(
    tmp_path: Path, influx: InfluxDB1, database: str
) -> None:
    # battery_v becomes a string field in this database: a float battery_v is refused
    # (HTTP 400 "partial write: field type conflict") while other points are written.
    status, _ = influx.write(
        database, f'device,site=farm,plot=east,node=other battery_v="oops" {T0}'.encode())
    assert status == 204
    store = Store(tmp_path / "s.db")
    records = make_records(40, device={"rssi_dbm": -90.0})
    records[17].device["battery_v"] = 3.3
    store.write_batch(records)
    s = sink(store.path, v1_config(influx, database, batch_size=1000))
    result = s.flush_once()
    assert (result.written, result.rejected) == (80 + 39, 1)
    assert s.backlog() == {"reading": 0, "device": 0, "alert": 0}

    device = [p for p in influx_points(influx, database, "device")
              if dict(p[0])["node"] == "n1"]
    assert len(device) == 39
    assert T0 + 17 * 10**9 not in {p[1] for p in device}
    assert len(influx_points(influx, database, "reading")) == 80

    [q] = store.quarantine(reason="sink_rejected")
    # the odd row has a column layout of its own: its commit inserted it in a group of its own
    [bad_row] = [r for r in store.rows_after("device", 0, 100) if r["battery_v"] is not None]
    assert bad_row["time_ns"] == T0 + 17 * 10**9
    assert q["raw"] == row_to_line("device", bad_row).encode()  # type: ignore[union-attr]
    assert "field type conflict" in q["detail"] and q["detail"].startswith("HTTP 400")
    assert (q["source"], q["format"], q["node"]) == ("sink:influxdb", "line_protocol", "n1")
    counters = store.counters()
    assert counters["sink.influxdb.rejected_points"] == 1
    assert counters["sink.influxdb.written"] == 119
    # 40 device points, halves down to the one: 1 + 2 * log2(64) requests failed at most
    assert 1 < counters["sink.influxdb.write_errors.bad_data"] <= 13
    assert "rejected.sink_rejected" not in counters  # input rejections only
    s.stop()


def test_v2_against_a_server_without_api_v2_write_keeps_everything(
    tmp_path: Path, influx: InfluxDB1, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(20))
    s = sink(store.path, v2_config(influx.url, flush_interval_s=0.05))
    with pytest.raises(WriteError) as err:
        s.flush_once()
    assert (err.value.failure, err.value.status) == (FailureClass.NOT_FOUND, 404)
    assert s.backlog() == {"reading": 40, "device": 20, "alert": 0}

    caplog.set_level(logging.ERROR, logger="gateway.sinks.influxdb")
    s.start()
    wait_for(lambda: store.counters().get("sink.influxdb.write_errors.not_found", 0) >= 3,
             10, "repeated classified failures")
    s.stop()
    assert store.backlog("influxdb") == {"reading": 40, "device": 20, "alert": 0}
    assert store.cursor("influxdb", "reading") == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("no /api/v2/write" in m and "sinks.influxdb.api: v1" in m for m in messages)
    assert "test-token" not in caplog.text


def test_missing_database_is_a_config_error_that_keeps_the_data(
    tmp_path: Path, influx: InfluxDB1, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(3))
    s = sink(store.path, v1_config(influx, "not_created"))
    with pytest.raises(WriteError) as err:
        s.flush_once()
    assert err.value.failure is FailureClass.NOT_FOUND
    assert "database not found" in err.value.message
    caplog.set_level(logging.ERROR, logger="gateway.sinks.influxdb")
    s._failed(err.value)
    assert "sinks.influxdb.database" in caplog.text and "CREATE DATABASE" in caplog.text
    assert s.backlog() == {"reading": 6, "device": 3, "alert": 0}
    s.stop()


@pytest.mark.parametrize("handoff", [False, True], ids=["from-store", "handoff"])
@pytest.mark.parametrize("server", ["influxdb1-v1", "victoria-metrics-v2"])
def test_outage_during_a_steady_stream_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, server: str, handoff: bool, record_property: Callable[[str, object], None]
) -> None:
    """The server stops for a while under a steady stream, then comes back on the same
    port and data. InfluxDB would hide a point sent twice (same series and time overwrite);
    VictoriaMetrics keeps both, so there exact sample counts prove "none twice".

    With ``handoff`` each commit is also offered to the sink, as the gateway does: before
    the outage it writes from memory, during it the bound is reached, after it the gap is
    read from the store and the sink moves back to memory once it has caught up."""
    db: InfluxDB1 | VictoriaMetrics
    if server == "influxdb1-v1":
        db = InfluxDB1(tmp_path / "server").start()
        db.create_database("farm")
        cfg = v1_config(db, "farm", batch_size=50, flush_interval_s=0.05)
    else:
        db = VictoriaMetrics(tmp_path / "server").start()
        cfg = v2_config(db.url, batch_size=50, flush_interval_s=0.05)
    store = Store(tmp_path / "s.db")
    s = sink(store.path, cfg)
    done = threading.Event()

    def produce() -> None:  # the pipeline: 10 packets every 20 ms
        i = 0
        while not done.is_set():
            result = store.write_batch(
                make_records(10, start_ns=T0 + i * 10 * 10**9, node="live"))
            if handoff:
                s.offer(result.appended)
            i += 1
            time.sleep(0.02)

    producer = threading.Thread(target=produce)
    try:
        s.start()
        producer.start()
        wait_for(lambda: store.counters().get("sink.influxdb.written", 0) > 300, 10,
                 "writing before the outage")
        db.stop()
        wait_for(lambda: store.counters().get("sink.influxdb.write_errors.network", 0) >= 3,
                 10, "failures seen during the outage")
        time.sleep(0.5)
        backlog_during = s.backlog()
        assert backlog_during["device"] > 0
        memory_before_restart = s.rows_from["memory"]
        db.start()
        time.sleep(0.5)
        done.set()
        producer.join()
        wait_for(lambda: not any(s.backlog().values()), 20, "backlog drained after restart")
        s.stop()
        packets = store.count("packet")
        counters = store.counters()
        record_property("packets", packets)
        record_property("backlog_during_outage", backlog_during)
        record_property("counters", {k: v for k, v in counters.items() if "sink" in k})
        assert counters["sink.influxdb.written"] >= 3 * packets  # re-sent batches allowed
        record_property("rows_from", s.rows_from)
        if handoff:  # both ways were taken, and memory again after the outage
            assert s.rows_from["store"] > 0
            assert s.rows_from["memory"] > memory_before_restart > 0
        else:
            assert s.rows_from["memory"] == 0
        assert "sink.influxdb.rejected_points" not in counters
        if isinstance(db, InfluxDB1):
            assert len(influx_points(db, "farm", "device")) == packets
            assert sorted(influx_points(db, "farm", "reading"), key=repr) == sorted(
                stored_points(store, "reading"), key=repr)
        else:
            vm = db
            wanted = sorted((T0 + i * 10**9) // 10**6 for i in range(packets))
            for metric in ("device_seq", "reading_temperature_c", "reading_soil_moisture_pct"):
                def stamps(metric: str = metric) -> list[int]:
                    return sorted(t for e in vm.export(f'{metric}{{node="live"}}')
                                  for t in e["timestamps"])
                wait_for(lambda m=metric: len(stamps(m)) >= packets, 10, f"{metric} visible")
                assert stamps() == wanted  # each packet's time exactly once
    finally:
        done.set()
        if producer.is_alive():
            producer.join()
        s.stop()
        db.stop()


def test_two_sinks_have_independent_cursors(
    tmp_path: Path, influx: InfluxDB1, database: str
) -> None:
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(30))
    vm_dir = tmp_path / "vm"
    down = VictoriaMetrics(vm_dir)  # not started yet: its port refuses connections
    up = sink(store.path, v1_config(influx, database, flush_interval_s=0.05), name="local")
    later = sink(store.path, v2_config(down.url, flush_interval_s=0.05), name="cloud")
    up.start()
    later.start()
    try:
        wait_for(lambda: not any(up.backlog().values()), 10, "local sink drained")
        wait_for(lambda: store.counters().get("sink.cloud.write_errors.network", 0) >= 2, 10,
                 "cloud sink failing")
        assert later.backlog() == {"reading": 60, "device": 30, "alert": 0}
        assert len(influx_points(influx, database, "device")) == 30
        down.start()
        wait_for(lambda: not any(later.backlog().values()), 10, "cloud sink caught up")
        assert later.backlog_age_s() == 0.0
        wait_for(lambda: len(down.export('device_seq{node="n1"}')) == 1, 10, "visible")
        assert len(down.export('device_seq{node="n1"}')[0]["values"]) == 30
    finally:
        up.stop()
        later.stop()
        down.stop()
    counters = store.counters()
    assert (counters["sink.local.written"], counters["sink.cloud.written"]) == (90, 90)


def test_stop_is_bounded_while_a_write_hangs(tmp_path: Path) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections into its backlog, never answers
        port = free_port()
        silent.bind(("127.0.0.1", port))
        silent.listen(16)
        store = Store(tmp_path / "s.db")
        store.write_batch(make_records(5))
        cfg = InfluxDBSinkConfig(url=f"http://127.0.0.1:{port}", api="v1", database="farm")
        s = sink(store.path, cfg, timeout_s=30.0, stop_timeout_s=0.5)
        s.start()
        time.sleep(0.3)  # the first request is now waiting for an answer
        t = time.monotonic()
        s.stop()
        assert time.monotonic() - t < 1.5
        assert store.backlog("influxdb") == {"reading": 10, "device": 5, "alert": 0}
