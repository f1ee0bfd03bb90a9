"""What the rules engine says: alert transitions, as stored, published and notified.

An *alert* is one rule firing for one series: a (site, plot, node, sensor) the rule's
selector matched, so "soil dry" on plot 3 and on plot 5 are two alerts of one rule. Its
``fingerprint`` names it stably across restarts (rule name + series). Every change of state
is one :class:`AlertEvent`; the engine emits them, the store appends them to the ``alert``
outbox table (DESIGN.md "Storage"), and the consumers of that table (InfluxDB sink for
Grafana annotations, MQTT alert publisher, notifier) each read it with their own cursor.

States follow Prometheus: ``pending`` (condition true, waiting out ``for``/confirmations),
``firing``, ``resolved``. A pending alert whose condition clears before it fires is also
written as ``resolved`` with ``previous == "pending"``; notifiers ignore those.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

State = Literal["pending", "firing", "resolved"]
Severity = Literal["info", "warning", "critical"]
SEVERITIES: Final[tuple[str, ...]] = ("info", "warning", "critical")
LANGUAGES: Final[tuple[str, ...]] = ("en", "ja")


@dataclass(frozen=True, slots=True)
class AlertText:
    """What people read, in one language: one line, why it matters, what to do."""

    summary: str
    why: str = ""
    action: str = ""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One transition of one alert.

    ``time_ns`` is when the transition happened by the data (the reading that crossed the
    threshold, or the scheduler tick that saw a node silent), UTC ns. ``since_ns`` is when
    the alert instance became pending. ``text`` holds the rendered texts by language code.
    ``labels`` carries extra context for routing and grouping (``crop``, ``quantity``...).
    """

    time_ns: int
    rule: str
    severity: str
    state: str
    previous: str  # inactive | pending | firing
    site: str
    plot: str
    node: str
    sensor: str
    value: float | None
    since_ns: int
    text: dict[str, AlertText] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.site, self.plot, self.node, self.sensor)

    @property
    def notifiable(self) -> bool:
        """Firing, or resolved after firing: what people are told about."""
        return self.state == "firing" or (self.state == "resolved" and self.previous == "firing")

    def message(self, language: str = "en") -> str:
        """The one-line summary in ``language`` (English if that one is missing)."""
        text = self.text.get(language) or self.text.get("en")
        if text is None:
            return f"{self.rule} {self.state} on {self.site}/{self.plot}/{self.node}"
        return text.summary

    def detail_json(self) -> str:
        """Texts and labels as stored in the ``alert`` table's ``detail`` column."""
        return json.dumps(
            {"text": {k: asdict(v) for k, v in self.text.items()}, "labels": self.labels},
            ensure_ascii=False, sort_keys=True,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AlertEvent:
        """An event back from an ``alert`` outbox row (see :meth:`Store.alert_rows`)."""
        detail = json.loads(row.get("detail") or "{}")
        return cls(
            time_ns=int(row["time_ns"]),
            rule=row["rule"],
            severity=row["severity"],
            state=row["state"],
            previous=row["previous"],
            site=row["site"],
            plot=row["plot"],
            node=row["node"],
            sensor=row["sensor"],
            value=None if row["value"] is None else float(row["value"]),
            since_ns=int(row["since_ns"]),
            text={k: AlertText(**v) for k, v in detail.get("text", {}).items()},
            labels=dict(detail.get("labels", {})),
        )


def fingerprint(rule: str, site: str, plot: str, node: str, sensor: str) -> str:
    """Stable short id of one alert instance (16 hex digits)."""
    key = "\x1f".join((rule, site, plot, node, sensor)).encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()
