"""Grouping and timing of notifications, the way Prometheus Alertmanager does it; pure.

Each recipient has its own groups; a group holds the alerts with equal ``group_by``
values (``[site, rule]``: every dry plot of one site). A group's messages:

* the **first** ``group_wait_s`` after the notifier saw the group's first alert, so
  alerts raised together (five plots drying in the same afternoon) go out as one message;
* an **update** when alerts were added or cleared, at least ``group_interval_s`` after
  the previous message;
* a **reminder** of alerts still firing after ``repeat_interval_s`` without news.

Quiet hours hold a message back (it goes out when they end) unless an alert in it at or
above the recipient's ``override_severity`` is firing. Inhibited alerts are left out of
messages while their source fires, and are sent as new once it clears. A resolution is
only sent to recipients who were told the alert fired; an alert that clears before
anyone was told is forgotten quietly.

:class:`Planner` holds the state (groups, and the firing alerts that can inhibit), takes
transitions with :meth:`Planner.observe` and says what to send with :meth:`Planner.due`;
time is always passed in. The dispatcher saves the state with the messages it queues, in
one transaction, so a restart neither forgets a group nor sends a message twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

from gateway.config.notifications import NotificationsConfig
from rules.alert import AlertEvent
from rules.notify.inhibit import is_inhibited, is_source
from rules.notify.matchers import label
from rules.notify.quiet import is_quiet
from rules.notify.router import at_least, recipients_for, severity_rank

NS = 1_000_000_000
Kind = Literal["first", "update", "reminder"]
GroupId = tuple[str, tuple[str, ...]]  # (recipient, group_by values)


@dataclass(slots=True)
class Slot:
    """One alert in one recipient's group: its latest transition, and whether this
    recipient has been told it fires."""

    event: AlertEvent
    told_firing: bool = False


@dataclass(slots=True)
class Group:
    recipient: str
    key: tuple[str, ...]
    created_ns: int
    alerts: dict[str, Slot] = field(default_factory=dict)  # by fingerprint
    last_sent_ns: int | None = None

    @property
    def id(self) -> GroupId:
        return (self.recipient, self.key)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one recipient about one group, planned at ``time_ns``."""

    recipient: str
    key: tuple[str, ...]
    kind: Kind
    time_ns: int
    firing: tuple[AlertEvent, ...]  # most severe first, then oldest
    resolved: tuple[AlertEvent, ...]
    new: frozenset[str]  # fingerprints of the firing alerts this recipient hears of first

    @property
    def severity(self) -> str:
        events = self.firing or self.resolved
        return max((e.severity for e in events), key=severity_rank)


def _order(events: Iterable[AlertEvent]) -> tuple[AlertEvent, ...]:
    return tuple(sorted(events, key=lambda e: (-severity_rank(e.severity), e.time_ns,
                                               e.plot, e.node, e.sensor, e.rule)))


class Planner:
    """Groups, timers and inhibition state of the notifier (see the module doc)."""

    def __init__(
        self,
        cfg: NotificationsConfig,
        default_tz: ZoneInfo,
        groups: Iterable[Group] = (),
        sources: Iterable[AlertEvent] = (),
    ) -> None:
        self.cfg = cfg
        self.groups: dict[GroupId, Group] = {g.id: g for g in groups}
        self.sources: dict[str, AlertEvent] = {e.fingerprint: e for e in sources}
        self.zones: Mapping[str, ZoneInfo] = {
            name: ZoneInfo(r.timezone) if r.timezone else default_tz
            for name, r in cfg.recipients.items()
        }
        # What changed since the caller last saved (it clears these after saving).
        self.changed_groups: set[GroupId] = set()
        self.changed_sources: set[str] = set()

    # ------------------------------------------------------------------ input

    def observe(self, event: AlertEvent, now_ns: int) -> None:
        """Take one transition from the alert outbox, seen at ``now_ns``."""
        fp = event.fingerprint
        if is_source(self.cfg.inhibit, event):
            if event.state == "firing":
                self.sources[fp] = event
                self.changed_sources.add(fp)
            elif fp in self.sources:
                del self.sources[fp]
                self.changed_sources.add(fp)
        if not event.notifiable:
            return
        group_by = self.cfg.grouping.group_by
        key = tuple(label(event, name) for name in group_by)
        for recipient in recipients_for(self.cfg, event):
            gid = (recipient, key)
            if event.state == "firing":
                group = self.groups.get(gid)
                if group is None:
                    # From when the notifier sees it, as Alertmanager does: alerts of a
                    # backlog, or from nodes that upload late, still gather into one message.
                    group = self.groups[gid] = Group(recipient, key, now_ns)
                slot = group.alerts.get(fp)
                if slot is None:
                    group.alerts[fp] = Slot(event)
                else:
                    slot.event = event
                self.changed_groups.add(gid)
                continue
            group = self.groups.get(gid)
            slot = group.alerts.get(fp) if group is not None else None
            if group is None or slot is None:
                continue
            if slot.told_firing and self.cfg.recipients[recipient].send_resolved:
                slot.event = event  # a resolution to tell at the next message
            else:
                del group.alerts[fp]  # nobody heard of it: nothing to take back
                if not group.alerts:
                    del self.groups[gid]
            self.changed_groups.add(gid)

    # ------------------------------------------------------------------ output

    def due(self, now_ns: int) -> list[Notification]:
        """The messages to send at ``now_ns``; the state records them as sent."""
        out: list[Notification] = []
        for gid in sorted(self.groups):
            note = self._due(self.groups[gid], now_ns)
            if note is not None:
                out.append(note)
        return out

    def _visible(self, event: AlertEvent) -> bool:
        return not is_inhibited(self.cfg.inhibit, event, self.sources.values())

    def _due(self, group: Group, now_ns: int) -> Notification | None:
        recipient = self.cfg.recipients.get(group.recipient)
        if recipient is None:  # removed from the config since: forget its groups
            del self.groups[group.id]
            self.changed_groups.add(group.id)
            return None
        firing = [s for s in group.alerts.values()
                  if s.event.state == "firing" and self._visible(s.event)]
        resolved = [s for s in group.alerts.values() if s.event.state == "resolved"]
        if not firing and not resolved:
            return None  # only inhibited alerts: wait until their source clears
        new = [s for s in firing if not s.told_firing]
        timing = self.cfg.grouping
        if group.last_sent_ns is None:
            kind: Kind = "first"
            due_ns = group.created_ns + int(timing.group_wait_s * NS)
        elif new or resolved:
            kind = "update"
            due_ns = group.last_sent_ns + int(timing.group_interval_s * NS)
        elif firing:
            kind = "reminder"
            due_ns = group.last_sent_ns + int(timing.repeat_interval_s * NS)
        else:
            return None
        if now_ns < due_ns:
            return None
        quiet = recipient.quiet_hours
        if (
            quiet is not None
            and is_quiet(quiet, now_ns, self.zones[group.recipient])
            and not any(at_least(s.event.severity, quiet.override_severity) for s in firing)
        ):
            return None  # held back until the quiet hours end
        note = Notification(
            recipient=group.recipient, key=group.key, kind=kind, time_ns=now_ns,
            firing=_order(s.event for s in firing),
            resolved=_order(s.event for s in resolved),
            new=frozenset(s.event.fingerprint for s in new),
        )
        for slot in firing:
            slot.told_firing = True
        for slot in resolved:
            del group.alerts[slot.event.fingerprint]
        group.last_sent_ns = now_ns
        if not group.alerts:
            del self.groups[group.id]
        self.changed_groups.add(group.id)
        return note
