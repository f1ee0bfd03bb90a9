"""The ``notifications:`` section: who is told about which alerts, how and when.

Recipients hold apprise URLs (secrets: a URL carries the token or password of its service),
a language and quiet hours; routes pick recipients by what an alert is about; grouping
turns five dry plots into one message; inhibition keeps a gateway-offline alert from
being drowned by the "node silent" alerts it causes. docs/alerts.md explains each part
with examples; docs/configuration.md lists every key (generated from these models).
"""

from __future__ import annotations

import difflib
import re
from datetime import time
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from gateway.config.base import Name, Section, check_timezone, config_error, hint
from rules.notify.apprise_urls import url_problem

Severity = Literal["info", "warning", "critical"]
Language = Literal["en", "ja"]

#: Alert fields that routing, grouping and inhibition can name; any other name is a label
#: of the alert (``crop``, ``quantity``...).
ALERT_FIELDS = ("rule", "severity", "site", "plot", "node", "sensor")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_label_name(name: str) -> str:
    if not _LABEL_NAME.match(name):
        raise config_error(
            f"{name!r} is not a label name",
            f"use one of {', '.join(ALERT_FIELDS)} or a rule label such as crop",
        )
    return name


LabelName = Annotated[str, AfterValidator(_check_label_name)]
Pattern = Annotated[str, Field(min_length=1)]


class Matcher(Section):
    """Which alerts a route or an inhibition rule is about. Every key given must match
    (and); within a key, any of the listed values (or). Values are shell-style patterns:
    `tomato.*`, `p?`, `*`. An empty matcher matches every alert."""

    rule: list[Pattern] | None = Field(
        default=None, description="Rule names, e.g. `[tomato.soil_dry, \"frost.*\"]`."
    )
    severity: list[Severity] | None = Field(
        default=None, description="Severities: `info`, `warning`, `critical`."
    )
    site: list[Pattern] | None = Field(default=None, description="Site names.")
    plot: list[Pattern] | None = Field(default=None, description="Plot names.")
    node: list[Pattern] | None = Field(default=None, description="Node names.")
    sensor: list[Pattern] | None = Field(
        default=None, description="Sensor tags (`main`, `soil_10cm`, ...)."
    )
    labels: dict[LabelName, list[Pattern]] = Field(
        default_factory=dict,
        description="Other labels of the alert, e.g. `{crop: [tomato, strawberry]}`.",
    )


class QuietHours(Section):
    """A daily time window in the recipient's time zone in which only alerts at or above
    `override_severity` are sent; the rest wait until the window ends (nothing is
    dropped)."""

    start: time = Field(
        description="Start of the quiet window, `HH:MM`.",
        json_schema_extra=hint('write it quoted: start: "21:00"'),
    )
    end: time = Field(
        description="End of the quiet window, `HH:MM`; earlier than `start` means the "
        "next morning.",
        json_schema_extra=hint('write it quoted: end: "06:00"'),
    )
    override_severity: Severity = Field(
        default="critical",
        description="Alerts at or above this severity are sent even in the quiet window "
        "(frost at 3 a.m. must wake someone).",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise config_error(
                "start and end are equal: the window would be empty",
                "leave quiet_hours out to send at any hour",
                fields=("end",),
            )
        return self


def _check_urls(urls: list[SecretStr]) -> list[SecretStr]:
    for i, url in enumerate(urls):
        problem = url_problem(url.get_secret_value())
        if problem is not None:
            # The URL itself is a secret: the message names its position and scheme only.
            raise config_error(
                f"urls[{i}]: {problem}",
                "see https://appriseit.com/ for the URL form of each service "
                "(docs/alerts.md lists the common ones)",
            )
    return urls


class DailySummary(Section):
    """One message a day at a fixed hour: each plot's soil moisture and weather over the
    last 24 hours and the alerts still firing. It comes on quiet days too, so a missing
    summary itself says that something is wrong with the gateway or its link."""

    at: time = Field(
        description="Local time of day to send it, `HH:MM` (the recipient's time zone).",
        json_schema_extra=hint('write it quoted: at: "06:30"'),
    )
    sites: list[Pattern] | None = Field(
        default=None, description="Sites to cover (shell patterns; default: all)."
    )


class Recipient(Section):
    """A person or group and the services that reach them."""

    urls: Annotated[list[SecretStr], AfterValidator(_check_urls)] = Field(
        min_length=1,
        description="apprise URLs, one per service (secret: they carry tokens and "
        "passwords), e.g. `mailtos://user:pass@example.org`, `line://TOKEN/USERID`, "
        "`ntfys://topic`, `json://host/path`.",
        json_schema_extra=hint(
            "keep tokens out of the file: SATOYAMA_NOTIFICATIONS__RECIPIENTS__<NAME>__URLS="
            "'[\"line://...\"]'"
        ),
    )
    language: Language = Field(
        default="ja", description="Language of the messages: `ja` or `en`."
    )
    min_severity: Severity = Field(
        default="warning", description="Alerts below this severity are not sent here."
    )
    timezone: str | None = Field(
        default=None,
        description="IANA time zone for quiet hours and times in messages (default: the "
        "top-level `timezone`).",
    )
    quiet_hours: QuietHours | None = Field(
        default=None, description="Hours in which only urgent alerts are sent."
    )
    send_resolved: bool = Field(
        default=True, description="Also say when an alert that was sent here has cleared."
    )
    daily_summary: DailySummary | None = Field(
        default=None,
        description="A summary of every plot once a day (docs/alerts.md, \"Daily summary\").",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str | None) -> str | None:
        return None if name is None else check_timezone(name)


class Route(Section):
    """Alerts matching `match` go to `recipients`. Every matching route applies."""

    match: Matcher = Field(
        default_factory=lambda: Matcher(), description="Which alerts (default: all)."
    )
    recipients: list[Name] = Field(min_length=1, description="Names from `recipients`.")


class Grouping(Section):
    """How alerts are gathered into messages (as Prometheus Alertmanager does)."""

    group_by: list[LabelName] = Field(
        default_factory=lambda: ["site", "rule"],
        description="Alerts with equal values of these go into one message: "
        "`[site, rule]` sends one message for five dry plots.",
    )
    group_wait_s: float = Field(
        default=30.0, ge=0,
        description="Wait this long after a group's first alert before the first message, "
        "so alerts raised together are sent together.",
    )
    group_interval_s: float = Field(
        default=300.0, ge=0,
        description="Wait at least this long between messages about one group when alerts "
        "are added to it or clear.",
    )
    repeat_interval_s: float = Field(
        default=4 * 3600.0, gt=0,
        description="Remind of alerts still firing after this long without news.",
    )


class InhibitRule(Section):
    """While an alert matching `source` is firing, alerts matching `target` with the same
    values of `equal` are not sent (e.g. a gateway offline silences its nodes' "silent"
    alerts)."""

    source: Matcher = Field(description="The alert that explains the others.")
    target: Matcher = Field(description="The alerts it makes redundant.")
    equal: list[LabelName] = Field(
        default_factory=lambda: ["site"],
        description="Labels that must be equal in source and target.",
    )


class NotificationsConfig(Section):
    """Alert notifications through apprise (e-mail, LINE, ntfy, Telegram, Slack,
    webhooks...). Off while there are no recipients."""

    enabled: bool = Field(
        default=True, description="Set false to keep the section but send nothing."
    )
    recipients: dict[Name, Recipient] = Field(
        default_factory=dict, description="Who can be notified, by name."
    )
    routes: list[Route] = Field(
        default_factory=list,
        description="Which alerts go to whom. Without routes every recipient gets every "
        "alert at or above its `min_severity`.",
    )
    grouping: Grouping = Field(
        default_factory=lambda: Grouping(), description="Gathering alerts into messages."
    )
    inhibit: list[InhibitRule] = Field(
        default_factory=list, description="Alerts that silence others while they fire."
    )
    retry_initial_s: float = Field(
        default=10.0, gt=0,
        description="First wait before sending a message again after a service failed.",
    )
    retry_max_s: float = Field(
        default=600.0, gt=0,
        description="Longest wait between attempts; messages are kept until sent.",
    )
    keep_sent_days: float = Field(
        default=30.0, ge=0,
        description="Sent messages are kept this long in the store (for `status` and "
        "audits); 0 keeps them forever.",
    )

    @model_validator(mode="after")
    def _routes_name_recipients(self) -> NotificationsConfig:
        for route in self.routes:
            for name in route.recipients:
                if name not in self.recipients:
                    close = difflib.get_close_matches(name, list(self.recipients), n=1)
                    known = ", ".join(self.recipients) or "(none yet)"
                    raise config_error(
                        f"route recipient {name!r} is not in notifications.recipients",
                        (f"did you mean {close[0]!r}? " if close else "")
                        + f"recipients: {known}",
                        fields=("routes",),
                    )
        return self

    @property
    def active(self) -> bool:
        """Whether anything can be sent at all."""
        return self.enabled and bool(self.recipients)
