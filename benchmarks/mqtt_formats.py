"""MQTT payload decoding cost per message, by format (not a test).

    .venv/bin/python benchmarks/mqtt_formats.py [--messages N]

Decodes the same few messages N times through ``gateway.sources.mqtt_formats.message_decoder``
as the gateway builds it, and prints microseconds per message: the native uplink with
native subscriptions only (one direct call, the hot path) and with native plus third-party
subscriptions (format looked up by topic, cached), then a The Things Stack uplink with its
decoded_payload and with a byte codec, a ChirpStack ``up`` event and an rtl_433 event.
Pure CPU, one thread: the figures are what decoding adds to the ingest pipeline.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from gateway.sources.mqtt_formats import message_decoder

NATIVE = json.dumps({
    "node": "n17", "seq": 4211, "ts": "2026-07-01T04:10:00Z",
    "readings": {"temperature_c": 24.1, "humidity_pct": 71.0, "soil_moisture_pct@10cm": 28.4},
    "battery_v": 3.62, "rssi_dbm": -97, "snr_db": 6.5}).encode()
TTS_UPLINK = {
    "end_device_ids": {"device_id": "eui-1000000000000001", "dev_eui": "1000000000000001",
                       "application_ids": {"application_id": "soil"}},
    "received_at": "2026-07-01T04:10:00.848446463Z",
    "uplink_message": {"f_port": 85, "f_cnt": 10335, "frm_payload": "AXVkA2cZAQRocwV/8AA=",
                       "rx_metadata": [{"gateway_ids": {"gateway_id": "gw-1"}, "rssi": -35,
                                        "snr": 13.2, "time": "2026-07-01T04:10:00.6Z"}],
                       "received_at": "2026-07-01T04:10:00.641841782Z"}}
TTS_DECODED = json.dumps({**TTS_UPLINK, "uplink_message": {
    **TTS_UPLINK["uplink_message"],  # type: ignore[dict-item]
    "decoded_payload": {"battery": 100, "temperature": 28.1, "moisture": 57.5,
                        "conductivity": 240}}}).encode()
TTS_BYTES = json.dumps(TTS_UPLINK).encode()
CHIRPSTACK = json.dumps({
    "deduplicationId": "3ac7e3c4", "time": "2026-07-01T04:10:00.775023242+00:00",
    "deviceInfo": {"devEui": "70b3d57ba0003bb8", "deviceName": "PM-15288"},
    "fCnt": 20, "fPort": 1, "data": "AgtQAAMJAYqMCUOKmAknipILPIqlDJyKjBHgiqUAAAAAAAAAAAs7",
    "rxInfo": [{"gatewayId": "fcc23dfffe2e72ed", "rssi": -106, "snr": 3.0}]}).encode()
RTL433 = (b'{"time" : "2026-11-23 09:11:36", "model" : "Fineoffset-WH51", "id" : "006b58", '
          b'"battery_ok" : 0.778, "battery_mV" : 1400, "moisture" : 36, "boost" : 3, '
          b'"ad_raw" : 210, "mic" : "CRC"}')
MIXED = [("satoyama/+/+/up", "native", None), ("v3/+/devices/+/up", "ttn", None),
         ("v3codec/+/devices/+/up", "ttn", "milesight-em500-smtc"),
         ("application/+/device/+/event/+", "chirpstack", "decentlab-dl-smtp"),
         ("rtl_433/+/events", "rtl433", None)]


def per_message_us(decode: Callable[[str, bytes], list[object]], topic: str, body: bytes,
                   n: int) -> float:
    for _ in range(1000):  # warm the caches
        decode(topic, body)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            decode(topic, body)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    n = parser.parse_args().messages
    native_only = message_decoder("native", default_site="farm",
                                  topics=[("satoyama/+/+/up", "native", None)])
    mixed = message_decoder("native", default_site="farm", topics=MIXED)
    rows = [
        ("native, native subscriptions only", native_only, "satoyama/hill/n17/up", NATIVE),
        ("native, with third-party subscriptions", mixed, "satoyama/hill/n17/up", NATIVE),
        ("ttn, decoded_payload", mixed, "v3/soil@ttn/devices/eui-1/up", TTS_DECODED),
        ("ttn, EM500-SMTC codec", mixed, "v3codec/soil@ttn/devices/eui-1/up", TTS_BYTES),
        ("chirpstack up, DL-SMTP codec", mixed, "application/1/device/70b3/event/up",
         CHIRPSTACK),
        ("rtl433 event", mixed, "rtl_433/pi/events", RTL433),
    ]
    print(f"MQTT payload decoding, {n} messages each, best of 3")
    for name, decode, topic, body in rows:
        (result,) = decode(topic, body)
        assert type(result).__name__ == "Packet", (name, result)
        print(f"  {name:42s} {per_message_us(decode, topic, body, n):6.1f} µs/message")


if __name__ == "__main__":
    main()
