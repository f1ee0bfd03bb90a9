"""Which recipients hear about an alert: routes, then each recipient's minimum severity."""

from __future__ import annotations

from gateway.config.notifications import NotificationsConfig
from rules.alert import SEVERITIES, AlertEvent
from rules.notify.matchers import matches


def severity_rank(severity: str) -> int:
    """info 0, warning 1, critical 2; an unknown severity ranks as critical, so a typo
    in a rule file cannot hide an alert."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES) - 1


def at_least(severity: str, minimum: str) -> bool:
    return severity_rank(severity) >= severity_rank(minimum)


def recipients_for(cfg: NotificationsConfig, event: AlertEvent) -> list[str]:
    """Names of the recipients of ``event``, in config order.

    Every route whose matcher matches adds its recipients; without routes, every
    recipient is a candidate. A recipient then keeps only alerts at or above its
    ``min_severity``.
    """
    if cfg.routes:
        wanted = {name for route in cfg.routes if matches(route.match, event)
                  for name in route.recipients}
    else:
        wanted = set(cfg.recipients)
    return [
        name for name, recipient in cfg.recipients.items()
        if name in wanted and at_least(event.severity, recipient.min_severity)
    ]
