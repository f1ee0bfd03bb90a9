"""The daily summary: when it is due, its text, and its delivery from a real store to a real
webhook receiver: once per recipient and local day, across notifier restarts."""

from __future__ import annotations

import hashlib
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from notify_events import S, event
from servers.receivers import Webhook

from gateway.config.notifications import NotificationsConfig
from gateway.packet import Record
from gateway.store.sqlite import Store
from rules.notify.dispatcher import Notifier
from rules.notify.summary import PlotDay, SoilLine, compose, due_day, gather

TOKYO = ZoneInfo("Asia/Tokyo")
H = 3600 * S
# 2026-11-24 06:30 JST = 2026-11-23 21:30 UTC
SEND = 1_795_469_400 * S


def test_due_from_the_hour_until_the_end_of_the_local_day() -> None:
    at = time(6, 30)
    assert due_day(SEND - 60 * S, TOKYO, at, None) is None
    assert due_day(SEND, TOKYO, at, None) == "2026-11-24"
    assert due_day(SEND + 3 * H, TOKYO, at, "2026-11-24") is None  # already sent today
    assert due_day(SEND + 3 * H, TOKYO, at, "2026-11-23") == "2026-11-24"  # late, same day
    assert due_day(SEND + 17 * H, TOKYO, at, "2026-11-24") is None  # 23:30, still the 24th
    assert due_day(SEND + 24 * H, TOKYO, at, "2026-11-24") == "2026-11-25"
    # the same instant is still the 23rd, 13:30, in Lisbon (UTC+0 in November): not due
    assert due_day(SEND, ZoneInfo("Europe/Lisbon"), time(22, 0), None) is None


def _days() -> list[PlotDay]:
    dry = event(plot="terrace-1", t=SEND - 2 * H, en="terrace-1: soil at 10 cm is 21.7 %",
                ja="terrace-1: 深さ10cmの土壌水分 21.7%")
    return [
        PlotDay("kamiyama", "terrace-1", "Summer-autumn tomato", readings=96, air_min_c=8.24,
                air_max_c=19.5, rain_mm=0.0, soil=[SoilLine("soil_10cm", 21.7, -3.14)],
                alerts=[dry]),
        PlotDay("kamiyama", "terrace-2", None, readings=96, air_min_c=8.0, air_max_c=18.0,
                soil=[SoilLine("soil_10cm", 31.0, None)]),
        PlotDay("kamiyama", "yam-field", "Japanese yam"),
    ]


def test_summary_text_in_english_and_japanese() -> None:
    title, body = compose(_days(), "en", TOKYO, SEND)
    assert title == "Daily summary — kamiyama, Tue 24 Nov"
    assert body.splitlines() == [
        "■ terrace-1 (Summer-autumn tomato)",
        "• NOW: terrace-1: soil at 10 cm is 21.7 %",
        "  What to do: Water today.",
        "• Soil moisture soil_10cm: 21.7 % (-3.1 in 24 h)",
        "• Air 8.2–19.5 °C, rain 0.0 mm",
        "■ terrace-2",
        "• All fine.",
        "• Soil moisture soil_10cm: 31.0 %",
        "• Air 8.0–18.0 °C",
        "■ yam-field (Japanese yam)",
        "• No readings in the last 24 hours: check the node.",
        "",
        "— Satoyama, written 2026-11-24 06:30 JST",
    ]
    title, body = compose(_days(), "ja", TOKYO, SEND)
    assert title == "【毎日のまとめ】kamiyama 11月24日"
    assert body.splitlines()[:5] == [
        "■ terrace-1（Summer-autumn tomato）",
        "• 発生中: terrace-1: 深さ10cmの土壌水分 21.7%",
        "  対処: 今日中に水やりを。",
        "• 土壌水分 soil_10cm: 21.7%（24時間で-3.1）",
        "• 気温 8.2〜19.5℃、雨 0.0 mm",
    ]


def _record(t: int, plot: str, node: str, seq: int, values: dict[str, dict[str, float]]
            ) -> Record:
    return Record(time_ns=t, received_ns=t, site="kamiyama", plot=plot, node=node, seq=seq,
                  digest=hashlib.blake2b(f"{node}{seq}".encode(), digest_size=16).digest(),
                  source="test", format="native", time_source="node", readings=values)


def _fill(store: Store) -> None:
    """terrace-1 drying from 25 to 21.5 % over the day, terrace-2 steady; an old reading
    from before the window that must not count."""
    records = [_record(SEND - 30 * H, "terrace-1", "n1", 0,
                       {"main": {"temperature_c": -5.0}, "soil_10cm": {"soil_moisture_pct": 40.0}})]
    for i in range(24):
        t = SEND - 23 * H + i * H
        records.append(_record(t, "terrace-1", "n1", i + 1, {
            "main": {"temperature_c": 10.0 + i / 2, "humidity_pct": 70.0, "rain_mm": 0.1},
            "soil_10cm": {"soil_moisture_pct": 25.0 - i * 3.5 / 23}}))
        records.append(_record(t, "terrace-2", "n2", i + 1, {
            "main": {"temperature_c": 9.0 + i / 2}, "soil_10cm": {"soil_moisture_pct": 31.0}}))
    store.write_batch(records)


def test_gather_reads_the_last_24_hours_and_the_firing_alerts(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    _fill(store)
    store.rules_step("rules", {}, {}, [event(plot="terrace-1", t=SEND - 2 * H),
                                       event("pending", plot="terrace-2", t=SEND - H)])
    days = gather(store, SEND, plots={("kamiyama", "terrace-1"): "tomato",
                                      ("kamiyama", "yam-field"): "yam"})
    assert [(d.plot, d.crop, d.readings, len(d.alerts)) for d in days] == [
        ("terrace-1", "tomato", 48, 1),  # the alert first; 24 uplinks x 2 sensor rows
        ("terrace-2", None, 48, 0),  # pending is not firing
        ("yam-field", "yam", 0, 0),
    ]
    t1 = days[0]
    assert (t1.air_min_c, t1.air_max_c) == (10.0, 21.5)
    assert t1.rain_mm == pytest.approx(2.4)
    [soil] = t1.soil
    assert soil.sensor == "soil_10cm" and soil.latest == pytest.approx(21.5)
    assert soil.change == pytest.approx(-3.5)
    assert gather(store, SEND, sites=["other-*"]) == []


def test_rain_is_the_largest_gauge_of_a_plot_not_the_sum_of_its_gauges(tmp_path: Path
                                                                       ) -> None:
    # A WS90 (tipping bucket on main, piezo gauge on piezo) and a second rain gauge on the
    # plot all see the same 12 mm: the plot had 12 mm, not 30. Each gauge's own readings
    # add up (12 x 1 mm); terrace-2's gauge is its own plot's.
    store = Store(tmp_path / "s.db")
    records = []
    for i in range(12):
        t = SEND - 12 * H + i * H
        records.append(_record(t, "terrace-1", "ws90", i, {
            "main": {"temperature_c": 12.0, "rain_mm": 1.0}, "piezo": {"rain_mm": 1.0}}))
        records.append(_record(t, "terrace-1", "gauge", i, {"main": {"rain_mm": 0.5}}))
        records.append(_record(t, "terrace-2", "n2", i, {"main": {"rain_mm": 0.25}}))
    records.append(_record(SEND - H // 2, "terrace-1", "gauge", 12, {"main": {"rain_mm": 0.5}}))
    records.append(_record(SEND - H, "terrace-3", "n3", 0, {"main": {"temperature_c": 8.0}}))
    store.write_batch(records)
    rain = {d.plot: d.rain_mm for d in gather(store, SEND)}
    assert rain == {"terrace-1": pytest.approx(12.0), "terrace-2": pytest.approx(3.0),
                    "terrace-3": None}  # no gauge: no rain line, not "rain 0.0 mm"


@pytest.fixture
def hook() -> Any:
    server = Webhook().start()
    yield server
    server.stop()


def test_one_summary_a_day_delivered_once_across_restarts(tmp_path: Path, hook: Webhook
                                                          ) -> None:
    store = Store(tmp_path / "s.db")
    _fill(store)
    cfg = NotificationsConfig(recipients={
        "grower": {"urls": [hook.url()], "language": "en", "daily_summary": {"at": "06:30"}},
        "office": {"urls": [hook.url(path="/office")], "language": "en"},  # no summary
    })
    plots = {("kamiyama", "terrace-1"): "tomato", ("kamiyama", "terrace-2"): "strawberry"}
    notifier = Notifier(tmp_path / "s.db", cfg, TOKYO, plots=plots)
    assert notifier.step(SEND - 60 * S) == (0, 0)
    assert notifier.step(SEND) == (1, 1)
    assert notifier.step(SEND + 60 * S) == (0, 0)
    notifier.close()

    again = Notifier(tmp_path / "s.db", cfg, TOKYO, plots=plots)  # a restart the same day
    assert again.step(SEND + 2 * H) == (0, 0)
    [body] = hook.bodies()
    assert body["title"] == "Daily summary — kamiyama, Tue 24 Nov"
    assert "■ terrace-1 (Summer-autumn tomato)\n• All fine." in body["message"]
    assert "■ terrace-2 (Strawberry)" in body["message"]
    assert hook.requests[0].path == "/hook"

    assert again.step(SEND + 24 * H) == (1, 1)  # the next morning
    assert [b["title"] for b in hook.bodies()][1] == "Daily summary — kamiyama, Wed 25 Nov"
    # ... with no readings in its last 24 hours: it says so rather than "all fine"
    assert "No readings in the last 24 hours" in hook.bodies()[1]["message"]
    assert store.counters()["notify.summaries"] == 2
    again.close()
