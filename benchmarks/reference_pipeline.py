"""The issue's reference point: a minimal, non-durable MQTT -> InfluxDB pipeline (not Satoyama).

    .venv/bin/python benchmarks/reference_pipeline.py --mqtt-port P --influx-url URL \
        --database DB [--topic 'satoyama/+/+/up']

Issue 3 quotes "a minimal non-durable Python pipeline (paho -> pydantic -> batched
`/write`)" at about 0.11 ms of CPU per message at 2,000/s on this VM. This is that
pipeline, written plainly, so `benchmarks/mqtt_influx.py` can measure it in the same run as
the gateway (the VM's speed moves from hour to hour; a ratio measured together does not):

* paho-mqtt 2.x, MQTT v5, clean session, QoS 1 subscription with paho's automatic
  acknowledgement (a message is acknowledged as soon as ``on_message`` returns);
* each body validated into a pydantic v2 model of the native uplink (DESIGN.md);
* the same points as the gateway's schema: ``reading`` (tags node, plot, sensor, site; one
  point per sensor, ``soil_moisture_pct@10cm`` -> sensor ``soil_10cm``) and ``device``;
  plot ``unassigned`` as the gateway writes for a node without a registry entry;
* a batch POSTed to InfluxDB 1.x ``/write`` (precision ns) at 5,000 points or when its
  oldest point is 1 s old, by one flush thread over one kept-alive ``http.client``
  connection.

What it leaves out, on purpose (it is the yardstick, not a design): no journal (a crash
loses the batch, and acknowledged messages with it), no dedup, no quarantine, no derived
quantities, no retry beyond one re-send on a fresh connection. Prints ``subscribed`` on
stdout once the subscription is granted; SIGTERM flushes what is batched and exits.
"""

from __future__ import annotations

import argparse
import http.client
import signal
import sys
import threading
import time
import urllib.parse

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ValidationError

BATCH_POINTS = 5000
BATCH_AGE_S = 1.0
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


class Uplink(BaseModel):
    """The native uplink (DESIGN.md "Native MQTT uplink"), as far as these nodes send it."""

    node: str
    seq: int
    ts: int | None = None  # nanoseconds since the epoch; the receive time when absent
    readings: dict[str, float]
    battery_v: float | None = None
    rssi_dbm: float | None = None


def sensor_of(key: str) -> tuple[str, str]:
    """``'soil_moisture_pct@10cm'`` -> ``('soil_moisture_pct', 'soil_10cm')``."""
    field, _, depth = key.partition("@")
    return field, f"soil_{depth}" if depth else "main"


def to_lines(site: str, up: Uplink, now_ns: int) -> list[str]:
    """One ``reading`` point per sensor and one ``device`` point."""
    ts = up.ts if up.ts is not None else now_ns
    tags = f"node={up.node.translate(_TAG_ESCAPES)},plot=unassigned,"
    site_tag = f"site={site.translate(_TAG_ESCAPES)}"
    by_sensor: dict[str, list[str]] = {}
    for key, value in up.readings.items():
        field, sensor = sensor_of(key)
        by_sensor.setdefault(sensor, []).append(f"{field}={value!r}")
    lines = [f"reading,{tags}sensor={sensor},{site_tag} {','.join(fields)} {ts}"
             for sensor, fields in by_sensor.items()]
    device = [f"seq={float(up.seq)!r}"]
    if up.battery_v is not None:
        device.append(f"battery_v={up.battery_v!r}")
    if up.rssi_dbm is not None:
        device.append(f"rssi_dbm={up.rssi_dbm!r}")
    lines.append(f"device,{tags}{site_tag} {','.join(device)} {ts}")
    return lines


class InfluxWriter:
    """POSTs line protocol to ``/write`` over one kept-alive connection."""

    def __init__(self, url: str, database: str) -> None:
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 8086
        self.path = "/write?" + urllib.parse.urlencode({"db": database, "precision": "ns"})
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def write(self, lines: list[str]) -> None:
        body = ("\n".join(lines) + "\n").encode()
        for attempt in (1, 2):  # the server may have closed the idle connection: once more
            try:
                self.conn.request("POST", self.path, body,
                                  {"Content-Type": "text/plain; charset=utf-8"})
                resp = self.conn.getresponse()
                text = resp.read()
            except (http.client.HTTPException, OSError) as exc:
                self.conn.close()
                if attempt == 2:
                    print(f"write failed, {len(lines)} points lost: {exc}", file=sys.stderr)
                continue
            if resp.status != 204:
                print(f"write refused ({resp.status}), {len(lines)} points lost: "
                      f"{text[:200]!r}", file=sys.stderr)
            return


class Batcher:
    """Points from paho's thread, written by a flush thread at a size or an age."""

    def __init__(self, writer: InfluxWriter) -> None:
        self.writer = writer
        self.lines: list[str] = []
        self.first_at = 0.0
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="flush")

    def add(self, lines: list[str]) -> None:
        with self.cond:
            if not self.lines:
                self.first_at = time.monotonic()
                self.cond.notify()  # the flush thread starts the age clock
            self.lines.extend(lines)
            if len(self.lines) >= BATCH_POINTS:
                self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stopping:
                    if len(self.lines) >= BATCH_POINTS:
                        break
                    if self.lines:
                        left = self.first_at + BATCH_AGE_S - time.monotonic()
                        if left <= 0:
                            break
                        self.cond.wait(left)
                    else:
                        self.cond.wait()
                batch, self.lines = self.lines, []
                stopping = self.stopping
            if batch:
                self.writer.write(batch)
            if stopping:
                return

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mqtt-host", default="127.0.0.1")
    ap.add_argument("--mqtt-port", type=int, default=1883)
    ap.add_argument("--topic", default="satoyama/+/+/up")
    ap.add_argument("--influx-url", default="http://127.0.0.1:8086")
    ap.add_argument("--database", default="reference")
    args = ap.parse_args()

    batcher = Batcher(InfluxWriter(args.influx_url, args.database))
    subscribed = threading.Event()
    rejected = 0

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal rejected
        try:
            up = Uplink.model_validate_json(msg.payload)
        except ValidationError:
            rejected += 1
            return
        site = msg.topic.split("/")[1]  # satoyama/<site>/<node>/up
        batcher.add(to_lines(site, up, time.time_ns()))

    def on_connect(c: mqtt.Client, _u: object, _f: object, code: ReasonCode,
                   _p: object) -> None:
        if code.is_failure:
            print(f"connection refused: {code}", file=sys.stderr)
        else:
            c.subscribe(args.topic, qos=1)  # here, so a reconnect subscribes again

    def on_subscribe(_c: mqtt.Client, _u: object, _mid: int,
                     codes: list[ReasonCode], _p: object) -> None:
        if all(not c.is_failure for c in codes):
            subscribed.set()
        else:
            print(f"subscription refused: {codes}", file=sys.stderr)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"reference-pipeline-{time.time_ns()}",
                         protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.connect(args.mqtt_host, args.mqtt_port, clean_start=True)
    batcher.thread.start()
    client.loop_start()
    if not subscribed.wait(10):
        raise SystemExit("not subscribed after 10 s")
    print("subscribed", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    client.disconnect()
    client.loop_stop()
    batcher.stop()
    if rejected:
        print(f"{rejected} payloads failed validation", file=sys.stderr)


if __name__ == "__main__":
    main()
