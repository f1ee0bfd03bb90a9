"""ChirpStack v4 integration events, as published on MQTT
``application/{application id}/device/{dev eui}/event/{type}``, type one of up, status,
join, ack, txack, log, location, integration::

    {"deduplicationId": "...", "time": "2022-07-18T09:34:15.775023242+00:00",
     "deviceInfo": {"devEui": "0101010101010101", "deviceName": "Test device", ...},
     "fCnt": 20, "fPort": 1, "data": "qg==", "object": {...},
     "rxInfo": [{"gatewayId": "...", "rssi": -36, "snr": 10.5, "nsTime": "...", ...}], ...}

- Only ``up`` events carry readings. The event type comes from the topic's last level;
  without a topic (``satoyama replay --format chirpstack``) from the body: an event with
  ``rxInfo``, ``fCnt``, ``fPort`` or ``data`` is an ``up``.
- ``status`` events carry ``batteryLevel``, a percentage the device estimates (LoRaWAN
  DevStatusAns), and ``margin``: the catalogue stores battery volts, not percentages, so
  status events are ignored like ``join``, ``ack``, ``txack``, ``log``, ``location`` and
  ``integration`` events: acknowledged and counted (``ignored.not_uplink``), not stored
  and not quarantined.
- node: the registry's node with ``lorawan:<devEui>``, else ``eui-<devEui>``. Never
  ``deviceInfo.deviceName``: ChirpStack does not keep device names unique (not across
  applications and tenants, whose events share one broker), the DevEUI is. An ``up``
  without ``devEui`` is ``schema``.
- seq: ``fCnt`` (absent means 0). time: ``time`` (ChirpStack's time of the uplink), else
  the best gateway's ``nsTime``. rssi/snr: ``rxInfo``, best gateway.
- readings: the node's own ``codec`` from the registry, else the topic's, on ``data``;
  else ``object``, else ``no_codec``
  (:func:`firmware_bridge.lorawan.codecs.payload_readings`). An ``up`` whose codec reads
  the payload as device traffic without readings (Milesight device information, a reply
  to a downlink command) is ignored and counted (``ignored.no_readings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from firmware_bridge import reasons
from gateway.packet import Ignored, Packet, Rejection

from .codecs import payload_readings
from .common import CodecError, best_radio, counter, dev_eui, get, node_name, parse_message, time_ns

FORMAT: Final = "chirpstack"
_UP_MARKERS: Final = ("rxInfo", "fCnt", "fPort", "data")


def event_of_topic(topic: str) -> str | None:
    """``application/<id>/device/<eui>/event/<type>`` -> type; None for any other topic."""
    levels = topic.split("/")
    if len(levels) == 6 and levels[0] == "application" and levels[4] == "event":
        return levels[5]
    return None


# A key only that event type has (ChirpStack v4 integration events, events.md).
_EVENT_MARKERS: Final = (("batteryLevel", "status"), ("margin", "status"),
                         ("acknowledged", "ack"), ("downlinkId", "txack"), ("level", "log"),
                         ("location", "location"), ("integrationName", "integration"),
                         ("devAddr", "join"))


def _event_of_body(obj: dict[str, Any]) -> str | None:
    if any(k in obj for k in _UP_MARKERS):
        return "up"
    if "deviceInfo" not in obj:
        return None
    return next((event for key, event in _EVENT_MARKERS if key in obj), "unknown")


def decode_chirpstack(payload: bytes | str, *, default_site: str | None = None,
                      ids: Mapping[str, str] | None = None, codec: str | None = None,
                      device_codecs: Mapping[str, str] | None = None,
                      event: str | None = None) -> Packet | Rejection:
    raw, obj = parse_message(payload, FORMAT)
    if isinstance(obj, Rejection):
        return obj
    kind = event if event is not None else _event_of_body(obj)
    if kind is None:
        return Rejection(reasons.SCHEMA, "no deviceInfo: not a ChirpStack event", raw, FORMAT)
    if kind != "up":
        return Ignored(reasons.NOT_UPLINK, f"{kind} event", raw, FORMAT)

    eui = dev_eui(get(obj, "deviceInfo", "devEui"))
    if eui is None:
        detail = ("a ChirpStack v3 event (devEUI, applicationID): only v4 events are read"
                  if "devEUI" in obj else "deviceInfo.devEui is not 16 hex digits")
        return Rejection(reasons.SCHEMA, detail, raw, FORMAT)
    node = node_name(eui, ids or {})
    seq = counter(obj.get("fCnt"))
    if device_codecs:
        codec = device_codecs.get(node, codec)  # the device's own codec beats the topic's
    if seq is None:
        return Rejection(reasons.SCHEMA, f"fCnt {obj.get('fCnt')!r} is not a frame counter",
                         raw, FORMAT, node)
    decoded = payload_readings(obj.get("object"), obj.get("data"), obj.get("fPort"), codec)
    if isinstance(decoded, CodecError):
        return Rejection(decoded.reason, decoded.detail, raw, FORMAT, node, seq)
    if decoded.no_readings is not None and not decoded.readings and decoded.battery_v is None:
        return Ignored(reasons.NO_READINGS, decoded.no_readings, raw, FORMAT, node, seq)
    rx_info = obj.get("rxInfo")
    rssi, snr = best_radio(rx_info)
    ns_times = [gw.get("nsTime") for gw in rx_info if isinstance(gw, dict)] \
        if isinstance(rx_info, list) else []
    return Packet(
        node=node, seq=seq, readings=decoded.readings, format=FORMAT, raw=raw,
        node_time_ns=time_ns(obj.get("time"), *ns_times), site=default_site,
        battery_v=decoded.battery_v, rssi_dbm=rssi, snr_db=snr,
        unknown_fields=tuple(decoded.unknown),
    )
