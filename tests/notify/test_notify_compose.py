"""Message text: language, severity and site in the title, original alert times, why/what."""

from __future__ import annotations

from collections.abc import Iterable
from zoneinfo import ZoneInfo

from notify_events import T0, S, event

from rules.alert import AlertEvent
from rules.notify.compose import compose
from rules.notify.grouping import Kind, Notification

TOKYO = ZoneInfo("Asia/Tokyo")


def _note(firing: Iterable[AlertEvent] = (), resolved: Iterable[AlertEvent] = (),
          kind: Kind = "first", new: Iterable[str] = (), at: int = T0 + 3600 * S
          ) -> Notification:
    return Notification("grower", ("kamiyama", "tomato.soil_dry"), kind, at,
                        tuple(firing), tuple(resolved), frozenset(new))


def test_five_plots_in_english_with_their_own_times() -> None:
    plots = [event(plot=f"p{i}", t=T0 + i * 60 * S) for i in range(1, 6)]
    title, body = compose(_note(plots), "en", TOKYO)
    assert title == "[Warning] kamiyama: Plot p1: soil is dry (tomato.soil_dry) (+4 more)"
    assert body.splitlines() == [
        "Firing (5):",
        "• 2026-07-01 11:01 JST  Plot p1: soil is dry (tomato.soil_dry)",
        "• 2026-07-01 11:02 JST  Plot p2: soil is dry (tomato.soil_dry)",
        "• 2026-07-01 11:03 JST  Plot p3: soil is dry (tomato.soil_dry)",
        "• 2026-07-01 11:04 JST  Plot p4: soil is dry (tomato.soil_dry)",
        "• 2026-07-01 11:05 JST  Plot p5: soil is dry (tomato.soil_dry)",
        "Why: Roots stop taking up water below 25 %.",
        "What to do: Water today.",
        "",
        "— Satoyama, kamiyama, written 2026-07-01 12:00 JST",
    ]


def test_japanese_update_with_a_new_alert_and_a_resolution() -> None:
    firing = [event(plot="p1"), event(plot="p2", t=T0 + 600 * S)]
    gone = event("resolved", plot="p3", t=T0 + 1200 * S, since=T0 - 3600 * S)
    title, body = compose(
        _note(firing, [gone], kind="update", new={firing[1].fingerprint}), "ja", TOKYO)
    assert title == "[注意] kamiyama: p1: 土が乾いています（tomato.soil_dry）（他2件）"
    assert body.splitlines() == [
        "発生中（2件）:",
        "• 2026-07-01 11:00 JST  p1: 土が乾いています（tomato.soil_dry）",
        "• 2026-07-01 11:10 JST（新規）  p2: 土が乾いています（tomato.soil_dry）",
        "理由: 25 %を下回ると根が水を吸えません。",
        "対処: 今日中に水やりを。",
        "",
        "解消（1件）:",
        "• p3: 土が乾いています（tomato.soil_dry） — 2026-07-01 11:20 JSTに解消"
        "（2026-07-01 10:00 JSTから）",
        "",
        "— Satoyama kamiyama・2026-07-01 12:00 JST作成",
    ]


def test_critical_reminder_and_resolved_only_titles() -> None:
    frost = event(rule="strawberry.frost", severity="critical", en="Frost risk tonight")
    title, _ = compose(_note([frost], kind="reminder"), "en", TOKYO)
    assert title == "Reminder: [CRITICAL] kamiyama: Frost risk tonight"
    title, body = compose(_note(resolved=[event("resolved")], kind="update"), "en", TOKYO)
    assert title.startswith("[Resolved] kamiyama: Plot p3")
    assert "Why:" not in body


def test_missing_language_falls_back_to_english() -> None:
    only_en = event()
    only_en.text.pop("ja")
    title, _ = compose(_note([only_en]), "ja", TOKYO)
    assert title == "[注意] kamiyama: Plot p3: soil is dry (tomato.soil_dry)"


def test_a_long_list_is_cut_to_twenty_lines_and_counted() -> None:
    plots = [event(plot=f"p{i:02d}") for i in range(45)]
    _, body = compose(_note(plots), "en", TOKYO)
    lines = body.splitlines()
    assert sum(line.startswith("• 2026") for line in lines) == 20
    assert "• … and 25 more" in lines
    _, body = compose(_note(resolved=[event("resolved", plot=f"p{i:02d}") for i in range(21)]),
                      "ja", TOKYO)
    assert "• …ほか1件" in body.splitlines()
