"""The InfluxDB sink in its own process (``sinks.influxdb.separate_process``), end to end.

A real `satoyama run` reads MQTT uplinks from a real Mosquitto and its sink process writes
them to a real InfluxDB 1.x. The sink process is killed (the gateway starts another), the
gateway is killed with SIGKILL (its sink process must not outlive it), and the gateway is
stopped cleanly (the sink process ends too): every reading is in InfluxDB exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from helpers import counter, start_gateway, wait_for
from servers.influx import InfluxDB1
from servers.mosquitto import Mosquitto
from servers.mqtt_publisher import Publisher, publish_uplinks


def sink_processes(gateway_pid: int) -> list[int]:
    """Child processes of the gateway that run gateway.sinks.process.

    Threads and children come and go while we look (a killed sink exits, the gateway
    starts another): one that vanished between listing and reading is simply not there.
    """
    pids = []
    for task in Path(f"/proc/{gateway_pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in children:
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError):
                continue
            if b"gateway.sinks.process" in cmd:
                pids.append(int(child))
    return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def points(influx: InfluxDB1) -> int:
    return influx.count("SELECT count(temperature_c) FROM reading", "satoyama")


def test_sink_process_survives_kills_and_stores_every_reading_once(
    tmp_path: Path, write_config
) -> None:
    n = 3000
    broker = Mosquitto(tmp_path / "broker").start()
    influx = InfluxDB1(tmp_path / "influx").start()
    influx.create_database("satoyama")
    config = write_config(
        site="hill", sources={"mqtt": {"url": broker.url}}, gateway_id="gw-sinkproc",
        sinks={"influxdb": {"url": influx.url, "api": "v1", "database": "satoyama",
                            "flush_interval_s": 0.2, "separate_process": True}},
    )
    db = tmp_path / "data" / "satoyama.db"
    log = tmp_path / "gateway.log"
    proc = start_gateway(config, log)
    try:
        wait_for(lambda: counter(db, "source.connected") >= 1, 20, "gateway subscribed")
        wait_for(lambda: len(sink_processes(proc.pid)) == 1, 10, "one sink process")
        with Publisher(broker.url) as pub:
            publish_uplinks(pub, 0, 1000)
            pub.finish(30)
            wait_for(lambda: points(influx) >= 1000, 30, "the first thousand in InfluxDB")

            first = sink_processes(proc.pid)[0]
            os.kill(first, signal.SIGKILL)  # the gateway starts another one
            streamer = threading.Thread(target=publish_uplinks, args=(pub, 1000, 2000))
            streamer.start()
            wait_for(lambda: sink_processes(proc.pid) not in ([], [first]), 15,
                     "a new sink process")
            wait_for(lambda: points(influx) >= 1500, 30, "the new sink process writes")

            orphan = sink_processes(proc.pid)[0]
            proc.send_signal(signal.SIGKILL)  # its sink process must not outlive it
            proc.wait(10)
            wait_for(lambda: not alive(orphan), 10, "the orphaned sink process to end")

            proc = start_gateway(config, log)
            streamer.join(60)
            publish_uplinks(pub, 2000, n)
            pub.finish(60)
        wait_for(lambda: points(influx) >= n, 60, "every reading in InfluxDB")
        last = sink_processes(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert last and not any(alive(pid) for pid in last)
        assert points(influx) == n
        assert counter(db, "stored") == n
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.stop()
        influx.stop()
    text = log.read_text()
    assert "ended with code" in text  # the killed sink process was noticed
    assert "the gateway process is gone" in text
    assert "Traceback" not in text


def test_the_sink_process_gets_the_settings_the_gateway_validated(tmp_path: Path) -> None:
    """What the child reads of its settings, as plain data (it does not import the model),
    is what the parent's validated model holds, the token included."""
    from gateway.config.models import InfluxDBSinkConfig
    from gateway.sinks.influxdb import read_token
    from gateway.sinks.process import _ChildSettings, child_settings

    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    for cfg in (
        InfluxDBSinkConfig(url="https://influx.example:8086", org="o", bucket="b",
                           token="s3cret", batch_size=700, flush_interval_s=0.5),
        InfluxDBSinkConfig(url="http://localhost:8086", api="v1", database="farm",
                           token_file=token_file),
    ):
        plain = _ChildSettings.from_json(json.loads(json.dumps(child_settings(cfg))))
        for name in ("url", "api", "org", "bucket", "database", "token_file", "batch_size",
                     "flush_interval_s"):
            assert getattr(plain, name) == getattr(cfg, name), name
        assert read_token(plain) == read_token(cfg)  # type: ignore[arg-type]
        assert "s3cret" not in repr(plain)
