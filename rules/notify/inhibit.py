"""Inhibition: while a source alert fires, matching target alerts with equal labels are
not sent (Alertmanager's ``inhibit_rules``). "Gateway offline" explains every "node
silent" of its site; one message about the cause is worth more than twenty symptoms."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.config.notifications import InhibitRule
from rules.alert import AlertEvent
from rules.notify.matchers import label, matches


def is_inhibited(
    rules: Iterable[InhibitRule], event: AlertEvent, firing: Iterable[AlertEvent]
) -> bool:
    """Whether ``event`` is silenced by one of the ``firing`` alerts.

    As in Alertmanager, an alert that matches both sides of a rule cannot be silenced by
    alerts that also match both (itself included): with a rule "node_silent silences
    node_silent", two silent nodes would otherwise silence each other and nobody hears.
    """
    sources = list(firing)
    for rule in rules:
        if not matches(rule.target, event):
            continue
        both = matches(rule.source, event)
        for source in sources:
            if (
                source.fingerprint != event.fingerprint
                and matches(rule.source, source)
                and not (both and matches(rule.target, source))
                and all(label(source, name) == label(event, name) for name in rule.equal)
            ):
                return True
    return False


def is_source(rules: Iterable[InhibitRule], event: AlertEvent) -> bool:
    """Whether ``event`` can inhibit others (only those need remembering while firing)."""
    return any(matches(rule.source, event) for rule in rules)
