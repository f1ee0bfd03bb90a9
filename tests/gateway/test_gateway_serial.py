"""The whole gateway on a real pty serial line: frames in, rows in a real SQLite file out."""

from __future__ import annotations

import math
import time
from pathlib import Path

from helpers import wait_for

from firmware_bridge.frame import encode_frame
from gateway.app import Gateway
from gateway.config import load_settings
from gateway.sources.pty_link import PtyLink
from gateway.store import Store

T0 = 1_790_000_000


def frame(node: int, seq: int, *, moisture: float = 30.0, ts: float | None = None,
          temperature: float = 20.0) -> bytes:
    return encode_frame(node, seq, {
        ("temperature_c", "main"): temperature,
        ("humidity_pct", "main"): 65.0,
        ("soil_moisture_pct", "soil_10cm"): moisture,
        ("soil_moisture_pct", "soil_30cm"): moisture + 5,
    }, battery_v=3.7, node_time_s=ts)


def stored(gw: Gateway) -> int:
    return gw.pipeline.totals.get("stored", 0)


def test_multi_node_stream_arrives_complete_and_in_order(tmp_path: Path, write_config) -> None:
    link = PtyLink(tmp_path / "ttyRADIO")
    gw = Gateway(load_settings(write_config(str(link.path))))
    gw.start()
    try:
        wait_for(lambda: gw.sources[0].connected, what="serial port open")
        nodes, per_node = 6, 150
        for seq in range(per_node):
            link.write(b"".join(frame(n, seq, moisture=20 + seq / 10) for n in range(1, nodes + 1)))
        wait_for(lambda: stored(gw) == nodes * per_node, what="all frames stored")
    finally:
        gw.stop()
        link.close()
    store = Store(tmp_path / "data" / "satoyama.db", readonly=True)
    for n in range(1, nodes + 1):
        seqs = [s for (s,) in store.execute("SELECT seq FROM packet WHERE node=? ORDER BY id",
                                            (f"n{n}",))]
        assert seqs == list(range(per_node))
    assert store.count("reading") == nodes * per_node * 3  # main, soil_10cm, soil_30cm
    row = store.execute("SELECT site, plot, sensor, soil_moisture_pct FROM reading "
                        "WHERE node='n3' AND sensor='soil_30cm' ORDER BY id DESC LIMIT 1")
    assert row == [("testfarm", "unassigned", "soil_30cm", 20 + 149 / 10 + 5)]
    assert store.counters()["stored"] == nodes * per_node
    assert store.count("quarantine") == 0


def test_each_fault_is_quarantined_with_its_reason(tmp_path: Path, write_config) -> None:
    link = PtyLink(tmp_path / "ttyRADIO")
    cfg = write_config(str(link.path), validation={"skew_policy": "quarantine",
                                                   "max_clock_skew_s": 600})
    gw = Gateway(load_settings(cfg))
    now = time.time()
    good = [frame(1, s, ts=now) for s in range(6)]
    bad_crc = bytearray(frame(2, 1))
    bad_crc[-4] ^= 0xFF
    stream = b"".join([
        good[0],
        b"NOISE\x00\xff" * 3,                               # garbage between frames
        good[1],
        bytes(bad_crc),                                      # bad CRC
        frame(2, 2)[:-7],                                    # truncated, cut by the next frame
        good[2],
        frame(3, 1, moisture=150.0),                         # out of range (soil 10cm, 30cm)
        frame(3, 2, temperature=math.nan),                   # sensor fault sentinel
        good[3], good[3],                                    # duplicate
        frame(4, 1, ts=now - 5 * 3600),                      # node clock 5 h behind
        good[4], good[5],
    ])
    gw.start()
    try:
        wait_for(lambda: gw.sources[0].connected, what="serial port open")
        link.write(stream)
        wait_for(lambda: stored(gw) >= 7, what="good frames stored")
        time.sleep(0.3)
    finally:
        gw.stop()
        link.close()
    store = Store(tmp_path / "data" / "satoyama.db", readonly=True)
    reasons = store.quarantine_counts()
    assert reasons == {"garbage": 1, "bad_crc": 1, "truncated": 1, "out_of_range": 1,
                       "sensor_fault": 1, "clock_skew": 1}
    counters = store.counters()
    assert counters["duplicates"] == 1
    assert {k: v for k, v in counters.items() if k.startswith("rejected.")} == {
        f"rejected.{k}": v for k, v in reasons.items()}
    # Good frames all stored once; a packet with bad readings keeps its valid ones.
    assert store.execute("SELECT seq FROM packet WHERE node='n1' ORDER BY seq") == [
        (s,) for s in range(6)]
    assert store.execute(
        "SELECT p.seq, r.sensor, r.temperature_c IS NOT NULL, r.humidity_pct IS NOT NULL"
        " FROM reading r JOIN packet p ON p.id = r.packet_id WHERE r.node='n3'"
        " ORDER BY p.seq, r.sensor") == [
        (1, "main", 1, 1),            # soil readings at 150 % and 155 % dropped
        (2, "main", 0, 1),            # temperature sentinel dropped, humidity kept
        (2, "soil_10cm", 0, 0),
        (2, "soil_30cm", 0, 0),
    ]
    assert "soil_moisture_pct=150 outside [0, 100] (soil_10cm)" in (
        store.quarantine(reason="out_of_range")[0]["detail"])
    garbage = store.quarantine(reason="garbage")[0]
    assert garbage["raw"] == b"NOISE\x00\xff" * 3
    # Nothing silent: every packet decoded is stored, a duplicate, or rejected whole.
    whole = reasons["clock_skew"]
    assert counters["received.packets"] == counters["stored"] + counters["duplicates"] + whole


def test_serial_device_vanishing_and_returning_resumes_ingest(tmp_path: Path,
                                                               write_config) -> None:
    link = PtyLink(tmp_path / "ttyRADIO")
    gw = Gateway(load_settings(write_config(str(link.path))))
    gw.start()
    try:
        wait_for(lambda: gw.sources[0].connected, what="serial port open")
        link.write(b"".join(frame(1, s) for s in range(20)))
        wait_for(lambda: stored(gw) == 20, what="frames before unplug")
        link.unplug()
        wait_for(lambda: not gw.sources[0].connected, what="disconnect noticed")
        time.sleep(0.3)  # a few failed reopen attempts
        link.plug()
        wait_for(lambda: gw.sources[0].connected, what="reconnect")
        link.write(b"".join(frame(1, s) for s in range(20, 40)))
        wait_for(lambda: stored(gw) == 40, what="frames after replug")
    finally:
        gw.stop()
        link.close()
    counters = Store(tmp_path / "data" / "satoyama.db", readonly=True).counters()
    assert counters["source.disconnected"] >= 1
    assert counters["source.connected"] >= 2
