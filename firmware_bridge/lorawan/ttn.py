"""The Things Stack v3 (TTN, TTI) application uplink, as published on MQTT
``v3/{application id}@{tenant id}/devices/{device id}/up`` (and sent by webhooks)::

    {"end_device_ids": {"device_id": "eui-1000000000000001", "dev_eui": "1000000000000001",
                        "application_ids": {"application_id": "soil"}, ...},
     "received_at": "2023-05-19T05:33:35.848446463Z",
     "uplink_message": {"f_port": 85, "f_cnt": 10335, "frm_payload": "AXVkA2cZAQRocwV/8AA=",
                        "decoded_payload": {...},
                        "rx_metadata": [{"gateway_ids": {...}, "rssi": -35, "snr": 13.2,
                                         "time": "...", ...}],
                        "received_at": "2023-05-19T05:33:35.641841782Z", ...}}

- node: the registry's node with ``lorawan:<dev_eui>`` (lower-case), else
  ``eui-<dev_eui>``: the DevEUI is the device's identity, the TTS ``device_id`` is unique
  only within its application (two applications may both have a ``node-1``). A device
  without a DevEUI (ABP, LoRaWAN 1.0) is ``ttn:<application_id>:<device_id>``, the pair
  TTS keeps unique; a message with neither is ``schema``.
- seq: ``f_cnt`` (absent means 0: protobuf JSON leaves zero values out).
- time: ``uplink_message.received_at``, when the network server received the uplink;
  else the top-level ``received_at``. LoRaWAN end devices have no clock the server knows
  of, and ``rx_metadata[].time`` is the *gateway's* clock, often unsynchronised on
  gateways without GPS; the network server's clock is NTP-synchronised. The gateway's
  skew check applies to it like to any node time.
- rssi/snr: the gateway that heard the uplink best (highest SNR, then RSSI).
- readings: :func:`firmware_bridge.lorawan.codecs.payload_readings` (the node's own
  ``codec`` from the registry, else the topic's, on ``frm_payload``; else
  ``decoded_payload``, else ``no_codec``).
- Other TTS messages (``join_accept``, ``downlink_*``, ``location_solved``,
  ``service_data``) are ignored and counted (``ignored.not_uplink``); a message with none
  of these is ``schema``.
- An uplink whose codec reads the payload as device traffic without readings (a
  Milesight device's information or its reply to a downlink command) is ignored and
  counted (``ignored.no_readings``), not stored and not quarantined.

The topic is not needed: everything is in the body, so ``satoyama replay --format ttn``
reads one message per line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from firmware_bridge import reasons
from gateway.packet import Ignored, Packet, Rejection

from .codecs import payload_readings
from .common import (
    NODE_NAME,
    CodecError,
    best_radio,
    counter,
    dev_eui,
    get,
    node_name,
    parse_message,
    time_ns,
)

FORMAT: Final = "ttn"
_OTHER_MESSAGES: Final = (
    "join_accept", "downlink_ack", "downlink_nack", "downlink_sent", "downlink_failed",
    "downlink_queued", "downlink_queue_invalidated", "location_solved", "service_data",
)


# TTS identifiers: lower-case letters and digits, single dashes between (so never a ':').
_TTS_ID: Final = re.compile(r"^[a-z0-9](?:-?[a-z0-9])+$")


def _tts_id(value: object) -> bool:
    return isinstance(value, str) and _TTS_ID.match(value) is not None


def decode_ttn(payload: bytes | str, *, default_site: str | None = None,
               ids: Mapping[str, str] | None = None,
               codec: str | None = None,
               device_codecs: Mapping[str, str] | None = None) -> Packet | Rejection:
    raw, obj = parse_message(payload, FORMAT)
    if isinstance(obj, Rejection):
        return obj
    uplink = obj.get("uplink_message")
    if not isinstance(uplink, dict):
        other = next((k for k in _OTHER_MESSAGES if k in obj), None)
        if other is not None:
            return Ignored(reasons.NOT_UPLINK, other, raw, FORMAT)
        return Rejection(reasons.SCHEMA, "no uplink_message: not a TTS uplink", raw, FORMAT)

    eui = dev_eui(get(obj, "end_device_ids", "dev_eui"))
    if eui is not None:
        node = node_name(eui, ids or {})
    else:  # an ABP device registered without a DevEUI
        device_id = get(obj, "end_device_ids", "device_id")
        app_id = get(obj, "end_device_ids", "application_ids", "application_id")
        node = f"ttn:{app_id}:{device_id}"
        if not (_tts_id(app_id) and _tts_id(device_id) and NODE_NAME.match(node)):
            return Rejection(reasons.SCHEMA, "end_device_ids has neither a dev_eui nor a "
                             "usable application_id and device_id", raw, FORMAT)
    seq = counter(uplink.get("f_cnt"))
    if device_codecs:
        codec = device_codecs.get(node, codec)  # the device's own codec beats the topic's
    if seq is None:
        return Rejection(reasons.SCHEMA, f"f_cnt {uplink.get('f_cnt')!r} is not a frame "
                         "counter", raw, FORMAT, node)
    decoded = payload_readings(uplink.get("decoded_payload"), uplink.get("frm_payload"),
                               uplink.get("f_port"), codec)
    if isinstance(decoded, CodecError):
        return Rejection(decoded.reason, decoded.detail, raw, FORMAT, node, seq)
    if decoded.no_readings is not None and not decoded.readings and decoded.battery_v is None:
        return Ignored(reasons.NO_READINGS, decoded.no_readings, raw, FORMAT, node, seq)
    rssi, snr = best_radio(uplink.get("rx_metadata"))
    return Packet(
        node=node, seq=seq, readings=decoded.readings, format=FORMAT, raw=raw,
        node_time_ns=time_ns(uplink.get("received_at"), obj.get("received_at")),
        site=default_site, battery_v=decoded.battery_v, rssi_dbm=rssi, snr_db=snr,
        unknown_fields=tuple(decoded.unknown),
    )
