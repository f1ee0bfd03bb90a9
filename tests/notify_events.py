"""Alert transitions for the notifier tests, built the way the rules engine builds them."""

from __future__ import annotations

from typing import Any

from rules.alert import AlertEvent, AlertText

S = 1_000_000_000
T0 = 1_782_871_200 * S  # 2026-07-01 02:00 UTC = 11:00 JST


def event(
    state: str = "firing",
    *,
    rule: str = "tomato.soil_dry",
    plot: str = "p3",
    node: str | None = None,
    sensor: str = "soil_10cm",
    site: str = "kamiyama",
    severity: str = "warning",
    t: int = T0,
    previous: str | None = None,
    since: int | None = None,
    labels: dict[str, str] | None = None,
    value: float | None = 21.5,
    **text: Any,
) -> AlertEvent:
    """``previous`` defaults to what the engine writes: pending -> firing -> resolved."""
    node = node or f"n-{plot}"
    prev = previous or {"pending": "inactive", "firing": "pending", "resolved": "firing"}[state]
    return AlertEvent(
        time_ns=t, rule=rule, severity=severity, state=state, previous=prev, site=site,
        plot=plot, node=node, sensor=sensor, value=value,
        since_ns=t - 600 * S if since is None else since,
        text={
            "en": AlertText(text.get("en", f"Plot {plot}: soil is dry ({rule})"),
                            "Roots stop taking up water below 25 %.", "Water today."),
            "ja": AlertText(text.get("ja", f"{plot}: 土が乾いています（{rule}）"),
                            "25 %を下回ると根が水を吸えません。", "今日中に水やりを。"),
        },
        labels={"crop": "tomato", **(labels or {})},
    )
