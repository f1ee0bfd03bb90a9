"""Alert transitions in the SQLite outbox: one transaction per engine step, read back whole."""

from __future__ import annotations

from pathlib import Path

from gateway.sinks.line_protocol import RowEncoder
from gateway.store.sqlite import Store
from rules.alert import AlertEvent, AlertText


def _event(state: str, previous: str, t: int, sensor: str = "soil_10cm") -> AlertEvent:
    return AlertEvent(
        time_ns=t, rule="tomato.soil_dry", severity="warning", state=state, previous=previous,
        site="kamiyama", plot="p3", node="n17", sensor=sensor, value=21.5, since_ns=1000,
        text={"en": AlertText('Plot p3: soil is dry, "water today"', "why", "do"),
              "ja": AlertText("3番: 土が乾いています", "理由", "水やり")},
        labels={"crop": "tomato"},
    )


def test_rules_step_appends_events_and_saves_state_and_cursors_together(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.rules_step(
        "rules", {"reading": 7, "quarantine": 2},
        {("tomato.soil_dry", "kamiyama/p3/n17/soil_10cm"): '{"phase": "firing"}'},
        [_event("pending", "inactive", 1000), _event("firing", "pending", 2000)],
        counters={"rules.transitions": 2},
    )
    assert store.cursor("rules", "reading") == 7
    assert store.cursor("rules", "quarantine") == 2
    assert store.rule_states() == {
        ("tomato.soil_dry", "kamiyama/p3/n17/soil_10cm"): '{"phase": "firing"}'}
    rows = store.alert_rows(0, 10)
    assert [r["state"] for r in rows] == ["pending", "firing"]
    back = AlertEvent.from_row(rows[1])
    assert back == _event("firing", "pending", 2000)
    assert back.message("ja") == "3番: 土が乾いています"
    assert [a["state"] for a in store.active_alerts()] == ["firing"]
    assert store.counters()["rules.transitions"] == 2

    store.rules_step("rules", {"reading": 9},
                     {("tomato.soil_dry", "kamiyama/p3/n17/soil_10cm"): None},
                     [_event("resolved", "firing", 3000)])
    assert store.rule_states() == {}
    assert store.active_alerts() == []
    assert store.backlog("influxdb")["alert"] == 3


def test_alert_row_is_one_point_with_string_state_and_message(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.rules_step("rules", {}, {}, [_event("firing", "pending", 2000)])
    with store.outbox_cursor("alert", 0, 10) as (columns, rows):
        line = RowEncoder("alert", columns)(next(iter(rows)))
    assert line == (
        "alert,node=n17,plot=p3,rule=tomato.soil_dry,sensor=soil_10cm,severity=warning,"
        'site=kamiyama state="firing",value=21.5,'
        'message="Plot p3: soil is dry, \\"water today\\"" 2000'
    )
