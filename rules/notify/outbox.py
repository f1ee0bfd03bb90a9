"""The notifier's tables in the gateway's SQLite store: its plan state and its messages.

``notify_group`` and ``notify_source`` hold the :class:`~rules.notify.grouping.Planner`
state (groups with their alerts and timers; the firing alerts that can inhibit others).
``notify_message`` is the notifier's own outbox: one row per message and apprise URL,
written with the plan state and the notifier's cursor over the ``alert`` table in one
transaction, and marked ``sent_ns`` only after apprise reported success. A URL is a
secret, so a row names it by ``target`` (a hash of the URL) and its scheme only.

Why the store's file (through a second :class:`~gateway.store.sqlite.Store` connection,
as the InfluxDB sink has) and not a file of its own: the cursor over ``alert`` and the
messages it produced must commit together, or a crash between two files would lose or
repeat a message. WAL lets this connection read and write while the pipeline commits;
SQLite serialises the writers (``busy_timeout``), and each transaction here is small.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from gateway.store.sqlite import Store
from rules.alert import AlertEvent
from rules.notify.grouping import Group, GroupId, Slot

CONSUMER: Final = "notify"

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS notify_group (
    recipient TEXT NOT NULL,
    group_key TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (recipient, group_key)
);
CREATE TABLE IF NOT EXISTS notify_source (fingerprint TEXT PRIMARY KEY, event TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notify_message (
    id INTEGER PRIMARY KEY,
    created_ns INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    target TEXT NOT NULL,
    scheme TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    apprise_type TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    alerts TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_ns INTEGER NOT NULL,
    sent_ns INTEGER,
    dropped TEXT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS notify_message_unsent ON notify_message (id)
    WHERE sent_ns IS NULL AND dropped IS NULL;
CREATE TABLE IF NOT EXISTS notify_summary (
    recipient TEXT NOT NULL,
    day TEXT NOT NULL,
    queued_ns INTEGER NOT NULL,
    PRIMARY KEY (recipient, day)
);
"""


def target_id(url: str) -> str:
    """A stable name for an apprise URL that does not reveal it."""
    return hashlib.blake2b(url.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Message:
    """One message for one apprise URL of one recipient."""

    recipient: str
    target: str
    scheme: str
    kind: str
    severity: str
    apprise_type: str  # info | warning | failure | success: services show it as a colour
    title: str
    body: str
    alerts: tuple[str, ...]  # fingerprints


@dataclass(frozen=True, slots=True)
class Unsent:
    id: int
    recipient: str
    target: str
    attempts: int
    apprise_type: str
    title: str
    body: str


def event_row(event: AlertEvent) -> dict[str, Any]:
    """An event as an ``alert`` row (what :meth:`AlertEvent.from_row` reads)."""
    return {
        "time_ns": event.time_ns, "rule": event.rule, "severity": event.severity,
        "state": event.state, "previous": event.previous, "site": event.site,
        "plot": event.plot, "node": event.node, "sensor": event.sensor, "value": event.value,
        "since_ns": event.since_ns, "detail": event.detail_json(),
    }


def _group_json(group: Group) -> str:
    return json.dumps({
        "created_ns": group.created_ns, "last_sent_ns": group.last_sent_ns,
        "alerts": [{"event": event_row(s.event), "told_firing": s.told_firing}
                   for s in group.alerts.values()],
    }, ensure_ascii=False, sort_keys=True)


def _group_from(recipient: str, key_json: str, state_json: str) -> Group:
    state = json.loads(state_json)
    group = Group(recipient, tuple(json.loads(key_json)), int(state["created_ns"]),
                  last_sent_ns=state["last_sent_ns"])
    for item in state["alerts"]:
        event = AlertEvent.from_row(item["event"])
        group.alerts[event.fingerprint] = Slot(event, bool(item["told_firing"]))
    return group


class NotifyOutbox:
    """The notifier's tables, on its own connection to the store file."""

    def __init__(self, store: Store) -> None:
        self.store = store
        with store.transaction() as tx:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    tx.db.execute(statement)

    # ------------------------------------------------------------------ plan state

    def load(self) -> tuple[list[Group], list[AlertEvent]]:
        groups = [_group_from(r, k, s) for r, k, s in
                  self.store.execute("SELECT recipient, group_key, state FROM notify_group")]
        sources = [AlertEvent.from_row(json.loads(e)) for (e,) in
                   self.store.execute("SELECT event FROM notify_source")]
        return groups, sources

    def commit_plan(
        self,
        *,
        groups: dict[GroupId, Group],
        changed_groups: Iterable[GroupId],
        sources: dict[str, AlertEvent],
        changed_sources: Iterable[str],
        messages: Iterable[Message],
        now_ns: int,
        last_alert_id: int | None,
    ) -> int:
        """Save what changed, queue ``messages`` and move the cursor, in one transaction.
        Returns the number of messages queued."""
        with self.store.transaction() as tx:
            db = tx.db
            for gid in changed_groups:
                recipient, key = gid
                key_json = json.dumps(list(key), ensure_ascii=False)
                group = groups.get(gid)
                if group is None:
                    db.execute("DELETE FROM notify_group WHERE recipient=? AND group_key=?",
                               (recipient, key_json))
                else:
                    db.execute("INSERT OR REPLACE INTO notify_group VALUES (?,?,?)",
                               (recipient, key_json, _group_json(group)))
            for fp in changed_sources:
                event = sources.get(fp)
                if event is None:
                    db.execute("DELETE FROM notify_source WHERE fingerprint=?", (fp,))
                else:
                    db.execute("INSERT OR REPLACE INTO notify_source VALUES (?,?)",
                               (fp, json.dumps(event_row(event), ensure_ascii=False)))
            queued = self._insert_messages(db, messages, now_ns)
            if last_alert_id is not None:
                tx.advance(CONSUMER, "alert", last_alert_id)
            tx.add_counters({"notify.messages_queued": queued})
        return queued

    @staticmethod
    def _insert_messages(db: sqlite3.Connection, messages: Iterable[Message], now_ns: int
                         ) -> int:
        queued = 0
        for m in messages:
            db.execute(
                "INSERT INTO notify_message (created_ns, recipient, target, scheme, kind,"
                " severity, apprise_type, title, body, alerts, next_try_ns)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (now_ns, m.recipient, m.target, m.scheme, m.kind, m.severity,
                 m.apprise_type, m.title, m.body, json.dumps(m.alerts), now_ns),
            )
            queued += 1
        return queued

    # ------------------------------------------------------------------ daily summary

    def summary_days(self) -> dict[str, str]:
        """The latest local day each recipient's summary was queued for."""
        return {r: d for r, d in self.store.execute(
            "SELECT recipient, max(day) FROM notify_summary GROUP BY recipient")}

    def queue_summary(self, recipient: str, day: str, messages: Iterable[Message],
                      now_ns: int) -> bool:
        """Queue a recipient's summary for ``day`` unless it already was (one transaction:
        a crash leaves both or neither, so a restart neither loses nor repeats it)."""
        with self.store.transaction() as tx:
            cur = tx.db.execute("INSERT OR IGNORE INTO notify_summary VALUES (?,?,?)",
                                (recipient, day, now_ns))
            if cur.rowcount == 0:
                return False
            n = self._insert_messages(tx.db, messages, now_ns)
            tx.add_counters({"notify.messages_queued": n, "notify.summaries": 1})
        return True

    # ------------------------------------------------------------------ delivery

    def due(self, now_ns: int, limit: int = 100) -> list[Unsent]:
        """Unsent messages whose next attempt is due, oldest first."""
        rows = self.store.execute(
            "SELECT id, recipient, target, attempts, apprise_type, title, body FROM notify_message"
            " WHERE sent_ns IS NULL AND dropped IS NULL AND next_try_ns <= ?"
            " ORDER BY id LIMIT ?", (now_ns, limit))
        return [Unsent(*row) for row in rows]

    def mark_sent(self, message_id: int, now_ns: int) -> None:
        with self.store.transaction() as tx:
            tx.db.execute("UPDATE notify_message SET sent_ns=?, attempts=attempts+1,"
                          " last_error=NULL WHERE id=?", (now_ns, message_id))
            tx.add_counters({"notify.sent": 1})

    def mark_failed(self, message_id: int, error: str, next_try_ns: int) -> None:
        with self.store.transaction() as tx:
            tx.db.execute("UPDATE notify_message SET attempts=attempts+1, last_error=?,"
                          " next_try_ns=? WHERE id=?", (error, next_try_ns, message_id))
            tx.add_counters({"notify.send_failures": 1})

    def mark_dropped(self, message_id: int, reason: str) -> None:
        with self.store.transaction() as tx:
            tx.db.execute("UPDATE notify_message SET dropped=? WHERE id=?",
                          (reason, message_id))
            tx.add_counters({"notify.dropped": 1})

    def forget_sent_before(self, cutoff_ns: int) -> int:
        with self.store.transaction() as tx:
            cur = tx.db.execute("DELETE FROM notify_message WHERE sent_ns < ?", (cutoff_ns,))
            return int(cur.rowcount)

    def backlog(self) -> int:
        """Messages not yet sent (and not dropped)."""
        return int(self.store.execute(
            "SELECT count(*) FROM notify_message WHERE sent_ns IS NULL AND dropped IS NULL"
        )[0][0])

