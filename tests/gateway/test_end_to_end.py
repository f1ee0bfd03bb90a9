"""MQTT -> gateway -> InfluxDB, end to end, with the failures farm links really have.

Real Mosquitto, real InfluxDB 1.x (v1 write API, InfluxQL queries), and the gateway as its
own process (`satoyama run`). During one steady stream: InfluxDB is stopped and started
again, and the gateway is killed with SIGKILL and restarted. Every published reading must
be in InfluxDB exactly once, with the tags and fields of DESIGN.md.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from helpers import counter, start_gateway, wait_for
from servers.influx import InfluxDB1
from servers.mosquitto import Mosquitto
from servers.mqtt_publisher import Publisher, native_uplink, publish_uplinks


def test_mqtt_to_influxdb_survives_a_database_outage_and_a_gateway_kill(
    tmp_path: Path, write_config
) -> None:
    n = 6000
    broker = Mosquitto(tmp_path / "broker").start()
    influx = InfluxDB1(tmp_path / "influx").start()
    influx.create_database("satoyama")
    config = write_config(
        site="hill",
        sources={"mqtt": {"url": broker.url}},
        sinks={"influxdb": {"url": influx.url, "api": "v1", "database": "satoyama",
                            "batch_size": 500, "flush_interval_s": 0.2}},
        gateway_id="gw-e2e",
    )
    db = tmp_path / "data" / "satoyama.db"
    log = tmp_path / "gateway.log"
    readings = 'SELECT count(soil_moisture_pct) FROM reading WHERE sensor = \'soil_10cm\''
    proc = start_gateway(config, log)
    try:
        wait_for(lambda: counter(db, "source.connected") >= 1, 20, "gateway subscribed")
        with Publisher(broker.url) as pub:
            streamer = threading.Thread(target=publish_uplinks, args=(pub, 0, n))
            streamer.start()
            wait_for(lambda: influx.count(readings, "satoyama") >= 500, 30, "first points")
            influx.stop()                       # the database goes away mid-stream
            wait_for(lambda: counter(db, "stored") >= 2500, 30, "stored during the outage")
            time.sleep(1.0)
            influx.start()                      # ... and comes back
            wait_for(lambda: counter(db, "stored") >= 4000, 30, "more stored")
            proc.send_signal(signal.SIGKILL)    # the gateway dies mid-stream
            proc.wait(10)
            proc = start_gateway(config, log)
            streamer.join(60)
            pub.finish(60)
        wait_for(lambda: influx.count(readings, "satoyama") >= n, 60, "every reading in InfluxDB")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.stop()

    try:
        assert influx.count(readings, "satoyama") == n
        assert influx.count("SELECT count(temperature_c) FROM reading", "satoyama") == n
        assert influx.count("SELECT count(battery_v) FROM device", "satoyama") == n
        # Tags and fields as DESIGN.md, checked on one known uplink.
        (node, seq), _topic, _body = native_uplink(1234)
        res = influx.query(
            f"SELECT * FROM device WHERE node = '{node}' AND seq = {float(seq)}", db="satoyama")
        series = res["results"][0]["series"][0]
        row = dict(zip(series["columns"], series["values"][0], strict=True))
        assert (row["site"], row["plot"], row["node"]) == ("hill", "unassigned", node)
        assert (row["battery_v"], row["rssi_dbm"]) == (3.6, -90.0)
        tags = influx.query("SHOW TAG KEYS FROM reading", db="satoyama")
        keys = {v[0] for v in tags["results"][0]["series"][0]["values"]}
        assert keys == {"site", "plot", "node", "sensor"}
        assert counter(db, "sink.influxdb.write_errors.network") > 0, "the outage was seen"
        assert "Traceback" not in log.read_text()
    finally:
        influx.stop()


def test_replay_delivers_to_influxdb_and_keeps_what_it_could_not_send(
    tmp_path: Path, write_config
) -> None:
    import json
    import subprocess
    import sys

    influx = InfluxDB1(tmp_path / "influx").start()
    influx.create_database("satoyama")
    config = write_config(sinks={"influxdb": {"url": influx.url, "api": "v1",
                                              "database": "satoyama", "batch_size": 300}})
    capture = tmp_path / "uplinks.jsonl"
    capture.write_text("".join(native_uplink(i)[2].decode() + "\n" for i in range(1000))
                       + "not json\n")

    def replay() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway.cli", "replay", "--format",
                               "native", str(capture), "-c", str(config), "--json"],
                              capture_output=True, text=True, timeout=120)

    try:
        influx.stop()
        down = replay()
        assert down.returncode == 1
        assert "stay in the outbox" in down.stderr
        counts = json.loads(down.stdout)
        assert (counts["stored"], counts["rejected.bad_json"]) == (1000, 1)
        assert counts["influxdb.written"] == 0
        status = subprocess.run([sys.executable, "-m", "gateway.cli", "status", "-c",
                                 str(config), "--json"], capture_output=True, text=True,
                                timeout=60, check=True)
        backlog = json.loads(status.stdout)["backlog"]["influxdb"]
        assert (backlog["reading"], backlog["device"]) == (2000, 1000)
        assert backlog["oldest_age_s"] >= 0

        influx.start()
        up = replay()
        assert up.returncode == 0, up.stderr
        counts = json.loads(up.stdout)
        assert (counts.get("stored", 0), counts["duplicates"]) == (0, 1000)
        assert counts["influxdb.written"] == 3000  # the backlog: 2 reading rows + 1 device each
        assert influx.count("SELECT count(temperature_c) FROM reading", "satoyama") == 1000
    finally:
        influx.stop()
