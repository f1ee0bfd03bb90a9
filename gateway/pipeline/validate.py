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
from typing import Literal

from firmware_bridge.auth import verify
from gateway.catalogue import BY_NAME, check_range
from gateway.derive import derive
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
    h = hashlib.blake2b(digest_size=16)
    h.update(packet.node.encode())
    h.update(struct.pack("<qq", -1 if packet.seq is None else packet.seq,
                         -1 if packet.node_time_ns is None else packet.node_time_ns))
    for (quantity, sensor), value in sorted(packet.readings.items()):
        h.update(f"{quantity}@{sensor}={value!r};".encode())
    if packet.battery_v is not None:
        h.update(f"battery_v={packet.battery_v!r}".encode())
    if packet.node_time_ns is None and packet.seq is None:
        # No identity of its own: two identical readings are still two readings.
        h.update(packet.raw)
    return h.digest()


def validate(
    packet: Packet,
    *,
    received_ns: int,
    source: str,
    policy: Policy,
    device: DeviceInfo | None,
    clock_trusted: bool,
    replay: bool = False,
) -> Outcome:
    def reject(reason: str, detail: str) -> Rejection:
        return Rejection(reason, detail, packet.raw, packet.format, packet.node, packet.seq)

    if device is not None and device.key is not None:
        if packet.auth_tag is None:
            return Outcome(None, [reject("auth_missing", "node has a key; frame has no tag")])
        if not verify(packet, device.key):
            return Outcome(None, [reject("auth_failed", "HMAC tag does not match the node key")])

    flags: dict[str, int] = {}
    rejections: list[Rejection] = []

    # ---- time
    if packet.node_time_ns is not None:
        skew_s = (packet.node_time_ns - received_ns) / 1e9
        if replay or not clock_trusted:
            time_ns, time_source = packet.node_time_ns, "node"
        elif abs(skew_s) > policy.max_clock_skew_s:
            detail = (f"node clock {skew_s:+.0f} s from the gateway clock "
                      f"(limit {policy.max_clock_skew_s:g} s)")
            if policy.skew_policy == "quarantine":
                return Outcome(None, [reject("clock_skew", detail)])
            time_ns, time_source = received_ns, "gateway"
            flags["flagged.clock_skew_corrected"] = 1
        else:
            time_ns, time_source = packet.node_time_ns, "node"
    elif replay:
        time_ns, time_source = received_ns, "replay"
    elif clock_trusted:
        time_ns, time_source = received_ns, "gateway"
    else:
        time_ns, time_source = received_ns, "held"
        flags["flagged.time_held"] = 1

    # ---- readings
    readings: dict[str, dict[str, float]] = {}
    bad: list[str] = []
    bad_reason = ""
    cal = device.calibration if device else {}
    for (quantity, sensor), value in packet.readings.items():
        if quantity not in BY_NAME:
            bad.append(f"{quantity}: not in the sensor catalogue")
            bad_reason = bad_reason or "unknown_quantity"
            continue
        if not math.isfinite(value):
            bad.append(f"{quantity}@{sensor}: sensor fault ({value})")
            bad_reason = bad_reason or "sensor_fault"
            continue
        if quantity in cal:
            scale, offset = cal[quantity]
            value = value * scale + offset
        violation = check_range(quantity, value)
        if violation:
            bad.append(f"{violation}" + ("" if sensor == "main" else f" ({sensor})"))
            bad_reason = bad_reason or "out_of_range"
            continue
        readings.setdefault(sensor, {})[quantity] = value

    device_fields: dict[str, float] = {}
    for name, maybe in (("battery_v", packet.battery_v), ("rssi_dbm", packet.rssi_dbm),
                        ("snr_db", packet.snr_db)):
        if maybe is None:
            continue
        value = maybe
        if not math.isfinite(value):
            bad.append(f"{name}: sensor fault ({value})")
            bad_reason = bad_reason or "sensor_fault"
        elif violation := check_range(name, value):
            bad.append(str(violation))
            bad_reason = bad_reason or "out_of_range"
        else:
            device_fields[name] = value
    if packet.seq is not None:
        device_fields["seq"] = float(packet.seq)

    if bad:
        rejections.append(reject(bad_reason, "; ".join(bad)))
    if not readings and not (packet.battery_v is not None and "battery_v" in device_fields):
        if not bad:
            rejections.append(reject("empty", "no readings in the packet"))
        return Outcome(None, rejections, {})

    for values in readings.values():
        values.update(derive(values))

    record = Record(
        time_ns=time_ns,
        received_ns=received_ns,
        site=(device.site if device else None) or packet.site or policy.default_site,
        plot=device.plot if device else "unassigned",
        node=packet.node,
        seq=packet.seq,
        digest=packet_digest(packet),
        source=source,
        format=packet.format,
        time_source=time_source,
        readings=readings,
        device=device_fields,
    )
    return Outcome(record, rejections, flags)
