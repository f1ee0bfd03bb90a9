"""Whether an alert matches a :class:`~gateway.config.notifications.Matcher`, and the label values
routing, grouping and inhibition read from an alert."""

from __future__ import annotations

from fnmatch import fnmatchcase

from gateway.config.notifications import ALERT_FIELDS, Matcher
from rules.alert import AlertEvent


def label(event: AlertEvent, name: str) -> str:
    """The value of ``name``: an alert field (rule, severity, site, plot, node, sensor) or
    one of its labels (``crop``...); "" if the alert has no such label."""
    if name in ALERT_FIELDS:
        return str(getattr(event, name))
    return event.labels.get(name, "")


def _any(value: str, patterns: list[str] | None) -> bool:
    return patterns is None or any(fnmatchcase(value, p) for p in patterns)


def matches(matcher: Matcher, event: AlertEvent) -> bool:
    """Every key the matcher gives matches (any of its patterns); an empty one matches."""
    return (
        _any(event.rule, matcher.rule)
        and (matcher.severity is None or event.severity in matcher.severity)
        and _any(event.site, matcher.site)
        and _any(event.plot, matcher.plot)
        and _any(event.node, matcher.node)
        and _any(event.sensor, matcher.sensor)
        and all(_any(event.labels.get(k, ""), v) for k, v in matcher.labels.items())
    )
