"""The daily summary: one message per recipient and day, at the hour they chose.

An elderly grower wants one clear message at a known time rather than a stream of
alerts: for each plot, what is wrong now and what to do, the soil moisture and how it
moved in the last 24 hours, the night's low, the day's high and the rain. It is sent on
quiet days too ("all fine"), so a summary that does not come is itself a sign that the
gateway or its link is down.

:func:`gather` reads the store (the last 24 hours of readings and the alerts firing now);
:func:`compose` writes the text and is pure; :func:`due_day` decides when a summary is
due. The notifier queues it in its own outbox (durable, retried like alert messages) once
per recipient and local day (``notify_summary``), so a restart never sends it twice.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Final
from zoneinfo import ZoneInfo

from gateway.store.sqlite import Store
from rules.alert import AlertEvent
from rules.notify.compose import local_time

DAY_NS: Final = 86_400 * 1_000_000_000
#: Plots listed in one summary; the rest are counted (chat services cap message length).
MAX_PLOTS: Final = 30
_SEVERITY_ORDER: Final = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class SoilLine:
    sensor: str
    latest: float
    change: float | None  # latest minus the first value of the window


@dataclass(slots=True)
class PlotDay:
    site: str
    plot: str
    crop: str | None = None  # the crop's title in the recipient's language
    readings: int = 0
    air_min_c: float | None = None
    air_max_c: float | None = None
    rain_mm: float | None = None
    soil: list[SoilLine] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)  # firing now


@dataclass(frozen=True, slots=True)
class Words:
    title: str  # {site} {date}
    date: str  # strftime
    all_fine: str
    no_data: str
    firing: str
    action: str
    soil: str  # {sensor} {value} {change}
    change: str  # {delta}
    air: str  # {low} {high}
    rain: str  # {mm}
    more_plots: str  # {n}
    footer: str  # {time}


WORDS: Final[dict[str, Words]] = {
    "en": Words(
        title="Daily summary — {site}, {date}", date="%a %d %b",
        all_fine="All fine.", no_data="No readings in the last 24 hours: check the node.",
        firing="NOW: ", action="What to do: ",
        soil="Soil moisture {sensor}: {value} %{change}", change=" ({delta:+.1f} in 24 h)",
        air="Air {low}–{high} °C", rain="rain {mm:.1f} mm",
        more_plots="… and {n} more plots", footer="— Satoyama, written {time}",
    ),
    "ja": Words(
        title="【毎日のまとめ】{site} {date}", date="%m月%d日",
        all_fine="異常なし。",
        no_data="この24時間、データが届いていません。ノードを確認してください。",
        firing="発生中: ", action="対処: ",
        soil="土壌水分 {sensor}: {value}%{change}", change="（24時間で{delta:+.1f}）",
        air="気温 {low}〜{high}℃", rain="雨 {mm:.1f} mm",
        more_plots="…ほか{n}区画", footer="— Satoyama・{time}作成",
    ),
}


def due_day(now_ns: int, tz: ZoneInfo, at: time, last_day: str | None) -> str | None:
    """The local date (``2026-11-24``) whose summary is due at ``now_ns``, or None.

    Due from ``at`` until the end of that local day: a gateway that was off at ``at``
    sends it when it starts (late, the same day), never a past day's."""
    local = datetime.fromtimestamp(now_ns / 1e9, UTC).astimezone(tz)
    day = local.date().isoformat()
    if local.time() < at or day == last_day:
        return None
    return day


def _matches(site: str, patterns: Sequence[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(site, p) for p in patterns)


def gather(store: Store, now_ns: int, *, sites: Sequence[str] | None = None,
           plots: Mapping[tuple[str, str], str | None] | None = None) -> list[PlotDay]:
    """Each plot's last 24 hours and its firing alerts, from the store.

    ``plots`` are the registered (site, plot) pairs with their crop title: a registered
    plot with no readings is listed (as "no readings"), which is the point."""
    since = now_ns - DAY_NS  # (since, now]: a reading exactly a day old was yesterday's
    days: dict[tuple[str, str], PlotDay] = {}

    def day(site: str, plot: str) -> PlotDay:
        key = (site, plot)
        if key not in days:
            days[key] = PlotDay(site, plot, (plots or {}).get(key))
        return days[key]

    for (site, plot) in (plots or {}):
        if _matches(site, sites):
            day(site, plot)
    for site, plot, n, low, high in store.execute(
        "SELECT site, plot, count(*), min(temperature_c), max(temperature_c)"
        " FROM reading WHERE time_ns > ? AND time_ns <= ? GROUP BY site, plot",
        (since, now_ns)):
        if _matches(site, sites):
            d = day(site, plot)
            d.readings, d.air_min_c, d.air_max_c = n, low, high
    # Gauges of a plot (two nodes, or a WS90's piezo beside its tipping bucket) measure the
    # same rain: the plot's rain is the largest total of any one gauge, never their sum,
    # as for the rules' unless_rain (docs/rules.md).
    for site, plot, rain in store.execute(
        "SELECT site, plot, max(mm) FROM (SELECT site, plot, sum(rain_mm) AS mm"
        " FROM reading WHERE time_ns > ? AND time_ns <= ? AND rain_mm IS NOT NULL"
        " GROUP BY site, plot, node, sensor) GROUP BY site, plot", (since, now_ns)):
        if _matches(site, sites):
            day(site, plot).rain_mm = rain
    # SQLite: a bare column next to max()/min() comes from the row holding that extreme.
    first = {(site, plot, sensor): value for site, plot, sensor, value, _ in store.execute(
        "SELECT site, plot, sensor, soil_moisture_pct, min(time_ns) FROM reading"
        " WHERE time_ns > ? AND time_ns <= ? AND soil_moisture_pct IS NOT NULL"
        " GROUP BY site, plot, sensor", (since, now_ns))}
    for site, plot, sensor, value, _ in store.execute(
        "SELECT site, plot, sensor, soil_moisture_pct, max(time_ns) FROM reading"
        " WHERE time_ns > ? AND time_ns <= ? AND soil_moisture_pct IS NOT NULL"
        " GROUP BY site, plot, sensor ORDER BY sensor", (since, now_ns)):
        if _matches(site, sites):
            start = first.get((site, plot, sensor))
            day(site, plot).soil.append(
                SoilLine(sensor, value, None if start is None else value - start))
    for row in store.active_alerts():
        if row["state"] == "firing" and _matches(row["site"], sites):
            day(row["site"], row["plot"]).alerts.append(AlertEvent.from_row(row))
    return sorted(days.values(), key=_plot_order)


def _plot_order(d: PlotDay) -> tuple[int, str, str]:
    worst = min((_SEVERITY_ORDER.get(a.severity, 3) for a in d.alerts), default=4)
    return worst, d.site, d.plot


def _number(value: float) -> str:
    return f"{value:.1f}"  # what a grower reads; the dashboards have the full precision


def compose(plots: Sequence[PlotDay], language: str, tz: ZoneInfo, now_ns: int
            ) -> tuple[str, str]:
    """(title, body) of the summary in ``language`` (``en`` or ``ja``), times in ``tz``."""
    words = WORDS.get(language, WORDS["en"])
    local = datetime.fromtimestamp(now_ns / 1e9, UTC).astimezone(tz)
    site_names = sorted({d.site for d in plots})
    title = words.title.format(site=", ".join(site_names) or "—",
                               date=local.strftime(words.date))
    lines: list[str] = []
    for d in plots[:MAX_PLOTS]:
        crop = "" if not d.crop else f"（{d.crop}）" if language == "ja" else f" ({d.crop})"
        lines.append(f"■ {d.plot}{crop}" + (f" [{d.site}]" if len(site_names) > 1 else ""))
        for alert in d.alerts:
            text = alert.text.get(language) or alert.text.get("en")
            summary = text.summary if text else alert.message(language)
            lines.append(f"• {words.firing}{summary}")
            if text and text.action:
                lines.append(f"  {words.action}{text.action}")
        if not d.readings:
            lines.append(f"• {words.no_data}")
            continue
        if not d.alerts:
            lines.append(f"• {words.all_fine}")
        for soil in d.soil:
            change = "" if soil.change is None else words.change.format(delta=soil.change)
            lines.append("• " + words.soil.format(
                sensor=soil.sensor, value=_number(soil.latest),
                change=change))
        weather = []
        if d.air_min_c is not None and d.air_max_c is not None:
            weather.append(words.air.format(low=_number(d.air_min_c),
                                            high=_number(d.air_max_c)))
        if d.rain_mm is not None:
            weather.append(words.rain.format(mm=d.rain_mm))
        if weather:
            lines.append("• " + ("、" if language == "ja" else ", ").join(weather))
    if len(plots) > MAX_PLOTS:
        lines.append(words.more_plots.format(n=len(plots) - MAX_PLOTS))
    lines += ["", words.footer.format(time=local_time(now_ns, tz))]
    return title, "\n".join(lines)
