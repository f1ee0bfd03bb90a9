"""The ceiling of benchmarks/mqtt_influx.py: a bare paho subscriber that only counts (not a test).

    .venv/bin/python benchmarks/bare_subscriber.py --port P --topic 'satoyama/bench/+/up' \
        --count N [--timeout S]

Its own process, as the gateway is: in the bench's process it would share the interpreter
lock with the code that feeds the publishers, and the ceiling would be the subscriber
slowed down by the bench. Stock paho-mqtt 2.x (MQTT 3.1.1, QoS 1 subscription, paho's
automatic acknowledgement), ``on_message`` only counts. Prints ``subscribed`` once the
subscription is granted, then, after ``--count`` messages (or ``--timeout`` seconds), one
JSON line: ``got``, ``first`` and ``last`` (``time.monotonic()`` of the first and the last
message: the same clock as the bench's on Linux) and ``cpu_per_msg`` (seconds of the
network thread's own CPU per message, from its first message to its last).
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import paho.mqtt.client as mqtt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    got = 0
    first = last = cpu_first = cpu_last = 0.0
    subscribed, done = threading.Event(), threading.Event()

    def on_subscribe(*_args: object) -> None:
        subscribed.set()

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        nonlocal got, first, last, cpu_first, cpu_last
        got += 1
        last = time.monotonic()
        cpu_last = time.thread_time()  # the network thread's own CPU
        if got == 1:
            first, cpu_first = last, cpu_last
        if got >= args.count:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare")
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", args.port)
    client.subscribe(args.topic, qos=1)
    client.loop_start()
    if not subscribed.wait(30):
        raise SystemExit("bare subscriber: no SUBACK within 30 s")
    print("subscribed", flush=True)
    done.wait(args.timeout)
    client.loop_stop()
    client.disconnect()
    print(json.dumps({"got": got, "first": first, "last": last,
                      "cpu_per_msg": (cpu_last - cpu_first) / max(1, got - 1)}), flush=True)


if __name__ == "__main__":
    main()
