"""Validation: a pure function from a decoded packet to a record and rejections.

Checks, in order: per-node authentication (HMAC, when the device registry holds a key),
finite values, calibration, plausible ranges from the sensor catalogue, and time (node clock
skew against a trusted gateway clock; held time while the gateway clock is untrusted).
A bad reading is rejected on its own and the rest of the packet is kept: one broken probe
should not blank a node. Nothing here reads a clock: ``received_ns`` comes in.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, field
from typing import Final, Literal

from firmware_bridge.auth import verify
from gateway.catalogue import BY_NAME, check_range
from gateway.derive import derive
from gateway.float_text import float_repr
from gateway.packet import Packet, Record, Rejection

SkewPolicy = Literal["receive_time", "quarantine"]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What validation needs from the device registry for one node."""

    site: str
    plot: str
    calibration: dict[str, tuple[float, float]] = field(default_factory=dict)  # q -> scale, offset
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    default_site: str
    max_clock_skew_s: float = 300.0
    skew_policy: SkewPolicy = "receive_time"
    # Sources whose messages can wait in a queue before they reach us (an MQTT broker's
    # session while the gateway is down): a node time up to max_delivery_delay_s in the
    # past is then the message's own time, not a skewed clock. A radio on the serial line
    # hears a packet as it is sent: there a past time is a wrong clock.
    queued_sources: frozenset[str] = frozenset()
    max_delivery_delay_s: float = 0.0


@dataclass(slots=True)
class Outcome:
    record: Record | None
    rejections: list[Rejection]
    flags: dict[str, int] = field(default_factory=dict)  # counters for accepted-but-noted


def packet_digest(packet: Packet) -> bytes:
    """Identity of an uplink for dedup: node, seq, node time, readings, battery.

    Radio fields (RSSI, SNR) are left out: two gateways, or two receptions, of the same
    uplink differ there and are still the same uplink.
    """
    # One update of the concatenation hashes what the field-by-field updates of earlier
    # versions hashed (stored digests stay valid: test_digest_is_the_same_across_versions).
    # The values' repr (float_repr remembers those of floats: sensor values repeat).
    text = "".join([f"{quantity}@{sensor}="
                    f"{float_repr(value) if type(value) is float else repr(value)};"
                    for (quantity, sensor), value in sorted(packet.readings.items())])
    battery_v = packet.battery_v
    if battery_v is not None:
        written = float_repr(battery_v) if type(battery_v) is float else repr(battery_v)
        text += f"battery_v={written}"
    seq_time = struct.pack("<qq", -1 if packet.seq is None else packet.seq,
                           -1 if packet.node_time_ns is None else packet.node_time_ns)
    try:
        data = packet.node.encode() + seq_time + text.encode()
    except UnicodeEncodeError:  # a lone surrogate: validation refuses it, but not here
        data = (packet.node.encode("utf-8", "surrogatepass") + seq_time
                + text.encode("utf-8", "surrogatepass"))
    if packet.node_time_ns is None and packet.seq is None:
        # No identity of its own: two identical readings are still two readings.
        data += packet.raw
    return hashlib.blake2b(data, digest_size=16).digest()


# name -> (minimum, maximum), for the range check inlined in the per-reading loop.
_RANGES: Final[dict[str, tuple[float, float]]] = {
    name: (q.minimum, q.maximum) for name, q in BY_NAME.items()
}
_DEVICE_FIELDS: Final = ("battery_v", "rssi_dbm", "snr_db")


def is_text(value: str) -> bool:
    """Whether ``value`` can be stored and sent: no lone surrogate (JSON's ``"\\ud800"``
    decodes to one, and SQLite, UTF-8 and line protocol cannot carry it)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reject(packet: Packet, reason: str, detail: str) -> Rejection:
    return Rejection(reason, detail, packet.raw, packet.format, packet.node, packet.seq,
                     packet.topic)


def validate(
    packet: Packet,
    received_ns: int,
    source: str,
    policy: Policy,
    device: DeviceInfo | None,
    clock_trusted: bool,
    replay: bool = False,
) -> Outcome:
    if device is not None and device.key is not None:
        if packet.auth_tag is None:
            return Outcome(None, [_reject(packet, "auth_missing",
                                          "node has a key; frame has no tag")])
        if not verify(packet, device.key):
            return Outcome(None, [_reject(packet, "auth_failed",
                                          "HMAC tag does not match the node key")])

    site = packet.site
    if not (packet.node.isascii() or is_text(packet.node)) or (
            site is not None and not (site.isascii() or is_text(site))):
        return Outcome(None, [_reject(packet, "bad_text", "node or site name is not valid "
                                      f"Unicode text: {packet.node!a}, "
                                      f"{packet.site!a}")])

    flags: dict[str, int] = {}

    # ---- time
    if packet.node_time_ns is not None:
        skew_s = (packet.node_time_ns - received_ns) / 1e9
        if replay or not clock_trusted or abs(skew_s) <= policy.max_clock_skew_s:
            time_ns, time_source = packet.node_time_ns, "node"
        elif (skew_s < 0 and -skew_s <= policy.max_delivery_delay_s
              and source in policy.queued_sources):
            time_ns, time_source = packet.node_time_ns, "node"
            flags["flagged.delivered_late"] = 1
        else:
            if policy.skew_policy == "quarantine":
                detail = (f"node clock {skew_s:+.0f} s from the gateway clock "
                          f"(limit {policy.max_clock_skew_s:g} s)")
                return Outcome(None, [_reject(packet, "clock_skew", detail)])
            time_ns, time_source = received_ns, "gateway"
            flags["flagged.clock_skew_corrected"] = 1
    elif replay:
        time_ns, time_source = received_ns, "replay"
    elif clock_trusted:
        time_ns, time_source = received_ns, "gateway"
    else:
        time_ns, time_source = received_ns, "held"
        flags["flagged.time_held"] = 1

    # ---- readings (the range test first: it passes for almost every value, and it fails
    # for NaN and infinities too, which are then told apart from a merely implausible value)
    readings: dict[str, dict[str, float]] = {}
    bad: list[str] = []
    bad_reason = ""
    cal = device.calibration if device else None
    for (quantity, sensor), value in packet.readings.items():
        if not sensor.isascii() and not is_text(sensor):
            bad.append(f"{quantity}@{sensor!a}: sensor tag is not valid Unicode text")
            bad_reason = bad_reason or "bad_text"
            continue
        limits = _RANGES.get(quantity)
        if limits is None:
            bad.append(f"{quantity}: not in the sensor catalogue")
            bad_reason = bad_reason or "unknown_quantity"
            continue
        checked = value
        if cal and quantity in cal:
            scale, offset = cal[quantity]
            checked = value * scale + offset
        if limits[0] <= checked <= limits[1]:
            values = readings.get(sensor)
            if values is None:
                readings[sensor] = {quantity: checked}
            else:
                values[quantity] = checked
        elif not math.isfinite(value):
            bad.append(f"{quantity}@{sensor}: sensor fault ({value})")
            bad_reason = bad_reason or "sensor_fault"
        else:
            bad.append(f"{check_range(quantity, checked)}"
                       + ("" if sensor == "main" else f" ({sensor})"))
            bad_reason = bad_reason or "out_of_range"

    device_fields: dict[str, float] = {}
    for name, maybe in zip(_DEVICE_FIELDS, (packet.battery_v, packet.rssi_dbm, packet.snr_db),
                           strict=True):
        if maybe is None:
            continue
        value = maybe
        lo, hi = _RANGES[name]
        if lo <= value <= hi:
            device_fields[name] = value
        elif not math.isfinite(value):
            bad.append(f"{name}: sensor fault ({value})")
            bad_reason = bad_reason or "sensor_fault"
        else:
            bad.append(str(check_range(name, value)))
            bad_reason = bad_reason or "out_of_range"
    if packet.seq is not None:
        device_fields["seq"] = float(packet.seq)

    rejections: list[Rejection] = []
    if bad:
        rejections.append(_reject(packet, bad_reason, "; ".join(bad)))
    if not readings and "battery_v" not in device_fields:
        if not bad:
            rejections.append(_reject(packet, "empty", "no readings in the packet" + (
                f"; fields not mapped: {', '.join(packet.unknown_fields)}"[:300]
                if packet.unknown_fields else "")))
        return Outcome(None, rejections, {})

    for values in readings.values():
        if "temperature_c" in values and "humidity_pct" in values:
            values.update(derive(values))

    record = Record(  # positional: in Record's field order (cheaper than keywords)
        time_ns,
        received_ns,
        (device.site if device else None) or packet.site or policy.default_site,
        device.plot if device else "unassigned",
        packet.node,
        packet.seq,
        packet_digest(packet),
        source,
        packet.format,
        time_source,
        readings,
        device_fields,
    )
    return Outcome(record, rejections, flags)
