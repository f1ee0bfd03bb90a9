"""Rain gauges report running totals: the store turns them into ``rain_mm`` per reading.

Real SQLite stores and the real pipeline (decoders, validation, dedup at commit); times are
passed in. The rules for resets, late packets and jumps are in gateway/derive.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.ecowitt import decode_ecowitt
from gateway.derive import CounterReading, counter_increase
from gateway.pipeline.ingest import Pipeline
from gateway.pipeline.validate import Policy
from gateway.store.sqlite import Store
from rules import presets
from rules.engine import Engine, NodeContext
from rules.loader import load_rule_files
from rules.runner import run_history, stored_samples

MIN = 60 * 10**9
T0 = 1_795_410_000 * 10**9  # 2026-11-23 05:00:00 UTC
TOTALS = [0.0, 0.1, 0.1, 0.5, 0.0, 0.2]  # the last one after a reset (battery change)


def ecowitt_line(i: int, total_in: float, *, extra: str = "", t0: int = T0) -> bytes:
    """A station upload ``i`` minutes after ``t0`` with ``totalrainin`` (inches)."""
    stamp = datetime.fromtimestamp((t0 + i * MIN) // 10**9, UTC).strftime("%Y-%m-%d+%H:%M:%S")
    return (f"PASSKEY=RAIN1&dateutc={stamp.replace(':', '%3A')}&tempf=50.0"
            f"&totalrainin={total_in:.3f}&dailyrainin={total_in:.3f}{extra}").encode()


def rtl433_line(i: int, total_mm: float) -> bytes:
    """A Fine Offset WH24 event ``i`` minutes after T0 (``rain_mm`` is its running total)."""
    stamp = datetime.fromtimestamp((T0 + i * MIN) // 10**9, UTC).isoformat()
    return json.dumps({"time": stamp, "model": "Fineoffset-WH24", "id": 140,
                       "temperature_C": 10.0, "humidity": 80, "rain_mm": total_mm}).encode()


# format, line maker, the node the total lands on, the totals as the device says them
# (inches for Ecowitt) -> the stored rain_total_mm (mm)
FORMATS: dict[str, tuple[Callable[[int, float], bytes], str, float]] = {
    "ecowitt": (ecowitt_line, "ecowitt-rain1", 25.4),
    "rtl433": (rtl433_line, "Fineoffset-WH24:140", 1.0),
}
EXPECTED = {  # increments, exactly: None for the baseline, the new total after the reset
    "ecowitt": [None, 2.54, 0.0, 10.16, 0.0, 5.08],
    "rtl433": [None, 0.1, 0.0, 0.4, 0.0, 0.2],
}


def open_pipeline(path: Path, fmt: str) -> tuple[Store, Pipeline]:
    store = Store(path)
    pipeline = Pipeline(store, Policy(default_site="farm"))
    if fmt != "ecowitt":  # an upload body comes whole (HTTP): no stream to cut into lines
        pipeline.add_stream(fmt, fmt)
    return store, pipeline


def feed_line(pipeline: Pipeline, fmt: str, line: bytes, received_ns: int) -> None:
    """One line of ``fmt`` into the pipeline, as its source hands it over."""
    if fmt == "ecowitt":
        pipeline.handle(fmt, decode_ecowitt(line, default_site="farm"),
                        received_ns=received_ns)
    else:
        pipeline.feed(fmt, line + b"\n", received_ns=received_ns)


def feed(pipeline: Pipeline, fmt: str, i: int, total: float) -> None:
    line_for = FORMATS[fmt][0]
    feed_line(pipeline, fmt, line_for(i, total), T0 + i * MIN + 10**9)


def rain_rows(store: Store, node: str) -> list[tuple[float, float | None]]:
    return [(t, r) for t, r in store.execute(
        "SELECT rain_total_mm, rain_mm FROM reading WHERE node = ? AND sensor = 'main'"
        " ORDER BY time_ns", (node,))]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_totals_become_increments_with_baseline_and_reset(tmp_path: Path, fmt: str) -> None:
    store, pipeline = open_pipeline(tmp_path / "s.db", fmt)
    _, node, scale = FORMATS[fmt]
    for i, total in enumerate(TOTALS):
        feed(pipeline, fmt, i, total)
        pipeline.commit()
    rows = rain_rows(store, node)
    assert [r for _, r in rows] == EXPECTED[fmt]
    assert [t for t, _ in rows] == [round(x * scale, 4) for x in TOTALS]  # as the device said
    counters = store.counters()
    assert counters["flagged.rain_total_mm.baseline"] == 1
    assert counters["flagged.rain_total_mm.reset"] == 1
    assert store.counter_states() == {
        (node, "main", "rain_total_mm"): (round(0.2 * scale, 4), T0 + 5 * MIN)}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_one_batch_gives_the_same_increments(tmp_path: Path, fmt: str) -> None:
    store, pipeline = open_pipeline(tmp_path / "s.db", fmt)
    for i, total in enumerate(TOTALS):
        feed(pipeline, fmt, i, total)
    pipeline.commit()
    assert [r for _, r in rain_rows(store, FORMATS[fmt][1])] == EXPECTED[fmt]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_restart_keeps_the_baseline_and_redeliveries_add_nothing(tmp_path: Path,
                                                                   fmt: str) -> None:
    path = tmp_path / "s.db"
    store, pipeline = open_pipeline(path, fmt)
    for i, total in enumerate(TOTALS[:3]):
        feed(pipeline, fmt, i, total)
    pipeline.commit()
    store.close()  # the gateway stops between two uploads ...

    store, pipeline = open_pipeline(path, fmt)  # ... and starts again
    feed(pipeline, fmt, 2, TOTALS[2])  # the upload before the stop, delivered again
    for i, total in enumerate(TOTALS[3:], start=3):
        feed(pipeline, fmt, i, total)
    feed(pipeline, fmt, 3, TOTALS[3])  # an older one, redelivered after the reset
    result = pipeline.commit()
    assert (result.stored, result.duplicates) == (3, 2)
    assert [r for _, r in rain_rows(store, FORMATS[fmt][1])] == EXPECTED[fmt]
    assert pipeline.totals["flagged.rain_total_mm.reset"] == 1
    assert "flagged.rain_total_mm.baseline" not in pipeline.totals  # not a new series


def native_line(seq: int, values: dict[str, float]) -> bytes:
    return json.dumps({"node": "g1", "seq": seq, "readings": values}).encode() + b"\n"


def test_a_redelivered_packet_without_node_time_is_no_reset(tmp_path: Path) -> None:
    """Timed by the gateway, an old packet delivered again would look newer and lower (a
    reset, adding its whole total): dedup at commit keeps it from the counter step."""
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline(store, Policy(default_site="farm"))
    pipeline.add_stream("mqtt", "jsonl")
    for seq, total in enumerate([3.0, 3.5, 4.0]):
        pipeline.feed("mqtt", native_line(seq, {"rain_total_mm": total}),
                      received_ns=T0 + seq * MIN)
    pipeline.commit()
    pipeline.feed("mqtt", native_line(1, {"rain_total_mm": 3.5}), received_ns=T0 + 9 * MIN)
    assert pipeline.commit().duplicates == 1
    assert [r for _, r in rain_rows(store, "g1")] == [None, 0.5, 0.5]
    assert store.counter_states()[("g1", "main", "rain_total_mm")] == (4.0, T0 + 2 * MIN)


def test_late_packets_neither_add_nor_move_the_baseline(tmp_path: Path) -> None:
    store, pipeline = open_pipeline(tmp_path / "s.db", "rtl433")
    for i, total in ((0, 1.0), (2, 1.6), (1, 1.3), (3, 1.6)):  # minute 1 arrives late
        feed(pipeline, "rtl433", i, total)
        pipeline.commit()
    assert [r for _, r in rain_rows(store, "Fineoffset-WH24:140")] == [None, None, 0.6, 0.0]
    assert store.counters()["flagged.rain_total_mm.older"] == 1


def test_an_implausible_jump_is_quarantined_and_the_next_reading_counts(tmp_path: Path
                                                                        ) -> None:
    store, pipeline = open_pipeline(tmp_path / "s.db", "rtl433")
    for i, total in enumerate([10.0, 10.3, 900.0, 900.5]):  # 889.7 mm in a minute
        feed(pipeline, "rtl433", i, total)
    pipeline.commit()
    assert [r for _, r in rain_rows(store, "Fineoffset-WH24:140")] == [None, 0.3, None, 0.5]
    [row] = store.quarantine(reason="implausible_increase")
    assert row["node"] == "Fineoffset-WH24:140" and row["raw"] == b"rain_total_mm@main=900.0"
    assert "increase from 10.3 to 900" in row["detail"]
    assert store.counters()["flagged.rain_total_mm.jump"] == 1
    assert "rejected.implausible_increase" not in store.counters()  # the packet is stored


def test_an_increment_the_device_sent_is_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline(store, Policy(default_site="farm"))
    pipeline.add_stream("mqtt", "jsonl")
    for seq, (total, inc) in enumerate([(5.0, 0.0), (5.4, 0.5)]):  # the device knows better
        pipeline.feed("mqtt", native_line(seq, {"rain_total_mm": total, "rain_mm": inc}),
                      received_ns=T0 + seq * MIN)
    pipeline.commit()
    assert [r for _, r in rain_rows(store, "g1")] == [0.0, 0.5]


def test_the_piezo_gauge_is_its_own_series(tmp_path: Path) -> None:
    store, pipeline = open_pipeline(tmp_path / "s.db", "ecowitt")
    for i, (tipping, piezo) in enumerate([(1.0, 2.0), (1.1, 2.3)]):
        feed_line(pipeline, "ecowitt", ecowitt_line(i, tipping, extra=f"&yrain_piezo={piezo}"),
                  T0 + i * MIN)
    pipeline.commit()
    rows = store.execute("SELECT sensor, rain_total_mm, rain_mm FROM reading"
                         " WHERE rain_total_mm IS NOT NULL ORDER BY time_ns, sensor")
    assert rows == [("main", 25.4, None), ("piezo", 50.8, None),
                    ("main", 27.94, 2.54), ("piezo", 58.42, 7.62)]


# ---------------------------------------------------------------- the pure rule

@pytest.mark.parametrize(("previous", "total", "minutes", "kind", "increment"), [
    (None, 5.0, 1, "baseline", None),
    ((5.0, 1), 5.0, 1, "older", None),  # same time: not newer
    ((5.0, 2), 4.0, 1, "older", None),
    ((5.0, 0), 5.25, 1, "increase", 0.25),
    ((5.0, 0), 0.3, 1, "reset", 0.3),
    ((0.2, 0), 0.1, 1, "reset", 0.1),
    ((5.0, 0), 45.0, 1, "increase", 40.0),  # 6 minutes' worth at 400 mm/h is allowed
    ((5.0, 0), 46.0, 1, "jump", None),
    ((5.0, 0), 405.0, 60, "increase", 400.0),
    ((5.0, 0), 506.0, 24 * 60, "jump", None),  # over rain_mm's 500 mm whatever the time
    ((900.0, 0), 600.0, 1, "jump", None),  # a "reset" to 600 mm is no restart from 0
])
def test_counter_increase(previous: tuple[float, int] | None, total: float, minutes: int,
                          kind: str, increment: float | None) -> None:
    base = None if previous is None else CounterReading(previous[0], previous[1] * MIN)
    step = counter_increase(base, total, minutes * MIN, maximum=500.0, max_per_h=400.0)
    assert (step.kind, step.increment) == (kind, increment)
    assert step.advance == (kind != "older")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=40), st.data())
def test_increments_sum_to_the_rain_that_fell(tips: list[int], data: st.DataObject) -> None:
    """A 0.1 mm tipping bucket counted since power-up, with a restart at random: the
    increments add up to every tip after the first reading, never twice. (A restart after
    which the count is already back above the old total cannot be seen in the totals:
    then the rain before it is missing, never counted twice, as with Prometheus.)"""
    restart = data.draw(st.integers(1, len(tips)))
    totals, count, visible = [], 0, True
    for i, n in enumerate(tips):
        if i == restart:  # counting from 0 again
            visible = n < count
            count = n
        else:
            count += n
        totals.append(round(count * 0.1, 1))
    base: CounterReading | None = None
    fallen = 0.0
    for i, total in enumerate(totals):
        step = counter_increase(base, total, (i + 1) * 10 * MIN, maximum=500.0,
                                max_per_h=400.0)
        fallen += step.increment or 0.0
        base = CounterReading(total, (i + 1) * 10 * MIN)
    truth = round(sum(tips[1:]) * 0.1, 1)
    assert round(fallen, 1) == truth if visible else round(fallen, 1) <= truth


# ---------------------------------------------------------------- rules, end to end

def _water_soon_events(tmp_path: Path, rain_in: list[float]) -> list[str]:
    """The tomato preset over Ecowitt uploads: a WH51 drying 0.05 % per 10 min (the
    refill point in about a day) and the station's rain gauge with the given totals."""
    store, pipeline = open_pipeline(tmp_path / "s.db", "ecowitt")
    for i, total in enumerate(rain_in):
        feed_line(pipeline, "ecowitt", ecowitt_line(i * 10, total, extra=(
            f"&soilmoisture1={30 - 0.05 * i:.2f}")), T0 + i * 10 * MIN)
    pipeline.commit()
    rules = load_rule_files([presets.entry("common"), presets.entry("tomato")])
    engine = Engine(rules, nodes={"ecowitt-rain1-soil1": NodeContext(crop="tomato")})
    events = run_history(engine, stored_samples(store), tick_every_s=60,
                         end_ns=T0 + len(rain_in) * 10 * MIN)
    return [f"{e.rule}:{e.state}" for e in events if e.node == "ecowitt-rain1-soil1"]


def test_rain_from_an_ecowitt_gauge_suppresses_the_water_soon_alert(tmp_path: Path) -> None:
    dry = [1.0] * 30
    assert "tomato.water_soon:firing" in _water_soon_events(tmp_path / "dry", dry)
    # 0.25 in (6.35 mm) twice after 3 h: 12.7 mm, above the preset's 10 mm in 12 h.
    wet = [1.0] * 20 + [1.25] + [1.5] * 9
    assert _water_soon_events(tmp_path / "wet", wet) == []
