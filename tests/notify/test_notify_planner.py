"""The notifier's pure core: routing, grouping, timers, quiet hours, inhibition.

Table-driven: every case is in cases/planner.yaml (a new case needs no code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from notify_events import T0, S, event

from gateway.config.notifications import NotificationsConfig
from rules.notify.grouping import Notification, Planner

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "planner.yaml").read_text())
DEFAULT_RULE = "tomato.soil_dry"
DEFAULT_CONFIG: dict[str, Any] = {
    "recipients": {"grower": {"urls": ["json://127.0.0.1:9/hook"], "language": "en"}},
    "grouping": {"group_by": ["site", "rule"], "group_wait_s": 30, "group_interval_s": 300,
                 "repeat_interval_s": 3600},
}


def _name(rule: str, plot: str) -> str:
    return plot if rule == DEFAULT_RULE else f"{rule}@{plot}"


def _seen(note: Notification) -> dict[str, Any]:
    out: dict[str, Any] = {"to": note.recipient, "kind": note.kind}
    if note.firing:
        out["firing"] = [_name(e.rule, e.plot) for e in note.firing]
    if note.resolved:
        out["resolved"] = [_name(e.rule, e.plot) for e in note.resolved]
    if note.kind == "update" and note.new and len(note.new) < len(note.firing):
        out["new"] = [_name(e.rule, e.plot) for e in note.firing if e.fingerprint in note.new]
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_planner_case(case: dict[str, Any]) -> None:
    cfg = NotificationsConfig(**{**DEFAULT_CONFIG, **case.get("config", {})})
    planner = Planner(cfg, ZoneInfo("Asia/Tokyo"))
    for step in case["steps"]:
        now = T0 + int(step["at"] * S)
        for spec in step.get("events", []):
            planner.observe(event(t=now, **spec), now)
        if "expect" in step:
            got = [_seen(n) for n in planner.due(now)]
            assert got == step["expect"], f"at {step['at']} s"
