"""The notifier thread: alert outbox -> plan -> message outbox -> apprise.

Each tick (``tick_s``, 1 s by default):

1. **plan**: read ``alert`` rows after the ``notify`` cursor, feed them to the
   :class:`~rules.notify.grouping.Planner`, ask it what is due now, write each message in
   the recipient's language, and commit the plan state, the messages (one per apprise
   URL) and the cursor in one transaction (:class:`~rules.notify.outbox.NotifyOutbox`);
2. **deliver**: send the due messages, oldest first, one apprise URL at a time; a message
   is marked sent only after apprise reported success. A failed one is tried again after
   a backoff with jitter (``notifications.retry_initial_s`` doubling to ``retry_max_s``)
   and the other messages for that URL wait behind it, so they arrive in order.

Delivery guarantee: a message is queued exactly once (its plan and the cursor commit
together) and is sent until a send succeeds. The one window for a duplicate is a crash (or
a power cut) after the service accepted a message and before ``sent_ns`` is committed, a
few milliseconds; then it is sent again at the next start. A message is never lost by a
crash. Messages keep the time each alert fired in their text, so one delivered hours late
after an outage still says when it happened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from gateway.config.notifications import NotificationsConfig
from gateway.sinks.lifecycle import stop_worker
from gateway.sinks.retry import Backoff
from gateway.store.sqlite import Store
from rules.alert import AlertEvent
from rules.notify import summary
from rules.notify.apprise_urls import AppriseTarget, DeliveryError, scheme_of
from rules.notify.compose import compose
from rules.notify.grouping import Notification, Planner
from rules.notify.outbox import CONSUMER, Message, NotifyOutbox, target_id
from rules.presets import crop_title

log = logging.getLogger(__name__)

BATCH: Final = 500  # alert rows per plan step
# apprise's notification types; services that show one (Slack, Discord...) colour by it.
APPRISE_TYPES: Final = {"info": "info", "warning": "warning", "critical": "failure"}
CLEANUP_EVERY_NS: Final = 3600 * 1_000_000_000
STOP_TIMEOUT_S: Final = 5.0


class Notifier:
    """Runs the notifications of one gateway: ``start()``/``stop()``, or ``step(now)``."""

    def __init__(
        self,
        store_path: Path,
        cfg: NotificationsConfig,
        default_tz: ZoneInfo,
        *,
        tick_s: float = 1.0,
        clock_ns: Callable[[], int] = time.time_ns,
        stop: threading.Event | None = None,
        plots: Mapping[tuple[str, str], str | None] | None = None,
    ) -> None:
        """``plots``: the registered (site, plot) pairs and their crops, for the daily
        summary (a registered plot that sent nothing is named there)."""
        self.cfg = cfg
        self.plots = dict(plots or {})
        self.default_tz = default_tz
        self.tick_s = tick_s
        self._clock_ns = clock_ns
        self._stop = stop or threading.Event()
        self._store = Store(store_path)  # own connection (WAL), as the sinks have
        self.outbox = NotifyOutbox(self._store)
        groups, sources = self.outbox.load()
        self.planner = Planner(cfg, default_tz, groups, sources)
        self.backoff = Backoff(initial_s=cfg.retry_initial_s, max_s=cfg.retry_max_s)
        # apprise URL by target id; loaded lazily so a gateway without recipients never
        # imports apprise.
        self._urls = {target_id(u.get_secret_value()): u.get_secret_value()
                      for r in cfg.recipients.values() for u in r.urls}
        self._targets: dict[str, AppriseTarget] = {}
        self._next_cleanup_ns = 0
        self._summary_days = self.outbox.summary_days()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        assert self._thread is None, "already started"
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()
        log.info("notifier: %d recipients, %d routes, %d inhibit rules",
                 len(self.cfg.recipients), len(self.cfg.routes), len(self.cfg.inhibit))

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Finish the send in flight (up to ``timeout``) and stop; unsent messages stay
        queued for the next start."""
        stop_worker(self._thread, self._stop, timeout, self.close, log,
                    "notifier: a send was still in flight at shutdown; if the service "
                    "took it, it is sent again at the next start")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._store.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.step(self._clock_ns())
                except Exception:  # a bug or a broken store: keep going, loudly
                    log.exception("notifier: unexpected error")
                self._stop.wait(self.tick_s)
        finally:
            self.close()

    # ------------------------------------------------------------------ work

    def step(self, now_ns: int) -> tuple[int, int]:
        """Plan and deliver once; returns (messages queued, messages sent)."""
        queued = self.plan(now_ns) + self.plan_summaries(now_ns)
        return queued, self.deliver(now_ns)

    def plan_summaries(self, now_ns: int) -> int:
        """Queue each recipient's daily summary once it is due (rules/notify/summary.py)."""
        queued = 0
        for name, recipient in self.cfg.recipients.items():
            if recipient.daily_summary is None:
                continue
            tz = self.planner.zones[name]
            day = summary.due_day(now_ns, tz, recipient.daily_summary.at,
                                  self._summary_days.get(name))
            if day is None:
                continue
            language = recipient.language
            plots = {key: crop_title(crop, language) if crop else None
                     for key, crop in self.plots.items()}
            days = summary.gather(self._store, now_ns, sites=recipient.daily_summary.sites,
                                  plots=plots)
            title, body = summary.compose(days, language, tz, now_ns)
            messages = [
                Message(name, target_id(url.get_secret_value()),
                        scheme_of(url.get_secret_value()), "summary", "info", "info", title,
                        body, ())
                for url in recipient.urls
            ]
            if self.outbox.queue_summary(name, day, messages, now_ns):
                queued += len(messages)
                log.info("notifier: daily summary for %s (%s) queued", name, day)
            self._summary_days[name] = day
        return queued

    def plan(self, now_ns: int) -> int:
        """Take new alert transitions and queue the messages due at ``now_ns``.

        A backlog (the notifier was off) is read in batches, each committed with the
        cursor, and only then asked what is due: one message about all of it, not one per
        batch."""
        while True:
            rows = self._store.alert_rows(self._store.cursor(CONSUMER, "alert"), BATCH)
            for row in rows:
                self.planner.observe(AlertEvent.from_row(row), now_ns)
            if rows:
                self._commit(now_ns, [], int(rows[-1]["id"]))
            if len(rows) < BATCH:
                break
        messages = [m for note in self.planner.due(now_ns) for m in self._messages(note)]
        return self._commit(now_ns, messages, None)

    def _commit(self, now_ns: int, messages: list[Message], last_alert_id: int | None) -> int:
        planner = self.planner
        if not (messages or last_alert_id or planner.changed_groups or planner.changed_sources):
            return 0
        try:
            queued = self.outbox.commit_plan(
                groups=planner.groups, changed_groups=planner.changed_groups,
                sources=planner.sources, changed_sources=planner.changed_sources,
                messages=messages, now_ns=now_ns, last_alert_id=last_alert_id,
            )
        except Exception:
            # The planner already counts these messages as sent: go back to what is
            # committed, so the next step plans them again.
            groups, sources = self.outbox.load()
            self.planner = Planner(self.cfg, self.default_tz, groups, sources)
            raise
        planner.changed_groups.clear()
        planner.changed_sources.clear()
        return queued

    def _messages(self, note: Notification) -> list[Message]:
        recipient = self.cfg.recipients[note.recipient]
        tz = self.planner.zones[note.recipient]
        title, body = compose(note, recipient.language, tz)
        alerts = tuple(e.fingerprint for e in (*note.firing, *note.resolved))
        kind = APPRISE_TYPES.get(note.severity, "failure") if note.firing else "success"
        return [
            Message(note.recipient, target_id(url.get_secret_value()),
                    scheme_of(url.get_secret_value()), note.kind, note.severity, kind, title,
                    body, alerts)
            for url in recipient.urls
        ]

    def deliver(self, now_ns: int) -> int:
        """Send the due messages; a failed URL's later messages wait for its retry."""
        sent = 0
        failed_targets: set[str] = set()
        for message in self.outbox.due(now_ns):
            if self._stop.is_set():
                break
            if message.target in failed_targets:
                continue
            url = self._urls.get(message.target)
            if url is None:
                log.warning("notifier: message %d for %s dropped: its URL is no longer in "
                            "notifications.recipients", message.id, message.recipient)
                self.outbox.mark_dropped(message.id, "URL no longer configured")
                continue
            try:
                self._target(message.target, url).send(
                    message.title, message.body, message.apprise_type)
            except DeliveryError as e:
                failed_targets.add(message.target)
                delay = self.backoff.delay(message.attempts + 1)
                level = logging.WARNING if message.attempts == 0 else logging.INFO
                log.log(level, "notifier: message %d to %s not delivered (%s); trying again "
                        "in %.0f s (attempt %d)", message.id, message.recipient, e, delay,
                        message.attempts + 1)
                self.outbox.mark_failed(message.id, str(e),
                                        self._clock_ns() + int(delay * 1e9))
                continue
            self.outbox.mark_sent(message.id, self._clock_ns())
            sent += 1
            if message.attempts:
                log.info("notifier: message %d to %s delivered after %d failed attempts",
                         message.id, message.recipient, message.attempts)
        if now_ns >= self._next_cleanup_ns and self.cfg.keep_sent_days > 0:
            self._next_cleanup_ns = now_ns + CLEANUP_EVERY_NS
            self.outbox.forget_sent_before(now_ns - int(self.cfg.keep_sent_days * 86400e9))
        return sent

    def _target(self, target: str, url: str) -> AppriseTarget:
        loaded = self._targets.get(target)
        if loaded is None:
            loaded = self._targets[target] = AppriseTarget(url)
        return loaded
