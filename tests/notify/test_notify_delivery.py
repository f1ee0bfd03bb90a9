"""Notifications delivered to real receivers: an HTTP webhook (apprise json://) and an SMTP
server (aiosmtpd), both started here. The alert outbox is a real SQLite store; alerts are
put there the way the rules engine does (Store.rules_step)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import wait_for
from notify_events import T0, S, event
from servers.receivers import SmtpServer, Webhook

from gateway.config.notifications import NotificationsConfig
from gateway.status import collect
from gateway.store.sqlite import Store
from rules.alert import AlertEvent
from rules.notify.dispatcher import Notifier

TOKYO = ZoneInfo("Asia/Tokyo")
FAST = {"group_by": ["site", "rule"], "group_wait_s": 30, "group_interval_s": 300,
        "repeat_interval_s": 3600}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now

    def at(self, seconds: float) -> int:
        self.now = T0 + int(seconds * S)
        return self.now


@pytest.fixture
def hook() -> Any:
    server = Webhook().start()
    yield server
    server.stop()


@pytest.fixture
def mail() -> Any:
    server = SmtpServer().start()
    yield server
    server.stop()


def _config(recipients: dict[str, Any], **extra: Any) -> NotificationsConfig:
    return NotificationsConfig(recipients=recipients, grouping=FAST, retry_initial_s=5,
                               retry_max_s=60, **extra)


def _alerts(store: Store, *events: AlertEvent) -> None:
    store.rules_step("rules", {}, {}, list(events))


def test_five_dry_plots_one_webhook_message_and_one_mail_in_each_language(
    tmp_path: Path, hook: Webhook, mail: SmtpServer
) -> None:
    store = Store(tmp_path / "s.db")
    clock = Clock()
    cfg = _config({
        "officer": {"urls": [hook.url()], "language": "en"},
        "grower": {"urls": [mail.url(to="grower@example.jp")], "language": "ja"},
    })
    notifier = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
    _alerts(store, *[event(plot=f"p{i}") for i in range(1, 6)])
    assert notifier.step(clock.at(0)) == (0, 0)  # seen: group_wait starts
    assert notifier.step(clock.at(29)) == (0, 0)
    assert notifier.step(clock.at(30)) == (2, 2)  # one message per recipient
    assert notifier.step(clock.at(60)) == (0, 0)

    [body] = hook.bodies()
    assert body["title"] == "[Warning] kamiyama: Plot p1: soil is dry (tomato.soil_dry) (+4 more)"
    assert body["message"].count("• 2026-07-01 11:00 JST  Plot p") == 5
    assert "What to do: Water today." in body["message"]
    assert body["type"] == "warning"

    [msg] = mail.messages
    assert mail.envelopes == [("satoyama@example.org", ["grower@example.jp"])]
    assert msg["Subject"] == "[注意] kamiyama: p1: 土が乾いています（tomato.soil_dry）（他4件）"
    text = msg.get_content() if not msg.is_multipart() else msg.get_body(("plain",)).get_content()
    assert "発生中（5件）:" in text and "対処: 今日中に水やりを。" in text
    counters = store.counters()
    assert counters["notify.sent"] == 2 and counters["notify.messages_queued"] == 2
    notifier.close()


def test_receiver_down_is_delivered_once_it_returns_with_the_original_time(
    tmp_path: Path
) -> None:
    hook = Webhook()  # not started: connection refused
    store = Store(tmp_path / "s.db")
    clock = Clock()
    cfg = _config({"officer": {"urls": [hook.url()], "language": "en"}})
    notifier = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
    _alerts(store, event(plot="p1", t=T0))
    assert notifier.step(clock.at(0)) == (0, 0)  # seen: group_wait starts
    assert notifier.step(clock.at(30)) == (1, 0)
    assert store.counters()["notify.send_failures"] == 1
    assert notifier.step(clock.at(31)) == (0, 0)  # backing off: no attempt yet
    assert store.counters()["notify.send_failures"] == 1
    hook.start()
    try:
        # Half an hour later the uplink is back.
        assert notifier.step(clock.at(1800)) == (0, 1)
        assert notifier.step(clock.at(1860)) == (0, 0)
        [body] = hook.bodies()
        assert "• 2026-07-01 11:00 JST  Plot p1" in body["message"]  # when it fired
        assert "written 2026-07-01 11:00 JST" in body["message"]
        notifier.close()
        # A restart sends nothing again.
        again = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
        assert again.step(clock.at(1920)) == (0, 0)
        assert len(hook.requests) == 1
        again.close()
    finally:
        hook.stop()


def test_receiver_down_across_a_dispatcher_restart_exactly_once(tmp_path: Path) -> None:
    hook = Webhook()
    store = Store(tmp_path / "s.db")
    clock = Clock()
    cfg = _config({"officer": {"urls": [hook.url()], "language": "en"}})
    first = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
    _alerts(store, event(plot="p1"), event(plot="p2"))
    assert first.step(clock.at(0)) == (0, 0)  # seen: group_wait starts
    assert first.step(clock.at(30)) == (1, 0)
    first.close()  # the gateway restarts while the receiver is down

    second = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
    assert second.step(clock.at(40)) == (0, 0)  # the backoff survived the restart
    hook.start()
    try:
        assert second.step(clock.at(120)) == (0, 1)
        second.close()
        third = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
        assert third.step(clock.at(200)) == (0, 0)  # neither re-planned nor re-sent
        assert [b["title"] for b in hook.bodies()] == [
            "[Warning] kamiyama: Plot p1: soil is dry (tomato.soil_dry) (+1 more)"]
        third.close()
    finally:
        hook.stop()


def test_server_error_is_retried_and_later_messages_wait_in_order(
    tmp_path: Path, hook: Webhook
) -> None:
    store = Store(tmp_path / "s.db")
    clock = Clock()
    cfg = _config({"officer": {"urls": [hook.url()], "language": "en"}})
    notifier = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
    hook.status = 503
    _alerts(store, event(plot="p1"), event(rule="strawberry.frost", severity="critical"))
    assert notifier.step(clock.at(0)) == (0, 0)  # seen: group_wait starts
    assert notifier.step(clock.at(30)) == (2, 0)  # the first failed; the second waited
    hook.status = 200
    assert notifier.step(clock.at(200)) == (0, 2)
    assert [b["title"].split(":")[0] for b in hook.bodies()] == [
        "[CRITICAL] kamiyama", "[Warning] kamiyama"]
    notifier.close()


def test_reminder_after_repeat_interval_and_resolution(tmp_path: Path, hook: Webhook) -> None:
    store = Store(tmp_path / "s.db")
    clock = Clock()
    cfg = _config({"officer": {"urls": [hook.url()], "language": "en"}})
    notifier = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
    _alerts(store, event(plot="p1"))
    assert notifier.step(clock.at(0)) == (0, 0)  # seen: group_wait starts
    notifier.step(clock.at(30))
    notifier.close()  # a restart between the message and the reminder keeps the timer
    notifier = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
    assert notifier.step(clock.at(3629)) == (0, 0)
    assert notifier.step(clock.at(3630)) == (1, 1)
    _alerts(store, event("resolved", plot="p1", t=T0 + 4000 * S, since=T0 - 600 * S))
    assert notifier.step(clock.at(4000)) == (1, 1)  # group_interval since the reminder
    assert notifier.step(clock.at(20000)) == (0, 0)
    titles = [b["title"] for b in hook.bodies()]
    assert titles == [
        "[Warning] kamiyama: Plot p1: soil is dry (tomato.soil_dry)",
        "Reminder: [Warning] kamiyama: Plot p1: soil is dry (tomato.soil_dry)",
        "[Resolved] kamiyama: Plot p1: soil is dry (tomato.soil_dry)",
    ]
    assert "cleared 2026-07-01 12:06 JST (since 2026-07-01 10:50 JST)" in (
        hook.bodies()[2]["message"])
    notifier.close()


def test_quiet_hours_hold_a_warning_but_frost_wakes_the_grower(
    tmp_path: Path, hook: Webhook
) -> None:
    store = Store(tmp_path / "s.db")
    clock = Clock()
    cfg = _config({"grower": {"urls": [hook.url()], "language": "en",
                              "quiet_hours": {"start": "21:00", "end": "06:00"}}})
    notifier = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
    _alerts(store, event(plot="p1", t=T0 + 36000 * S))  # 21:00 JST
    notifier.step(clock.at(36000))
    assert notifier.step(clock.at(50000)) == (0, 0)  # 00:53: held
    frost = event(rule="strawberry.frost", severity="critical", plot="p2",
                  t=T0 + 57600 * S, en="Frost risk: 1.5 °C and falling")
    _alerts(store, frost)  # 03:00 JST
    notifier.step(clock.at(57600))
    assert notifier.step(clock.at(57630)) == (1, 1)
    assert [b["title"] for b in hook.bodies()] == [
        "[CRITICAL] kamiyama: Frost risk: 1.5 °C and falling"]
    # 06:00: the warning held since 21:00 goes out (and the frost's hourly reminder).
    assert notifier.step(clock.at(68400)) == (2, 2)
    later = hook.bodies()[1:]
    assert [b["title"].split(":")[0] for b in later] == ["Reminder", "[Warning] kamiyama"]
    assert later[1]["message"].startswith("Firing (1):\n• 2026-07-01 21:00 JST")
    notifier.close()


def test_gateway_offline_inhibits_node_silent_until_it_clears(
    tmp_path: Path, hook: Webhook
) -> None:
    store = Store(tmp_path / "s.db")
    clock = Clock()
    cfg = _config(
        {"officer": {"urls": [hook.url()], "language": "en"}},
        inhibit=[{"source": {"rule": ["gateway_offline"]}, "target": {"rule": ["node_silent"]},
                  "equal": ["site"]}],
    )
    notifier = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
    offline = event(rule="gateway_offline", severity="critical", plot="-", en="Gateway offline")
    _alerts(store, offline,
            *[event(rule="node_silent", plot=f"p{i}", en=f"Node n{i} silent") for i in range(4)])
    assert notifier.step(clock.at(0)) == (0, 0)  # seen: group_wait starts
    notifier.step(clock.at(30))
    assert [b["title"] for b in hook.bodies()] == ["[CRITICAL] kamiyama: Gateway offline"]
    notifier.close()
    notifier = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)  # state survives
    assert notifier.step(clock.at(600)) == (0, 0)
    _alerts(store, event("resolved", rule="gateway_offline", severity="critical", plot="-",
                         en="Gateway offline"))
    assert notifier.step(clock.at(700)) == (2, 2)
    titles = [b["title"] for b in hook.bodies()[1:]]
    assert sorted(titles) == ["[Resolved] kamiyama: Gateway offline",
                              "[Warning] kamiyama: Node n0 silent (+3 more)"]
    notifier.close()


def test_the_thread_sends_on_its_own_and_stops(tmp_path: Path, hook: Webhook) -> None:
    store = Store(tmp_path / "s.db")
    cfg = NotificationsConfig(recipients={"officer": {"urls": [hook.url()], "language": "en"}},
                              grouping={"group_wait_s": 0, "group_interval_s": 0})
    notifier = Notifier(tmp_path / "s.db", cfg, TOKYO, tick_s=0.05)
    notifier.start()
    try:
        _alerts(store, event(plot="p1"), event(plot="p2"))
        wait_for(lambda: len(hook.requests) == 1, 10, "the webhook message")
        _alerts(store, event("resolved", plot="p1"))
        wait_for(lambda: len(hook.requests) == 2, 10, "the resolution")
    finally:
        notifier.stop()
    assert "Resolved (1):" in hook.bodies()[1]["message"]
    assert [b["type"] for b in hook.bodies()] == ["warning", "warning"]
    assert store.counters()["notify.sent"] == 2


def test_a_backlog_larger_than_a_batch_is_one_message(tmp_path: Path, hook: Webhook) -> None:
    store = Store(tmp_path / "s.db")
    clock = Clock()
    cfg = _config({"officer": {"urls": [hook.url()], "language": "en"}})
    _alerts(store, *[event(plot=f"p{i:04d}") for i in range(1200)])  # notifier was off
    notifier = Notifier(tmp_path / "s.db", cfg, TOKYO, clock_ns=clock)
    assert notifier.step(clock.at(3600)) == (0, 0)  # seen: group_wait starts
    assert collect(store)["alert_consumers"]["notify"] == {"alerts_waiting": 0,
                                                           "messages_unsent": 0}
    _alerts(store, event(plot="late"))  # `satoyama status` shows what is still waiting
    assert collect(store)["alert_consumers"]["notify"] == {"alerts_waiting": 1,
                                                           "messages_unsent": 0}
    assert notifier.step(clock.at(3630)) == (1, 1)
    assert store.cursor("notify", "alert") == 1201
    [body] = hook.bodies()
    assert body["title"].endswith("(+1200 more)") and "• … and 1181 more" in body["message"]
    notifier.close()
