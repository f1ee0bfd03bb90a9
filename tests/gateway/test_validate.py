"""Validation is a pure function: each rule of it, one case at a time."""

from __future__ import annotations

import math

import pytest

from firmware_bridge.auth import sign
from gateway.packet import Packet
from gateway.pipeline.validate import DeviceInfo, Policy, packet_digest, validate

NOW = 1_790_000_000 * 10**9
POLICY = Policy(default_site="farm", max_clock_skew_s=300)


def packet(**kw: object) -> Packet:
    base: dict[str, object] = {
        "node": "n1", "seq": 7, "format": "frame", "raw": b"raw",
        "readings": {("temperature_c", "main"): 20.0, ("humidity_pct", "main"): 60.0,
                     ("soil_moisture_pct", "soil_10cm"): 31.5},
        "battery_v": 3.6,
    }
    base.update(kw)
    return Packet(**base)  # type: ignore[arg-type]


def run(p: Packet, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {"received_ns": NOW, "source": "serial", "policy": POLICY,
                               "device": None, "clock_trusted": True}
    args.update(kw)
    return validate(p, **args)  # type: ignore[arg-type]


def test_good_packet_becomes_a_record_with_derived_values() -> None:
    out = run(packet())
    assert out.rejections == []
    rec = out.record
    assert rec is not None
    assert (rec.site, rec.plot, rec.time_ns, rec.time_source) == ("farm", "unassigned", NOW,
                                                                   "gateway")
    assert rec.readings["soil_10cm"] == {"soil_moisture_pct": 31.5}
    main = rec.readings["main"]
    assert main["dew_point_c"] == pytest.approx(12.0, abs=0.1)
    assert main["vpd_kpa"] == pytest.approx(0.935, abs=0.001)
    assert rec.device == {"battery_v": 3.6, "seq": 7.0}


@pytest.mark.parametrize(
    ("readings", "reason"),
    [
        ({("soil_moisture_pct", "soil_10cm"): 140.0}, "out_of_range"),
        ({("temperature_c", "main"): -90.0}, "out_of_range"),
        ({("temperature_c", "main"): math.nan}, "sensor_fault"),
        ({("humidity_pct", "main"): math.inf}, "sensor_fault"),
        ({("moisture_of_the_moon", "main"): 1.0}, "unknown_quantity"),
    ],
)
def test_bad_reading_is_rejected_alone(readings: dict, reason: str) -> None:
    good = {("soil_temperature_c", "soil_10cm"): 18.0}
    out = run(packet(readings={**good, **readings}))
    assert [r.reason for r in out.rejections] == [reason]
    assert out.rejections[0].raw == b"raw"
    assert out.record is not None
    assert out.record.readings == {"soil_10cm": {"soil_temperature_c": 18.0}}


def test_packet_with_nothing_valid_is_rejected_whole() -> None:
    out = run(packet(readings={("soil_moisture_pct", "main"): 150.0}, battery_v=None))
    assert out.record is None
    assert [r.reason for r in out.rejections] == ["out_of_range"]
    assert "soil_moisture_pct=150" in out.rejections[0].detail


def test_calibration_is_applied_before_the_range_check() -> None:
    dev = DeviceInfo(site="hill", plot="p3", calibration={"soil_moisture_pct": (0.5, 2.0)})
    out = run(packet(readings={("soil_moisture_pct", "soil_10cm"): 120.0}), device=dev)
    assert out.record is not None
    assert out.record.readings == {"soil_10cm": {"soil_moisture_pct": 62.0}}
    assert (out.record.site, out.record.plot) == ("hill", "p3")


def test_skewed_node_clock_follows_the_policy() -> None:
    skewed = packet(node_time_ns=NOW - 3 * 3600 * 10**9)
    out = run(skewed)
    assert out.record is not None
    assert (out.record.time_ns, out.record.time_source) == (NOW, "gateway")
    assert out.flags == {"flagged.clock_skew_corrected": 1}
    strict = Policy(default_site="farm", max_clock_skew_s=300, skew_policy="quarantine")
    out = run(skewed, policy=strict)
    assert out.record is None
    assert [r.reason for r in out.rejections] == ["clock_skew"]
    near = packet(node_time_ns=NOW - 60 * 10**9)
    rec = run(near, policy=strict).record
    assert rec is not None
    assert (rec.time_ns, rec.time_source) == (NOW - 60 * 10**9, "node")


def test_a_message_that_waited_in_the_broker_keeps_its_own_time() -> None:
    """Four LoRaWAN uplinks queued in the broker's session for two hours while the gateway
    was down: each keeps the network server's time (were they moved to the reconnect time,
    two hours of soil data would collapse onto one instant). Only for a queued source, only
    into the past, and only up to max_delivery_delay_s: a future time, a serial frame, or
    an older one is still a skewed clock."""
    policy = Policy(default_site="farm", max_clock_skew_s=300,
                    queued_sources=frozenset({"mqtt"}), max_delivery_delay_s=86400)
    for minutes in (120, 110, 100, 90):
        sent = NOW - minutes * 60 * 10**9
        out = run(packet(node_time_ns=sent), source="mqtt", policy=policy)
        assert out.record is not None
        assert (out.record.time_ns, out.record.time_source) == (sent, "node")
        assert out.flags == {"flagged.delivered_late": 1}
    for node_time, source in ((NOW - 7200 * 10**9, "serial"),  # a radio hears it live
                              (NOW + 7200 * 10**9, "mqtt"),  # ahead: a wrong clock
                              (NOW - 2 * 86400 * 10**9, "mqtt")):  # past the limit
        out = run(packet(node_time_ns=node_time), source=source, policy=policy)
        assert out.record is not None
        assert (out.record.time_ns, out.record.time_source) == (NOW, "gateway")
        assert out.flags == {"flagged.clock_skew_corrected": 1}


def test_the_gateway_treats_mqtt_as_a_queued_source() -> None:
    from gateway.app import policy
    from gateway.config.models import Settings

    p = policy(Settings(site="hill"))
    assert "mqtt" in p.queued_sources and "serial" not in p.queued_sources
    assert p.max_delivery_delay_s == 7 * 86400


def test_untrusted_gateway_clock_holds_the_time() -> None:
    out = run(packet(), clock_trusted=False)
    assert out.record is not None
    assert out.record.time_source == "held"
    assert out.flags == {"flagged.time_held": 1}


def test_replay_keeps_recorded_node_time_however_old() -> None:
    old = NOW - 90 * 86400 * 10**9
    rec = run(packet(node_time_ns=old), replay=True).record
    assert rec is not None
    assert (rec.time_ns, rec.time_source) == (old, "node")


def test_hmac_is_required_and_checked_for_nodes_with_a_key() -> None:
    key = bytes(range(16))
    dev = DeviceInfo(site="s", plot="p", key=key)
    assert [r.reason for r in run(packet(), device=dev).rejections] == ["auth_missing"]
    forged = packet(signed=b"body", auth_tag=b"\x00" * 8)
    assert [r.reason for r in run(forged, device=dev).rejections] == ["auth_failed"]
    good = packet(signed=b"body", auth_tag=sign(key, b"body"))
    assert run(good, device=dev).record is not None


def test_digest_ignores_radio_fields_but_not_content() -> None:
    a = packet(rssi_dbm=-90.0)
    assert packet_digest(a) == packet_digest(packet(rssi_dbm=-110.0, snr_db=3.0))
    assert packet_digest(a) != packet_digest(packet(seq=8))
    assert packet_digest(a) != packet_digest(packet(battery_v=3.5))


def test_one_rejection_names_every_bad_value_in_order() -> None:
    """The detail lists each refused value as received (faults before calibration), in
    packet order, readings before device fields; the first problem names the reason."""
    out = run(packet(
        readings={("temperature_c", "main"): math.nan, ("soil_moisture_pct", "soil_10cm"): math.inf,
                  ("humidity_pct", "main"): 101.0, ("soil_moisture_pct", "soil_20cm"): -1.0,
                  ("moon", "main"): 1.0},
        battery_v=math.nan, rssi_dbm=-200.0, snr_db=math.inf))
    assert out.record is None
    assert [(r.reason, r.detail) for r in out.rejections] == [(
        "sensor_fault",
        "temperature_c@main: sensor fault (nan); soil_moisture_pct@soil_10cm: sensor fault "
        "(inf); humidity_pct=101 outside [0, 100]; soil_moisture_pct=-1 outside [0, 100] "
        "(soil_20cm); moon: not in the sensor catalogue; battery_v: sensor fault (nan); "
        "rssi_dbm=-200 outside [-150, 0]; snr_db: sensor fault (inf)",
    )]


def test_calibrated_values_are_range_checked_and_the_rest_kept() -> None:
    dev = DeviceInfo(site="hill", plot="p3", calibration={
        "soil_moisture_pct": (0.5, 2.0), "temperature_c": (1e308, 1e308)})
    out = run(packet(readings={("soil_moisture_pct", "main"): 199.0,
                               ("temperature_c", "main"): 10.0, ("humidity_pct", "main"): 50.0},
                     battery_v=20.0), device=dev)
    assert [(r.reason, r.detail) for r in out.rejections] == [(
        "out_of_range",
        "soil_moisture_pct=101.5 outside [0, 100]; temperature_c=inf outside [-40, 60]; "
        "battery_v=20 outside [0, 15]",
    )]
    assert out.record is not None
    assert out.record.readings == {"main": {"humidity_pct": 50.0}}
    assert out.record.device == {"seq": 7.0}


@pytest.mark.parametrize(("kw", "digest"), [
    ({}, "a6c7a6ecc762a65f5c5ab0a0543682ca"),
    ({"seq": None, "node_time_ns": None}, "8449b1ee04335f591300afc1d2d702fc"),
    ({"battery_v": None, "node": "畑-1", "node_time_ns": 1_782_879_000_000_000_000},
     "f29918f8bc6622890232cb6526a2cdf8"),
    ({"seq": None, "node_time_ns": 5}, "a346b638b3bf507139236a8da8976d93"),
])
def test_digest_is_the_same_across_versions(kw: dict[str, object], digest: str) -> None:
    """Stores keep digests for dedup: a packet stored by an earlier version and delivered
    again (redelivered, replayed) must get the digest it got then."""
    assert packet_digest(packet(**kw)).hex() == digest


def test_names_that_are_not_unicode_text_are_refused_as_bad_text() -> None:
    """Any decoder may hand over a name with a lone surrogate: a sensor tag costs that
    reading, a node or site name the packet; the digest never raises on one."""
    out = run(packet(readings={("temperature_c", "main"): 20.0,
                               ("soil_moisture_pct", "x\ud800"): 31.5}))
    assert out.record is not None and out.record.readings == {"main": {"temperature_c": 20.0}}
    assert [(r.reason, r.detail) for r in out.rejections] == [
        ("bad_text", "soil_moisture_pct@'x\\ud800': sensor tag is not valid Unicode text")]
    for bad in ({"node": "n\udfff"}, {"site": "\ud800"}):
        out = run(packet(**bad))
        assert out.record is None and [r.reason for r in out.rejections] == ["bad_text"]
        assert len(packet_digest(packet(**bad))) == 16
    assert run(packet(node="畑-1")).record is not None  # non-ASCII text is fine
