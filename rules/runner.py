"""The rules engine's I/O shell: committed rows in, alert transitions out, all durable.

The runner is one more consumer of the store's outbox, like the InfluxDB sink: it reads
``reading``, ``device`` and ``quarantine`` rows after its own cursors (consumer ``rules``),
feeds them to the pure :class:`~rules.engine.Engine` in time order, and saves the events,
the engine's changed states and the new cursors in one transaction
(:meth:`Store.rules_step`). It runs off the ingest path, on APScheduler jobs: one drains
new rows every second, one ticks the engine's clock for ``for`` and ``absent_for``.
A crash between two steps repeats nothing and loses nothing: the next start reads the
saved states and continues after the saved cursors, first resolving the alerts that a
changed configuration no longer gives (:meth:`Engine.retire_unconfigured`).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

from gateway.catalogue import DEVICE_FIELDS, READING_FIELDS
from gateway.sinks.handoff import Handoff
from gateway.store.sqlite import AppendedRows, Store
from rules.alert import AlertEvent
from rules.engine import Engine, Sample

log = logging.getLogger(__name__)

CONSUMER: Final = "rules"
_INPUT_TABLES: Final = ("reading", "device")


def sample_from_row(table: str, row: dict[str, Any]) -> Sample:
    """A ``reading`` or ``device`` row as the engine's sample (device rows: sensor main)."""
    fields = READING_FIELDS if table == "reading" else DEVICE_FIELDS
    values = {k: float(row[k]) for k in fields if row.get(k) is not None}
    return Sample(int(row["time_ns"]), row["site"], row["plot"], row["node"],
                  row.get("sensor") or "main", values)


def row_reader(table: str, columns: Sequence[str]) -> Callable[[Sequence[Any]], Sample]:
    """:func:`sample_from_row` for rows read as tuples with these ``columns``: the column
    positions are looked up once per read, not per row (the runner's per-row path)."""
    at = {name: i for i, name in enumerate(columns)}
    names = [k for k in (READING_FIELDS if table == "reading" else DEVICE_FIELDS) if k in at]
    positions = [at[k] for k in names]
    fields: Callable[[Sequence[Any]], Sequence[Any]] = (
        itemgetter(*positions) if len(positions) > 1  # a tuple, picked in C
        else lambda row: [row[i] for i in positions])
    time_at, site_at, plot_at, node_at = at["time_ns"], at["site"], at["plot"], at["node"]
    sensor_at = at.get("sensor")

    def read(row: Sequence[Any]) -> Sample:
        values = {k: float(v) for k, v in zip(names, fields(row), strict=True) if v is not None}
        sensor = row[sensor_at] if sensor_at is not None else None
        return Sample(int(row[time_at]), row[site_at], row[plot_at], row[node_at],
                      sensor or "main", values)

    return read


def stored_samples(store: Store, time_from_ns: int | None = None,
                   time_to_ns: int | None = None) -> Iterator[Sample]:
    """Every stored reading and device row as samples, in time order (for backtests)."""
    def rows(table: str) -> Iterator[tuple[int, int, Sample]]:
        for i, row in enumerate(store.rows_between(table, time_from_ns, time_to_ns)):
            s = sample_from_row(table, row)
            yield s.time_ns, i, s

    for _, _, sample in heapq.merge(*(rows(t) for t in _INPUT_TABLES),
                                    key=lambda x: (x[0], x[1])):
        yield sample


def run_history(engine: Engine, samples: Iterable[Sample], *, tick_every_s: float,
                end_ns: int | None = None) -> list[AlertEvent]:
    """Feed ``samples`` (time order) and tick the engine every ``tick_every_s`` of data time,
    as the live runner would have: a backtest, or a rule unit test's timeline."""
    events: list[AlertEvent] = []
    step = int(tick_every_s * 1e9)
    next_tick: int | None = None
    for s in samples:
        if next_tick is None:
            next_tick = s.time_ns + step
        while s.time_ns >= next_tick:
            events.extend(engine.tick(next_tick))
            next_tick += step
        events.extend(engine.observe(s))
    if end_ns is not None and next_tick is not None:
        while next_tick <= end_ns:
            events.extend(engine.tick(next_tick))
            next_tick += step
    return events


def _timed_samples(rows: Iterable[Sequence[Any]], order: int,
                   read: Callable[[Sequence[Any]], Sample]) -> Iterator[tuple[int, int, Sample]]:
    """(time, stream order, sample) of each row, made only when the merge reaches it: the
    samples of a step are then never all alive at once, which would make the garbage
    collector go over them again and again (a third of a step's CPU time)."""
    for row in rows:
        s = read(row)
        yield s.time_ns, order, s


class RulesRunner:
    """Runs an :class:`Engine` against the store at ``store_path`` until stopped."""

    def __init__(
        self,
        store_path: Path,
        make_engine: Callable[[dict[tuple[str, str], str]], Engine],
        *,
        tick_interval_s: float = 60.0,
        poll_interval_s: float = 1.0,
        batch_size: int = 2000,
        clock_ns: Callable[[], int] = time.time_ns,
        registered_nodes: Sequence[tuple[str, str, str]] = (),
        on_events: Callable[[list[AlertEvent]], None] | None = None,
    ) -> None:
        self.store = Store(store_path)  # own connection, like the sinks
        self.engine = make_engine(self.store.rule_states())
        self.tick_interval_s = tick_interval_s
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self.clock_ns = clock_ns
        self.on_events = on_events
        self._lock = threading.Lock()  # one step at a time: jobs and stop() share it
        self._scheduler: Any = None
        # What the pipeline of this process just committed, as the InfluxDB sink gets it
        # (gateway/sinks/handoff.py): read from memory when it continues the cursor, else
        # from the store. rows_from counts which. The bound holds about a poll's worth at
        # 2,000 uplinks/s (three rows each); the tuples are the sink's too, not copies.
        self._handoff = Handoff(_INPUT_TABLES, limit_rows=4 * batch_size,
                                wake_rows=batch_size)
        self._readers: dict[tuple[str, tuple[str, ...]], Callable[[Sequence[Any]], Sample]] = {}
        self.rows_from = {"memory": 0, "store": 0}
        # A rule that raises on a reading (a bug, or a config the check let through) loses
        # that reading, loudly; it must not stop the step, or no rule would ever run again
        # (the step is retried on the same rows).
        self._failures: dict[str, tuple[int, Sample, Exception]] = {}  # this step, by rule
        self._failed_before: set[str] = set()  # rules whose traceback was logged
        self.engine.on_rule_error = self._rule_failed
        # Rows after the saved cursors may predate this configuration (the last run
        # stopped before evaluating them): those of a node's old place must not bring back
        # what retire_unconfigured resolves here.
        self.engine.registered_places_only = True
        now_ns = clock_ns()
        # Alerts of the configuration the store was last run with that this one no longer
        # gives (a node moved, a crop changed, a rule file removed) are resolved, said once.
        retired = self.engine.retire_unconfigured(
            now_ns, [AlertEvent.from_row(row) for row in self.store.active_alerts()])
        self.engine.watch_nodes(registered_nodes, now_ns)
        self._save(retired, {})

    # ------------------------------------------------------------------ steps

    def offer(self, appended: Sequence[AppendedRows]) -> None:
        """Rows a commit of this process's pipeline just appended (a commit listener)."""
        self._handoff.offer(appended)

    def step(self) -> int:
        """Evaluate rows committed since the last step; return how many were read."""
        with self._lock:
            self._failures.clear()  # a step that raised is retried: count its rows once
            cursors: dict[str, int] = {}
            # Streams of (time, stream order, sample), each in time order: ids follow
            # commits, not time (a commit inserts its rows a column layout at a time, a
            # node's soil rows after its air rows, and nodes' clocks differ), so each is
            # sorted; the sort is stable and the order numbers follow the ids, so rows of
            # equal time keep their commit order, readings before device rows.
            streams: list[Iterator[tuple[int, int, Sample]]] = []
            read = 0
            for table in _INPUT_TABLES:
                last = self.store.cursor(CONSUMER, table)
                offered = self._handoff.take(table, last, self.batch_size)
                parts: list[tuple[Sequence[str], Sequence[tuple[Any, ...]]]]
                if offered:
                    source, parts = "memory", [(c.columns, c.rows) for c in offered]
                    cursors[table] = offered[-1].last_id
                else:
                    with self.store.outbox_cursor(table, last, self.batch_size) as (
                            columns, cursor):
                        rows = list(cursor)
                    source, parts = "store", [(tuple(columns), rows)] if rows else []
                    if rows:
                        cursors[table] = int(rows[-1][columns.index("id")])
                for names, part in parts:  # memory's rows are the sink's too: sorted copies
                    ordered = sorted(part, key=itemgetter(names.index("time_ns")))
                    streams.append(_timed_samples(ordered, len(streams),
                                                  self._reader(table, names)))
                    read += len(ordered)
                    self.rows_from[source] += len(ordered)
            last_q = self.store.cursor(CONSUMER, "quarantine")
            rejected = self.store.rows_after("quarantine", last_q, self.batch_size)
            for q in rejected:
                self.engine.observe_rejection(q["node"], q["reason"], int(q["received_ns"]))
            if rejected:
                cursors["quarantine"] = int(rejected[-1]["id"])
            events: list[AlertEvent] = []
            # (time, stream order) differs between the heads of two streams, so the tuples
            # compare without reaching the samples.
            for _, _, sample in heapq.merge(*streams):
                events.extend(self.engine.observe(sample))
            failed = self._report_failures()
            if cursors or events or failed:
                self._save(events, cursors, failed)
            return read + len(rejected)

    def _rule_failed(self, rule: str, sample: Sample, exc: Exception) -> None:
        count, first, first_exc = self._failures.get(rule, (0, sample, exc))
        self._failures[rule] = (count + 1, first, first_exc)

    def _report_failures(self) -> dict[str, int]:
        """Log this step's failing rules, by name (the traceback once per rule and process),
        and return the counter ``rules.evaluation_errors`` (readings lost to a rule)."""
        counters: dict[str, int] = {}
        for rule, (count, sample, exc) in self._failures.items():
            at = datetime.fromtimestamp(sample.time_ns / 1e9, self.engine.tz).isoformat()
            log.error("rule %s failed on %d reading(s), the first %s at %s: %s: %s; the "
                      "other rules went on, these readings are lost to this rule",
                      rule, count, sample.series, at, type(exc).__name__, exc,
                      exc_info=exc if rule not in self._failed_before else None)
            self._failed_before.add(rule)
            counters["rules.evaluation_errors"] = counters.get(
                "rules.evaluation_errors", 0) + count
        self._failures.clear()
        return counters

    def _reader(self, table: str, columns: Sequence[str]) -> Callable[[Sequence[Any]], Sample]:
        key = (table, tuple(columns))
        reader = self._readers.get(key)
        if reader is None:
            if len(self._readers) >= 64:
                self._readers.clear()
            reader = self._readers[key] = row_reader(table, columns)
        return reader

    def tick(self, now_ns: int | None = None) -> list[AlertEvent]:
        with self._lock:
            events = self.engine.tick(self.clock_ns() if now_ns is None else now_ns)
            self._save(events, {})
            return events

    def _save(self, events: list[AlertEvent], cursors: dict[str, int],
              counters: dict[str, int] | None = None) -> None:
        counters = {**(counters or {}), **({"rules.transitions": len(events)} if events
                                           else {})} or None
        self.store.rules_step(CONSUMER, cursors, self.engine.take_changes(), events, counters)
        for e in events:
            log.log(logging.WARNING if e.state == "firing" else logging.INFO,
                    "alert %s %s: %s", e.state, e.rule, e.message())
        if events and self.on_events is not None:
            self.on_events(events)

    def drain(self) -> None:
        while self.step() >= self.batch_size:
            pass

    # ------------------------------------------------------------------ schedule

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler = BackgroundScheduler(timezone=str(self.engine.tz))
        self._scheduler.add_job(self._safe(self.drain), "interval",
                                seconds=self.poll_interval_s, id="rules-step",
                                max_instances=1, coalesce=True)
        self._scheduler.add_job(self._safe(self.tick), "interval",
                                seconds=self.tick_interval_s, id="rules-tick",
                                max_instances=1, coalesce=True)
        self._scheduler.start()

    def _safe(self, job: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            except Exception:  # a bad step must not stop the schedule; the rows stay
                log.exception("rules engine step failed; it will be retried")
        return run

    def stop(self) -> None:
        """Stop the schedule, evaluate what was committed last, close the connection."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        try:
            self.drain()
        finally:
            self.store.close()
