"""The MQTT source's packet reader over a real socket pair, with paho's own reader behind it.

The source parses complete QoS 1 PUBLISH packets straight from its 64 KiB read buffer and
leaves everything else to paho (other packet types, a packet cut by the end of a read, a
malformed one). Here a byte stream of PUBLISH packets mixed with PINGRESPs arrives in
pieces split at awkward places, and every message must come out once, in order, with its
topic, packet id and payload.
"""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt
import pytest

from gateway.sources.mqtt import _Client


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, mid: int, payload: bytes, *, props: bytes = b"",
            flags: int = 0) -> bytes:
    body = (len(topic.encode()).to_bytes(2, "big") + topic.encode() + mid.to_bytes(2, "big")
            + _varint(len(props)) + props + payload)
    return bytes([0x32 | flags]) + _varint(len(body)) + body


PINGRESP = bytes([0xD0, 0x00])


def _stream() -> tuple[bytes, list[tuple[str, int, bytes]]]:
    expected = []
    data = bytearray()
    for i in range(1, 400):
        payload = b'{"node":"n%d","seq":%d}' % (i % 7, i) + b"x" * (i * 37 % 300)
        topic = f"satoyama/s/n{i % 7}/up"
        props = b"\x01\x01" if i % 5 == 0 else b""  # a payload-format property now and then
        data += publish(topic, i, payload, props=props, flags=0x08 if i % 11 == 0 else 0)
        expected.append((topic, i, payload))
        if i % 50 == 0:
            data += PINGRESP
    return bytes(data), expected


@pytest.mark.parametrize("piece", [1, 7, 64, 333, 4096, 100_000])
def test_every_publish_comes_out_once_in_order_however_the_stream_is_cut(piece: int) -> None:
    data, expected = _stream()
    got: list[tuple[str, int, bytes]] = []
    client = _Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5,
                     manual_ack=True)
    client.on_qos1_publish = lambda topic, payload, qos, mid: got.append((topic, mid, payload))
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours
    try:
        for start in range(0, len(data), piece):
            theirs.sendall(data[start:start + piece])
            assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
    finally:
        ours.close()
        theirs.close()
    assert got == expected
    assert all(type(payload) is bytes for _, _, payload in got)
