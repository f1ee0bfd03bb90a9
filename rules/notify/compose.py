"""The text of a notification, in the recipient's language; pure.

Title: severity, site and the first alert's summary (``[Warning] kamiyama: Plot p3: soil
is dry (+4 more)``). Body: the firing alerts, one line each with the time it fired (the
alert's own time, so a message delivered late after an outage still says when it
happened), then why it matters and what to do (each distinct text once), then what
cleared, then a footer with the time the message was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo

from rules.alert import AlertEvent, AlertText
from rules.notify.grouping import Notification

#: Alerts listed per section; the rest are counted. Keeps a message within what chat
#: services take (LINE: 5,000 characters) when a whole site goes dry at once.
MAX_LISTED: Final = 20


@dataclass(frozen=True, slots=True)
class Words:
    severity: dict[str, str]
    resolved_title: str
    reminder: str
    firing: str  # header with {n}
    resolved: str
    more: str  # title suffix with {n}
    new: str
    why: str
    action: str
    cleared_since: str  # resolved line: {time} cleared, {since} began
    footer: str  # {site} {time}
    unlisted: str  # {n}


WORDS: Final[dict[str, Words]] = {
    "en": Words(
        severity={"info": "Info", "warning": "Warning", "critical": "CRITICAL"},
        resolved_title="Resolved",
        reminder="Reminder: ",
        firing="Firing ({n}):",
        resolved="Resolved ({n}):",
        more=" (+{n} more)",
        new=" (new)",
        why="Why: ",
        action="What to do: ",
        cleared_since="cleared {time} (since {since})",
        footer="— Satoyama, {site}, written {time}",
        unlisted="• … and {n} more",
    ),
    "ja": Words(
        severity={"info": "お知らせ", "warning": "注意", "critical": "緊急"},
        resolved_title="解消",
        reminder="再通知: ",
        firing="発生中（{n}件）:",
        resolved="解消（{n}件）:",
        more="（他{n}件）",
        new="（新規）",
        why="理由: ",
        action="対処: ",
        cleared_since="{time}に解消（{since}から）",
        footer="— Satoyama {site}・{time}作成",
        unlisted="• …ほか{n}件",
    ),
}


def local_time(time_ns: int, tz: ZoneInfo) -> str:
    """``2026-07-01 03:12 JST``: a time as the recipient reads it."""
    return datetime.fromtimestamp(time_ns / 1e9, UTC).astimezone(tz).strftime(
        "%Y-%m-%d %H:%M %Z")


def _text(event: AlertEvent, language: str) -> AlertText:
    return event.text.get(language) or event.text.get("en") or AlertText(
        event.message(language))


def _unique(items: list[str]) -> list[str]:
    return [t for i, t in enumerate(items) if t and t not in items[:i]]


def compose(note: Notification, language: str, tz: ZoneInfo) -> tuple[str, str]:
    """(title, body) of ``note`` in ``language`` (``en`` or ``ja``), times in ``tz``."""
    words = WORDS.get(language, WORDS["en"])
    events = note.firing or note.resolved
    site = ", ".join(_unique([e.site for e in events]))
    head = _text(events[0], language).summary
    more = len(note.firing) + len(note.resolved) - 1
    label = words.severity.get(note.severity, note.severity) if note.firing else (
        words.resolved_title)
    title = f"[{label}] {site}: {head}" + (words.more.format(n=more) if more else "")
    if note.kind == "reminder":
        title = words.reminder + title

    lines: list[str] = []
    if note.firing:
        lines.append(words.firing.format(n=len(note.firing)))
        for e in note.firing[:MAX_LISTED]:
            mark = words.new if note.kind == "update" and e.fingerprint in note.new else ""
            lines.append(f"• {local_time(e.time_ns, tz)}{mark}  {_text(e, language).summary}")
        if len(note.firing) > MAX_LISTED:
            lines.append(words.unlisted.format(n=len(note.firing) - MAX_LISTED))
        texts = [_text(e, language) for e in note.firing]
        lines.extend(words.why + t for t in _unique([t.why for t in texts]))
        lines.extend(words.action + t for t in _unique([t.action for t in texts]))
    if note.resolved:
        if lines:
            lines.append("")
        lines.append(words.resolved.format(n=len(note.resolved)))
        for e in note.resolved[:MAX_LISTED]:
            when = words.cleared_since.format(time=local_time(e.time_ns, tz),
                                              since=local_time(e.since_ns, tz))
            lines.append(f"• {_text(e, language).summary} — {when}")
        if len(note.resolved) > MAX_LISTED:
            lines.append(words.unlisted.format(n=len(note.resolved) - MAX_LISTED))
    lines += ["", words.footer.format(site=site, time=local_time(note.time_ns, tz))]
    return title, "\n".join(lines)
