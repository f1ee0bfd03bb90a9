"""Simulator: deterministic traffic whose injected faults arrive with the right reason."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from firmware_bridge.frame import Deframer, is_boot
from firmware_bridge.native import decode_native
from firmware_bridge.rylr import decode_rylr_line
from firmware_bridge.simulator import FAULT_KINDS, FaultPlan, Simulator, Tally
from gateway.catalogue import check_range
from gateway.packet import Packet, Rejection

START = 1_790_812_800.0  # 2026-10-01T00:00:00Z


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    def stream(seed: int) -> bytes:
        sim = Simulator(5, seed, START, 300, "frame", FaultPlan.uniform(0.02))
        return b"".join(e.data for e in sim.run(50))

    assert stream(1) == stream(1)
    assert stream(1) != stream(2)


def test_fault_plan_rejects_impossible_probabilities() -> None:
    with pytest.raises(ValueError):
        FaultPlan(garbage=0.6, bad_crc=0.6)
    with pytest.raises(ValueError):
        FaultPlan(duplicate=-0.1)


def _decode_frames(sim: Simulator, rounds: int) -> tuple[list, list]:  # type: ignore[type-arg]
    emissions = list(sim.run(rounds))
    d = Deframer()
    results: list[Packet | Rejection] = []
    for e in emissions:
        results += d.feed(e.data)
    return emissions, results + d.flush()


def test_frame_faults_arrive_with_the_expected_reasons() -> None:
    sim = Simulator(6, 7, START, 300, "frame", FaultPlan.uniform(0.03))
    emissions, results = _decode_frames(sim, 150)
    faults = Counter(e.fault for e in emissions if e.fault)
    assert set(faults) == set(FAULT_KINDS)  # every kind was exercised
    expected = [e.expected for e in emissions if e.expected]
    got = [r.reason for r in results if isinstance(r, Rejection)]
    assert got == expected  # same reasons, in the same order
    packets = [r for r in results if isinstance(r, Packet)]
    sent = [e for e in emissions if e.expected is None]
    assert len(packets) == len(sent)
    for e, p in zip(sent, packets, strict=True):
        assert (p.node, p.seq) == (e.node, e.seq)
        assert p.battery_v == e.battery_v
        assert p.node_time_ns == (None if e.node_time_s is None else e.node_time_s * 10**9)
        assert is_boot(p) == e.boot
        assert p.readings.keys() == e.readings.keys()
        for key, value in e.readings.items():
            assert p.readings[key] == value or (math.isnan(value) and math.isnan(p.readings[key]))
        if e.fault == "out_of_range":
            assert any(check_range(q, v) for (q, _), v in p.readings.items())
        elif e.fault is None:
            assert not any(check_range(q, v) for (q, _), v in p.readings.items())
        if e.fault == "counter_reset":
            assert p.seq == 0 and is_boot(p)
        if e.fault == "clock_skew":
            assert p.node_time_ns is not None
            assert abs(p.node_time_ns / 1e9 - e.time_s) >= 3600


@pytest.mark.parametrize("fmt", ["jsonl", "rylr", "mqtt"])
def test_line_formats_faults_arrive_with_the_expected_reasons(fmt: str) -> None:
    sim = Simulator(4, 3, START, 600, fmt, FaultPlan.uniform(0.04))  # type: ignore[arg-type]
    decode = decode_rylr_line if fmt == "rylr" else decode_native
    for e in sim.run(100):
        # an MQTT message is one JSON body: no line end
        assert e.data.endswith(b"\n") == (fmt != "mqtt")
        result = decode(e.data)
        if e.expected is None:
            assert isinstance(result, Packet), (e, result)
            assert (result.node, result.seq) == (e.node, e.seq)
            assert result.format == ("rylr" if fmt == "rylr" else "native")
        else:
            assert isinstance(result, Rejection) and result.reason == e.expected, (e, result)


def test_tally_counts_each_duplicate_pair_once_and_predicts_the_gateway() -> None:
    sim = Simulator(4, 3, START, 600, "mqtt", FaultPlan.uniform(0.04))
    tally = Tally()
    emissions = list(sim.run(100))
    for e in emissions:
        tally.add(e)
    pairs = sum(1 for e in emissions if e.fault == "duplicate") // 2
    assert tally.faults["duplicate"] == pairs > 0
    assert tally.messages == len(emissions) == 400 + pairs + tally.faults["garbage"]
    assert tally.expected["duplicates"] == pairs
    assert tally.expected["rejected.schema"] == tally.faults["bad_crc"]
    assert tally.expected["stored"] == 400 - tally.faults["bad_crc"] - tally.faults["truncated"]


def test_signed_frames_verify() -> None:
    from firmware_bridge.auth import verify

    keys = {1: b"k1" * 8, 2: b"k2" * 8}
    sim = Simulator(3, 5, START, 300, "frame", keys=keys)
    for e in sim.run(3):
        d = Deframer()
        (packet,) = d.feed(e.data)
        assert isinstance(packet, Packet)
        node_id = int(packet.node[1:])
        assert (packet.auth_tag is not None) == (node_id in keys)
        if node_id in keys:
            assert verify(packet, keys[node_id])


def test_a_day_of_weather_is_plausible() -> None:
    sim = Simulator(4, 11, START, 900, "frame")
    temps, rh, moist = [], [], []
    for e in sim.run(96):  # one day at 15-minute intervals
        assert e.fault is None
        assert not any(check_range(q, v) for (q, _), v in e.readings.items())
        assert e.battery_v is not None and 3.3 <= e.battery_v <= 4.2
        if e.node == "n1":
            temps.append(e.readings[("temperature_c", "main")])
            rh.append(e.readings[("humidity_pct", "main")])
            moist.append(e.readings[("soil_moisture_pct", "soil_10cm")])
    assert 5 < min(temps) < max(temps) < 30 and max(temps) - min(temps) > 5
    # humidity is lowest when it is warmest
    assert rh[temps.index(max(temps))] < rh[temps.index(min(temps))]
    assert max(moist) - min(moist) < 15


def test_tick_is_driven_by_the_time_passed_in() -> None:
    a = Simulator(2, 9, START, 60, "jsonl")
    b = Simulator(2, 9, START, 60, "jsonl")
    assert [e.data for e in a.tick(START)] == [e.data for e in b.tick(START)]
    later = a.tick(START + 3600)
    assert all(b'"ts":"2026-10-01T01:00:00Z"' in e.data for e in later if e.node == "n1")
