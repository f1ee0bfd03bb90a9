"""From settings to a running rules engine: which rules, which nodes, which clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.config import Settings
from rules.alert import AlertEvent
from rules.engine import UNASSIGNED_PLOT, Engine, NodeContext
from rules.loader import load_rule_files
from rules.runner import RulesRunner


def node_contexts(settings: Settings) -> dict[str, NodeContext]:
    """Crop, site, plot and probe depths of every registered node (rules scope by crop;
    texts name the depth of a soil probe, also of one on ``main``; a restart retires the
    alerts of a node registered elsewhere since).

    The site is the registry's own, None when it names none: then a restored alert of the
    node is not retired for its site, only for its plot and crop (a site renamed in the
    config keeps its alerts rather than resolving them all)."""
    return {
        node: NodeContext(crop=dev.crop, site=dev.site, plot=dev.plot,
                          depth_cm={tag: s.depth_cm for tag, s in (dev.sensors or {}).items()
                                    if s.depth_cm is not None})
        for node, dev in settings.devices.items()
    }


def build_runner(
    settings: Settings,
    store_path: Path,
    *,
    tick_interval_s: float = 60.0,
    on_events: Callable[[list[AlertEvent]], None] | None = None,
    time_scale: float = 1.0,
) -> RulesRunner | None:
    """A runner for the configured rule files, or None when there are none."""
    if not settings.rules:
        return None
    rules = load_rule_files(list(settings.rules))
    nodes = node_contexts(settings)

    def make_engine(states: dict[tuple[str, str], str]) -> Engine:
        return Engine(rules, timezone=settings.timezone, nodes=nodes, states=states,
                      time_scale=time_scale)

    registered = [(n.site or settings.site, n.plot or UNASSIGNED_PLOT, node)
                  for node, n in nodes.items()]
    return RulesRunner(store_path, make_engine,
                       tick_interval_s=max(1.0, tick_interval_s / time_scale),
                       registered_nodes=registered, on_events=on_events)


__all__ = ["AlertEvent", "build_runner", "node_contexts"]
