"""SQLite store and outbox (WAL, batched, crash-safe, bounded).

Schema (DESIGN.md "Storage"): ``reading`` and ``device`` rows carry the same tags and fields
as the InfluxDB measurements; ``packet`` holds one row per accepted uplink with its provenance
and the dedup key; ``quarantine`` keeps every rejected input with its raw bytes; ``counter``
holds the gateway's counters, updated in the same transaction as the data they count, so
after a crash the counts still match what is stored.

Exactly-once: ``packet`` is unique on (node, digest) (index ``packet_dedup``, which also
orders a node's packets by ``seq``), where the digest covers the node's
sequence number, its own timestamp and its readings (not radio fields, which differ between
receptions). A redelivered, replayed or retransmitted uplink is ignored by the INSERT and
counted as a duplicate, whenever it comes, including across restarts.

Outbox: the integer primary keys of ``reading``, ``device`` and ``alert`` are the outbox
positions. Each consumer (a sink, the rules engine, the notifier) keeps its own cursor per
table in ``sink_cursor``, so a slow one never holds back another.

Alerts: ``alert`` holds every transition the rules engine made (rules/alert.py), appended in
the same transaction as the engine's state (``rule_state``) and its cursors over
``reading``/``device``/``quarantine``, so a restart neither forgets a pending ``for`` nor
emits a transition twice.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Final, NamedTuple

from gateway.catalogue import DEVICE_FIELDS, READING_FIELDS
from gateway.packet import Record, Rejection
from gateway.store.counters import COUNTER_STATE_SCHEMA, JUMP_REASON, RUNNING_TOTAL, CounterSteps
from rules.alert import AlertEvent

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
BUSY_TIMEOUT_S = 5.0  # a writer waits this long for another, then "database is locked"
DATA_TABLES: Final = ("reading", "device")  # rows of accepted packets (packet_id)
OUTBOX_TABLES: Final = ("reading", "device", "alert")  # what sinks deliver
# Tables that lose rows to retention and the size bound, read by cursors: their ids are
# kept from going back (Store._keep_id_floors). Alerts are never deleted.
FLOORED_TABLES: Final = ("reading", "device", "quarantine")

#: (table, column, declaration) added to the schema after stores existed: _BASE_SCHEMA has
#: them for new stores, :meth:`Store._migrate` adds them to older ones (at the end of the
#: table, where _BASE_SCHEMA puts them too, so ``SELECT *`` has one column order).
_ADDED_COLUMNS: Final = (
    ("quarantine", "topic", "TEXT"),  # the MQTT topic a rejected message came on
)

_PACKET_TABLE: Final = """
CREATE TABLE IF NOT EXISTS packet (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    seq INTEGER,
    digest BLOB NOT NULL,
    time_ns INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    site TEXT NOT NULL,
    plot TEXT NOT NULL,
    source TEXT NOT NULL,
    format TEXT NOT NULL,
    time_source TEXT NOT NULL,
    boot_id TEXT,
    monotonic_ns INTEGER
)
"""
_BASE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""" + _PACKET_TABLE + """;
CREATE UNIQUE INDEX IF NOT EXISTS packet_dedup ON packet (node, ifnull(seq, -1), digest);
CREATE INDEX IF NOT EXISTS packet_held ON packet (id) WHERE time_source = 'held';
CREATE TABLE IF NOT EXISTS reading (
    id INTEGER PRIMARY KEY,
    packet_id INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    site TEXT NOT NULL,
    plot TEXT NOT NULL,
    node TEXT NOT NULL,
    sensor TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reading_time ON reading (time_ns);
CREATE TABLE IF NOT EXISTS device (
    id INTEGER PRIMARY KEY,
    packet_id INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    site TEXT NOT NULL,
    plot TEXT NOT NULL,
    node TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    received_ns INTEGER NOT NULL,
    source TEXT NOT NULL,
    format TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    node TEXT,
    seq INTEGER,
    raw BLOB NOT NULL,
    topic TEXT
);
CREATE INDEX IF NOT EXISTS quarantine_reason ON quarantine (reason);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sink_cursor (
    sink TEXT NOT NULL, tbl TEXT NOT NULL, last_id INTEGER NOT NULL,
    PRIMARY KEY (sink, tbl)
);
CREATE TABLE IF NOT EXISTS alert (
    id INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    site TEXT NOT NULL,
    plot TEXT NOT NULL,
    node TEXT NOT NULL,
    sensor TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    previous TEXT NOT NULL,
    value REAL,
    since_ns INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    message TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_fingerprint ON alert (fingerprint, id);
CREATE TABLE IF NOT EXISTS rule_state (
    rule TEXT NOT NULL, series TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (rule, series)
);
CREATE TABLE IF NOT EXISTS node_state (
    node TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    plot TEXT NOT NULL,
    last_seq INTEGER,
    last_time_ns INTEGER NOT NULL,
    last_received_ns INTEGER NOT NULL,
    last_source TEXT NOT NULL
);
"""


# The leading columns of the rows write_batch inserts, before each run's fields.
_TAG_COLUMNS: Final = {
    "reading": ("packet_id", "time_ns", "site", "plot", "node", "sensor"),
    "device": ("packet_id", "time_ns", "site", "plot", "node"),
}

ROWS_PER_INSERT: Final = 16  # rows per statement run when a commit inserts many (_insert_many)

_INSERT_PACKET: Final = (
    "INSERT OR IGNORE INTO packet (node, seq, digest, time_ns, received_ns, site, plot,"
    " source, format, time_source) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_HELD_PACKET: Final = (
    "INSERT OR IGNORE INTO packet (node, seq, digest, time_ns, received_ns, site, plot,"
    " source, format, time_source, boot_id, monotonic_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)

# A consumer's cursor only moves forward.
_ADVANCE_SQL: Final = (
    "INSERT INTO sink_cursor VALUES (?,?,?) ON CONFLICT(sink, tbl)"
    " DO UPDATE SET last_id = max(last_id, excluded.last_id)"
)

_ADD_COUNTER_SQL: Final = (
    "INSERT INTO counter VALUES (?, ?) ON CONFLICT(name) DO UPDATE"
    " SET value = value + excluded.value"
)


class StoreFull(Exception):
    """The store reached its configured size with ``full_policy: stop_ingest``."""


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    rejection: Rejection
    source: str
    received_ns: int


class AppendedRows(NamedTuple):
    """Rows a commit appended to an outbox table with one statement, as inserted: ids
    ``first_id`` to ``last_id`` in order, each row a tuple of ``columns`` (the table's
    tags, then the run's fields). Handed to sinks in the same process
    (:meth:`InfluxSink.offer`) so they need not read back what was just written; the store
    stays the truth."""

    table: str
    first_id: int
    columns: tuple[str, ...]
    rows: Sequence[tuple[Any, ...]]

    @property
    def last_id(self) -> int:
        return self.first_id + len(self.rows) - 1


@dataclass(slots=True)
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    duplicate_keys: list[tuple[str, int | None]] = field(default_factory=list)
    quarantined: int = 0
    flags: dict[str, int] = field(default_factory=dict)  # flagged.* counted by the commit
    appended: list[AppendedRows] = field(default_factory=list)  # reading, device rows
    # Set by the pipeline: the batch was committed because it was full, so more input is
    # already waiting. False when the batch's time ran out or its stream ended: the input
    # has gone quiet, and a sink holding rows back to fill its own batch can write now.
    more_coming: bool = False


def _storable(text: str | None) -> str | None:
    """Text SQLite can bind: a lone surrogate (from a JSON ``\\ud800`` escape, say) written
    as its escape, so the evidence of bad input never fails the commit that keeps it."""
    if text is None or text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class Store:
    """One SQLite file. Writes come from one thread (the pipeline); reads may come from any.

    ``synchronous=FULL`` because a farm gateway loses power: a committed batch must survive a
    power cut, not only a crashed process. Commits are batched, so the fsync cost is paid
    once per batch, not per reading.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_size_mb: float = 2048,
        full_policy: str = "drop_oldest",
        retention_days: float = 0,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = int(max_size_mb * 1024 * 1024)
        self.full_policy = full_policy
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._writer = _writer_lock(self.path)
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no Satoyama store at {self.path}")
            self._db = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
            )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        self._db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._reading_cols = self._columns("reading")
        self._device_cols = self._columns("device")
        self._sql_cache: dict[tuple[str, tuple[str, ...]], str] = {}
        self._many_sql: dict[str, str] = {}  # one-row INSERT -> its ROWS_PER_INSERT-row form
        self._columns_cache: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}

    # ---------------------------------------------------------------- schema

    def _migrate(self) -> None:
        self._drop_random_dedup_index()
        # Idempotent; executescript commits itself.
        self._db.executescript(_BASE_SCHEMA + COUNTER_STATE_SCHEMA)
        with self._tx():
            # The catalogue drives the columns: a new quantity becomes a new column here.
            for table, fields in (("reading", READING_FIELDS), ("device", DEVICE_FIELDS)):
                have = self._columns(table)
                for name in fields:
                    if name not in have:
                        self._db.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" REAL')
            # Columns added since: NULL in the rows kept before (adding one rewrites no row).
            for table, name, decl in _ADDED_COLUMNS:
                if name not in self._columns(table):
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            self._seed_id_floors()

    def _seed_id_floors(self) -> None:
        """Stores where ids had already been handed out again behind a cursor (before the
        floors below existed): new rows continue past the highest cursor."""
        for table in FLOORED_TABLES:
            cursor = self._db.execute("SELECT max(last_id) FROM sink_cursor WHERE tbl = ?",
                                      (table,)).fetchone()[0]
            if cursor is not None and cursor > self._top_id(table):
                self._raise_id_floor(table, int(cursor))

    def _top_id(self, table: str) -> int:
        return int(self._db.execute(f"SELECT ifnull(max(id), 0) FROM {table}").fetchone()[0])

    def _id_floor(self, table: str) -> int:
        """New rows of ``table`` get ids above this (0: no floor)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?",
                               (f"id_floor.{table}",)).fetchone()
        return int(row[0]) if row else 0

    def _past_floor(self, table: str) -> int | None:
        """The id the next row of ``table`` must be inserted with, when a deletion left a
        floor above its largest id (see :meth:`_keep_id_floors`); None when SQLite's own
        numbering (after the largest id) is right."""
        floor = self._id_floor(table)
        return floor + 1 if floor > self._top_id(table) else None

    def _raise_id_floor(self, table: str, top: int) -> None:
        if top > self._id_floor(table):
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             (f"id_floor.{table}", str(top)))

    def _top_ids(self) -> dict[str, int]:
        return {table: self._top_id(table) for table in FLOORED_TABLES}

    def _keep_id_floors(self, before: dict[str, int]) -> None:
        """After a deletion: where the newest rows went, keep their ids as a floor.

        SQLite numbers a new row after the largest id *still in the table*, so once
        retention or ``drop_oldest`` had deleted the newest rows (a gateway switched off for
        longer than ``retention_days``), new rows took ids at or behind the sinks' and the
        rules' cursors and were never delivered, with a backlog of 0. (``AUTOINCREMENT``
        does the same, for 3,500 more instructions per row.)
        """
        for table, top in before.items():
            if top and self._top_id(table) < top:
                self._raise_id_floor(table, top)

    def _drop_random_dedup_index(self) -> None:
        """Stores made before ``packet_dedup`` kept uniqueness as ``UNIQUE (node, digest)``
        in the table itself: rebuild the table without it (once; ids are kept).

        Same duplicates either way, since the digest covers ``seq`` (as -1 when absent):
        but a digest is random, so each new packet landed on a random page of that index
        and a 500-packet commit rewrote hundreds of pages (17 against 7 µs CPU per packet
        at 100,000 packets, growing with the store). ``packet_dedup`` puts a node's
        packets in ``seq`` order, so new entries land together.
        """
        old = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_autoindex_packet_1'").fetchone()
        if old is None:
            return
        log.info("store %s: rebuilding the packet table's dedup index (once)", self.path)
        columns = ", ".join(self._columns("packet"))
        with self._tx():
            self._db.execute("ALTER TABLE packet RENAME TO packet_before_dedup_index")
            self._db.execute(_PACKET_TABLE)
            self._db.execute(f"INSERT INTO packet ({columns}) SELECT {columns}"
                             " FROM packet_before_dedup_index")
            self._db.execute("DROP TABLE packet_before_dedup_index")

    def columns(self, table: str) -> list[str]:
        """Column names of ``table`` in ``SELECT *`` order."""
        with self._lock:
            return self._columns(table)

    def _columns(self, table: str) -> list[str]:
        return [row[1] for row in self._db.execute(f"PRAGMA table_info({table})")]

    def _tx(self) -> _Transaction:
        return _Transaction(self._db, self._writer)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---------------------------------------------------------------- writes

    def write_batch(
        self,
        records: Sequence[Record],
        quarantine: Sequence[QuarantineEntry] = (),
        counters: dict[str, int] | None = None,
        *,
        boot_id: str | None = None,
        monotonic_ns: dict[int, int] | None = None,
    ) -> BatchResult:
        """Store records and rejections and add to counters, all in one transaction.

        ``monotonic_ns`` maps ``id(record)`` to the monotonic receive time of records whose
        time is ``held`` (gateway clock not trustworthy), so they can be re-anchored later.
        """
        result = BatchResult()
        counts = dict(counters or {})
        with self._lock, self._tx():
            db = self._db
            stored = self._insert_packets(records, result, boot_id, monotonic_ns)
            # One statement per column layout in the batch, so that no NULL is bound (the
            # sqlite3 module looks for an adapter for each None, raising and clearing two
            # AttributeErrors): a node's air sensor and soil probe alternate, and a
            # statement per run of equal columns would be one executemany per row. The
            # batch's rows are grouped by layout, in the order the layouts first appear, and
            # keep their order within a layout: ids follow commits, not time (storage.md).
            readings: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
            devices: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
            nodes: dict[str, list[Any]] = {}
            steps: CounterSteps | None = None  # running totals -> increments, if any
            for packet_id, rec in stored:
                tags = (packet_id, rec.time_ns, rec.site, rec.plot, rec.node)
                for sensor, values in rec.readings.items():
                    if RUNNING_TOTAL in values:
                        steps = steps or CounterSteps(db)
                        steps.apply(rec, sensor, values)
                    # inlined: this runs for every row
                    cols = tuple(values)
                    group = readings.get(cols)
                    if group is None:
                        group = readings[cols] = []
                    group.append((*tags, sensor, *values.values()))
                if rec.device:
                    cols = tuple(rec.device)
                    group = devices.get(cols)
                    if group is None:
                        group = devices[cols] = []
                    group.append((*tags, *rec.device.values()))
                # node_state once per node: what the per-record upserts would have left.
                state = nodes.get(rec.node)
                if state is None:
                    nodes[rec.node] = [rec.node, rec.site, rec.plot, rec.seq, rec.time_ns,
                                       rec.received_ns, rec.source]
                else:
                    state[1], state[2] = rec.site, rec.plot
                    if rec.seq is not None:
                        state[3] = rec.seq
                    state[4] = max(state[4], rec.time_ns)
                    state[5], state[6] = rec.received_ns, rec.source
            for table, groups in (("reading", readings), ("device", devices)):
                if groups:
                    result.appended += self._insert_groups(table, groups)
            db.executemany(
                "INSERT INTO node_state VALUES (?,?,?,?,?,?,?) ON CONFLICT(node) DO UPDATE SET"
                " site=excluded.site, plot=excluded.plot,"
                " last_seq=COALESCE(excluded.last_seq, last_seq),"
                " last_time_ns=max(last_time_ns, excluded.last_time_ns),"
                " last_received_ns=excluded.last_received_ns,"
                " last_source=excluded.last_source",
                nodes.values(),
            )
            result.stored = len(stored)
            if steps is not None:
                steps.save()
                self._insert_quarantine(_jump_entries(steps))
                result.flags = steps.flags
                for name, n in steps.flags.items():
                    counts[name] = counts.get(name, 0) + n
            self._insert_quarantine(quarantine)
            for q in quarantine:
                key = f"rejected.{q.rejection.reason}"
                counts[key] = counts.get(key, 0) + 1
            result.quarantined = len(quarantine)
            if result.stored:
                counts["stored"] = counts.get("stored", 0) + result.stored
            if result.duplicates:
                counts["duplicates"] = counts.get("duplicates", 0) + result.duplicates
            self._add_counters(counts)
        return result

    def _insert_packets(
        self,
        records: Sequence[Record],
        result: BatchResult,
        boot_id: str | None,
        monotonic_ns: dict[int, int] | None,
    ) -> list[tuple[int, Record]]:
        """Insert the packet rows; return (packet id, record) of those that are new.

        One ``executemany``; SQLite numbers the new rows after the largest id, in order. If
        ``INSERT OR IGNORE`` skipped any (duplicates, from the store or earlier in the batch),
        the new rows' (node, digest) tell which records they are. Only the pipeline writes
        packets, inside this transaction, so no other row gets an id in between.
        """
        if not records:
            return []
        db = self._db
        last = int(db.execute("SELECT max(id) FROM packet").fetchone()[0] or 0)
        # A bytearray digest, and boot_id/monotonic_ns only when some record is held:
        # the sqlite3 module binds int, float, str and bytearray as they are, but looks for
        # an adapter for anything else (bytes, None), raising and clearing two
        # AttributeErrors per value.
        rows: list[tuple[Any, ...]] = [
            (rec.node, rec.seq, bytearray(rec.digest), rec.time_ns, rec.received_ns, rec.site,
             rec.plot, rec.source, rec.format, rec.time_source)
            for rec in records]
        sql = _INSERT_PACKET
        if monotonic_ns:
            sql = _INSERT_HELD_PACKET
            for i, rec in enumerate(records):
                mono = monotonic_ns.get(id(rec))
                rows[i] += (None, None) if mono is None else (boot_id, mono)
        if self._insert_many(sql, rows) == len(records):
            return [(last + 1 + i, rec) for i, rec in enumerate(records)]
        new = {
            (node, bytes(digest)): packet_id
            for packet_id, node, digest in db.execute(
                "SELECT id, node, digest FROM packet WHERE id > ?", (last,))
        }
        stored = []
        for rec in records:
            packet_id = new.pop((rec.node, bytes(rec.digest)), None)
            if packet_id is not None:
                stored.append((packet_id, rec))
            else:
                result.duplicates += 1
                result.duplicate_keys.append((rec.node, rec.seq))
        return stored

    def _insert_groups(
        self, table: str, groups: dict[tuple[str, ...], list[tuple[Any, ...]]]
    ) -> list[AppendedRows]:
        """Insert groups of rows (the table's tags, then the group's columns), one statement
        each; return them with their ids.

        Only the pipeline appends to ``reading`` and ``device``, inside its write
        transaction, and SQLite numbers new rows after the largest id, so ids follow one
        another from there (from the table's id floor, if deletions left one: the first
        row is numbered explicitly). Checked: if the ids are not what was expected,
        nothing is returned (the sinks then read the rows back from the store).
        """
        db = self._db
        past_floor = self._past_floor(table)
        numbered = past_floor is not None  # the first row is inserted with its id
        first, appended = past_floor or self._top_id(table) + 1, []
        columns = self._columns_cache
        for cols, rows in groups.items():
            if numbered:
                db.execute(self._insert_sql(table, cols, with_id=True), (first, *rows[0]))
                self._insert_many(self._insert_sql(table, cols), rows[1:])
                numbered = False
            else:
                self._insert_many(self._insert_sql(table, cols), rows)
            full = columns.get((table, cols))
            if full is None:
                full = columns[(table, cols)] = (*_TAG_COLUMNS[table], *cols)
            appended.append(AppendedRows(table, first, full, rows))
            first += len(rows)
        if int(db.execute(f"SELECT max(id) FROM {table}").fetchone()[0] or 0) != first - 1:
            return []
        return appended

    def _insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """``executemany(sql, rows)`` for a one-row ``INSERT ... VALUES (?,...)``, run as
        statements of ROWS_PER_INSERT rows each (and the rest one by one); returns the
        rows inserted. SQLite numbers a statement's rows in order, as it numbers the rows
        of one statement run per row, and ``OR IGNORE`` skips a row the same way.

        Each statement run has a fixed cost (reset, step, halt; the sqlite3 module gives up
        and retakes the interpreter lock around it): 16 rows a run cut a commit's
        instructions by ~8 % (docs/mqtt.md, "Seventh round"). Statements of more rows
        save little more and their prepared programs take memory (90 rows: +4-6 MB).
        """
        db, n = self._db, len(rows)
        full = n - n % ROWS_PER_INSERT
        inserted = 0
        if full:
            many = self._many_sql.get(sql)
            if many is None:
                head, values, marks = sql.rpartition(" VALUES ")
                many = self._many_sql[sql] = (
                    head + values + ",".join([marks] * ROWS_PER_INSERT))
            flat = list(chain.from_iterable(rows[:full]))
            width = len(flat) // full * ROWS_PER_INSERT
            inserted += db.executemany(
                many, [flat[i:i + width] for i in range(0, len(flat), width)]).rowcount
        if full < n:
            inserted += db.executemany(sql, rows[full:]).rowcount
        return inserted

    def _insert_sql(self, table: str, cols: tuple[str, ...], *, with_id: bool = False) -> str:
        key = (table, cols)
        sql = self._sql_cache.get(key) if not with_id else None
        if sql is None:
            tags = ", ".join(("id", *_TAG_COLUMNS[table]) if with_id else _TAG_COLUMNS[table])
            names = "".join(f', "{c}"' for c in cols)
            marks = ",?" * (len(_TAG_COLUMNS[table]) + len(cols) + with_id)
            sql = f"INSERT INTO {table} ({tags}{names}) VALUES ({marks[1:]})"
            if not with_id:
                self._sql_cache[key] = sql
        return sql

    def _insert_quarantine(self, quarantine: Sequence[QuarantineEntry]) -> None:
        if not quarantine:
            return
        rows = [(q.received_ns, q.source, q.rejection.format, q.rejection.reason,
                 _storable(q.rejection.detail), _storable(q.rejection.node), q.rejection.seq,
                 bytes(q.rejection.raw), _storable(q.rejection.topic))
                for q in quarantine]
        columns = "received_ns, source, format, reason, detail, node, seq, raw, topic"
        past_floor = self._past_floor("quarantine")
        if past_floor is not None:
            self._db.execute(f"INSERT INTO quarantine (id, {columns}) VALUES (?{',?' * 9})",
                             (past_floor, *rows[0]))
            rows = rows[1:]
        self._db.executemany(f"INSERT INTO quarantine ({columns}) VALUES (?{',?' * 8})", rows)

    def _add_counters(self, counts: dict[str, int]) -> None:
        self._db.executemany(_ADD_COUNTER_SQL, [(k, v) for k, v in counts.items() if v])

    def add_counters(self, counts: dict[str, int]) -> None:
        with self._lock, self._tx():
            self._add_counters(counts)

    # ---------------------------------------------------------------- time

    def held_packets(self) -> list[tuple[int, str | None, int | None, int]]:
        """(packet id, boot id, monotonic receive ns, provisional time) of held packets."""
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT id, boot_id, monotonic_ns, time_ns FROM packet"
                    " WHERE time_source = 'held'"
                )
            )

    def first_held_row(self, table: str, after_id: int, boot_id: str) -> int | None:
        """The id of the first row of ``table`` after ``after_id`` that a sink must not
        deliver yet: of a packet held in this boot (its time is provisional and will be
        re-anchored in place, under the same ids, once the clock is trusted), or of a
        packet committed after one. None when there is none. Rows held in an earlier boot
        can never be re-anchored and are not held back."""
        with self._lock:
            row = self._db.execute(
                "SELECT min(id) FROM packet WHERE time_source = 'held' AND boot_id = ?",
                (boot_id,)).fetchone()
            if row[0] is None:
                return None
            found = self._db.execute(
                f"SELECT id FROM {table} WHERE id > ? AND packet_id >= ? ORDER BY id LIMIT 1",
                (after_id, row[0])).fetchone()
        return None if found is None else int(found[0])

    def set_packet_times(self, updates: Iterable[tuple[int, int, str]]) -> int:
        """Re-anchor packets: (packet id, new time_ns, new time_source)."""
        n = 0
        with self._lock, self._tx():
            for packet_id, time_ns, time_source in updates:
                self._db.execute(
                    "UPDATE packet SET time_ns=?, time_source=? WHERE id=?",
                    (time_ns, time_source, packet_id),
                )
                for table in DATA_TABLES:
                    self._db.execute(
                        f"UPDATE {table} SET time_ns=? WHERE packet_id=?", (time_ns, packet_id)
                    )
                n += 1
        return n

    # ---------------------------------------------------------------- bounds

    def used_bytes(self) -> int:
        with self._lock:
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * self._page_size)

    def enforce_bounds(self, now_ns: int) -> dict[str, int]:
        """Apply retention and the size bound; return what was deleted (also counted).

        Both cover the quarantine as well as the packets: rejected input (garbage from a
        receiver at the wrong baud rate, say) can fill a store as surely as readings. Under
        ``drop_oldest`` each round deletes the oldest tenth of whichever holds the oldest
        entry. Deleted pages go to SQLite's free list and are reused by new rows, so the
        file stops growing at the bound without a VACUUM.
        """
        deleted: dict[str, int] = {}
        if self.retention_days > 0:
            cutoff = now_ns - int(self.retention_days * 86400e9)
            n = self._delete_packets("time_ns < ?", (cutoff,))
            if n:
                deleted["retention_deleted"] = n
            n = self._delete_quarantine("received_ns < ?", (cutoff,))
            if n:
                deleted["retention_quarantine_deleted"] = n
            # Counted now: a full store below raises, and these deletions happened.
            self._count_deleted(deleted)
        if self.max_bytes > 0 and self.used_bytes() > self.max_bytes:
            if self.full_policy == "stop_ingest":
                raise StoreFull(
                    f"{self.path} holds {self.used_bytes() / 1e6:.1f} MB, over the bound of "
                    f"{self.max_bytes / 1e6:.1f} MB (full_policy: stop_ingest)"
                )
            dropped = {"dropped_oldest": 0, "dropped_oldest_quarantine": 0}
            while self.used_bytes() > self.max_bytes * 0.9:
                table = self._oldest_table()
                if table is None:
                    break
                n = (self._drop_oldest_tenth("packet", self._delete_packets)
                     if table == "packet" else
                     self._drop_oldest_tenth("quarantine", self._delete_quarantine))
                dropped["dropped_oldest" if table == "packet" else
                        "dropped_oldest_quarantine"] += n
                if n == 0:
                    break
            dropped = {k: v for k, v in dropped.items() if v}
            if dropped:
                log.warning(
                    "store %s over its size bound: deleted the %d oldest packets and %d "
                    "oldest quarantine entries (full_policy: drop_oldest)", self.path,
                    dropped.get("dropped_oldest", 0),
                    dropped.get("dropped_oldest_quarantine", 0))
            self._count_deleted(dropped)
            deleted.update(dropped)
        return deleted

    def _count_deleted(self, deleted: dict[str, int]) -> None:
        if deleted:
            self.add_counters({f"store.{k}": v for k, v in deleted.items()})

    def _oldest_table(self) -> str | None:
        """``packet`` or ``quarantine``: the one whose oldest entry was received first."""
        with self._lock:
            oldest = {
                table: self._db.execute(f"SELECT received_ns FROM {table} WHERE id ="
                                        f" (SELECT min(id) FROM {table})").fetchone()
                for table in ("packet", "quarantine")}
        present = {t: row[0] for t, row in oldest.items() if row is not None}
        return min(present, key=present.__getitem__) if present else None

    def _drop_oldest_tenth(self, table: str,
                           delete: Callable[[str, tuple[Any, ...]], int]) -> int:
        """Delete the oldest tenth of ``table``'s ids (at least one row)."""
        with self._lock:
            lo, hi = self._db.execute(f"SELECT min(id), max(id) FROM {table}").fetchone()
        if lo is None:
            return 0
        return delete("id < ?", (lo + max(1, (hi - lo) // 10),))

    def _delete_quarantine(self, where: str, params: tuple[Any, ...]) -> int:
        with self._lock, self._tx():
            before = self._top_ids()
            n = int(self._db.execute(f"DELETE FROM quarantine WHERE {where}", params).rowcount)
            self._keep_id_floors(before)
            return n

    def _delete_packets(self, where: str, params: tuple[Any, ...]) -> int:
        with self._lock, self._tx():
            ids = [r[0] for r in self._db.execute(f"SELECT id FROM packet WHERE {where}", params)]
            if not ids:
                return 0
            before = self._top_ids()
            lo, hi = min(ids), max(ids)
            for table in DATA_TABLES:
                self._db.execute(
                    f"DELETE FROM {table} WHERE packet_id BETWEEN ? AND ? AND packet_id IN "
                    f"(SELECT id FROM packet WHERE {where})",
                    (lo, hi, *params),
                )
            self._db.execute(f"DELETE FROM packet WHERE {where}", params)
            self._keep_id_floors(before)
            return len(ids)

    # ---------------------------------------------------------------- outbox

    def cursor(self, sink: str, table: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT last_id FROM sink_cursor WHERE sink=? AND tbl=?", (sink, table)
            ).fetchone()
        return int(row[0]) if row else 0

    def advance(self, sink: str, table: str, last_id: int) -> None:
        with self._lock, self._tx():
            self._db.execute(_ADVANCE_SQL, (sink, table, last_id))

    @contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """One write transaction for a consumer that keeps its own tables in this file
        (the notifier): its rows, its cursor and its counters commit together."""
        with self._lock, self._tx():
            yield StoreTransaction(self._db)

    def sink_delivered(
        self,
        sink: str,
        table: str,
        last_id: int,
        *,
        counters: dict[str, int] | None = None,
        quarantine: Sequence[QuarantineEntry] = (),
    ) -> None:
        """A sink delivered ``table`` up to ``last_id``: advance its cursor, quarantine the
        rows its server refused and add its counters, all in one transaction.

        The refused rows are counted by the sink (``sink.<name>.rejected_points``), not as
        ``rejected.<reason>``, which counts inputs (``received = stored + duplicates +
        rejected``).
        """
        with self._lock, self._tx():
            self._insert_quarantine(quarantine)
            if counters:
                self._add_counters(counters)
            self._db.execute(_ADVANCE_SQL, (sink, table, last_id))

    def rows_after(self, table: str, last_id: int, limit: int) -> list[dict[str, Any]]:
        """Outbox rows of one table after a consumer's cursor, oldest first."""
        if table not in OUTBOX_TABLES and table != "quarantine":
            raise ValueError(table)
        with self._lock:
            cur = self._db.execute(
                f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur]

    @contextmanager
    def outbox_cursor(
        self, table: str, last_id: int, limit: int, before_id: int | None = None
    ) -> Iterator[tuple[list[str], Iterable[tuple[Any, ...]]]]:
        """(column names, rows) of one outbox table after a consumer's cursor (and before
        ``before_id``), oldest first, as an open cursor: rows are read as they are used
        (the sinks' hot path). Holds this connection's lock (and a read snapshot) until the
        block ends."""
        if table not in OUTBOX_TABLES and table != "quarantine":
            raise ValueError(table)
        with self._lock:
            cur = self._db.execute(
                f"SELECT * FROM {table} WHERE id > ? AND id < ? ORDER BY id LIMIT ?",
                (last_id, 2**63 - 1 if before_id is None else before_id, limit)
            )
            try:
                yield [d[0] for d in cur.description], cur
            finally:
                cur.close()

    def backlog(self, sink: str, tables: Sequence[str] = OUTBOX_TABLES) -> dict[str, int]:
        out: dict[str, int] = {}
        for table in tables:
            last = self.cursor(sink, table)
            with self._lock:
                out[table] = int(
                    self._db.execute(
                        f"SELECT count(*) FROM {table} WHERE id > ?", (last,)
                    ).fetchone()[0]
                )
        return out

    # ---------------------------------------------------------------- alerts

    def rules_step(
        self,
        consumer: str,
        cursors: dict[str, int],
        states: dict[tuple[str, str], str | None],
        events: Sequence[AlertEvent],
        counters: dict[str, int] | None = None,
    ) -> None:
        """One step of the rules engine, in one transaction: its cursors over the tables it
        read, its changed per-series states (None deletes one) and the transitions it made.
        """
        with self._lock, self._tx():
            db = self._db
            db.executemany(
                "INSERT INTO alert (time_ns, site, plot, node, sensor, rule, severity, state,"
                " previous, value, since_ns, fingerprint, message, detail)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(e.time_ns, e.site, e.plot, e.node, e.sensor, e.rule, e.severity, e.state,
                  e.previous, e.value, e.since_ns, e.fingerprint, e.message("en"),
                  e.detail_json()) for e in events],
            )
            db.executemany(
                "DELETE FROM rule_state WHERE rule=? AND series=?",
                [key for key, value in states.items() if value is None],
            )
            db.executemany(
                "INSERT INTO rule_state VALUES (?,?,?) ON CONFLICT(rule, series)"
                " DO UPDATE SET state=excluded.state",
                [(*key, value) for key, value in states.items() if value is not None],
            )
            db.executemany(
                "INSERT INTO sink_cursor VALUES (?,?,?) ON CONFLICT(sink, tbl)"
                " DO UPDATE SET last_id = excluded.last_id",
                [(consumer, table, last_id) for table, last_id in cursors.items()],
            )
            if counters:
                self._add_counters(counters)

    def rule_states(self) -> dict[tuple[str, str], str]:
        """The rules engine's saved per-series states, by (rule, series key)."""
        with self._lock:
            return {(r, k): v for r, k, v in self._db.execute("SELECT * FROM rule_state")}

    def alert_rows(self, last_id: int, limit: int) -> list[dict[str, Any]]:
        """``alert`` outbox rows after a consumer's cursor (see AlertEvent.from_row)."""
        return self.rows_after("alert", last_id, limit)

    def active_alerts(self) -> list[dict[str, Any]]:
        """The latest transition of every alert that is pending or firing now."""
        with self._lock:
            cur = self._db.execute(
                "SELECT a.* FROM alert a JOIN (SELECT max(id) AS id FROM alert"
                " GROUP BY fingerprint) last ON a.id = last.id"
                " WHERE a.state != 'resolved' ORDER BY a.severity DESC, a.time_ns"
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur]

    # ---------------------------------------------------------------- reads

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {k: int(v) for k, v in self._db.execute("SELECT name, value FROM counter")}

    def counter_states(self) -> dict[tuple[str, str, str], tuple[float, int]]:
        """Baselines of running totals: (node, sensor, quantity) -> (total, time_ns)."""
        with self._lock:
            return {(n, s, q): (t, ns) for n, s, q, t, ns in
                    self._db.execute("SELECT * FROM counter_state")}

    def node_states(self) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute("SELECT * FROM node_state ORDER BY site, plot, node")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur]

    def quarantine(self, *, reason: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT * FROM quarantine"
        params: tuple[Any, ...] = ()
        if reason:
            sql += " WHERE reason = ?"
            params = (reason,)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            cur = self._db.execute(sql, (*params, limit))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur]

    def quarantine_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(
                self._db.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason")
            )

    def latest_values(self) -> dict[tuple[str, str], dict[str, float]]:
        """Last stored value of each quantity per (node, sensor): for status and the demo.

        "Last" is the highest id, i.e. the latest commit; within one commit a series whose
        columns changed from one packet to the next (a probe value rejected) may show the
        value of an earlier packet of that commit (rows are inserted a column layout at a
        time: :meth:`write_batch`)."""
        cols = [c for c in READING_FIELDS if c in self._reading_cols]
        picks = ", ".join(
            f'(SELECT "{c}" FROM reading r2 WHERE r2.node=r.node AND r2.sensor=r.sensor'
            f' AND "{c}" IS NOT NULL ORDER BY id DESC LIMIT 1)'
            for c in cols
        )
        out: dict[tuple[str, str], dict[str, float]] = {}
        with self._lock:
            for row in self._db.execute(
                f"SELECT node, sensor, {picks} FROM reading r GROUP BY node, sensor"
            ):
                values = {c: v for c, v in zip(cols, row[2:], strict=True) if v is not None}
                out[(row[0], row[1])] = values
        return out

    def latest_device(self) -> dict[str, dict[str, float]]:
        cols = [c for c in DEVICE_FIELDS if c in self._device_cols]
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            cur = self._db.execute(
                f"SELECT node, {', '.join(cols)} FROM device WHERE id IN"
                " (SELECT max(id) FROM device GROUP BY node)"
            )
            for row in cur:
                out[row[0]] = {c: v for c, v in zip(cols, row[1:], strict=True) if v is not None}
        return out

    def iter_readings(
        self,
        *,
        site: str | None = None,
        plot: str | None = None,
        node: str | None = None,
        time_from_ns: int | None = None,
        time_to_ns: int | None = None,
        batch: int = 5000,
    ) -> Iterator[dict[str, Any]]:
        """Readings joined with their packet's provenance, in time order (for export)."""
        where, params = _time_range("r.time_ns", time_from_ns, time_to_ns)
        for col, val in (("r.site", site), ("r.plot", plot), ("r.node", node)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        cols = ", ".join(f'r."{c}"' for c in READING_FIELDS if c in self._reading_cols)
        sql = (
            f"SELECT r.time_ns, r.site, r.plot, r.node, r.sensor, {cols}, p.seq, p.time_source,"
            " p.source, p.format, p.received_ns FROM reading r JOIN packet p ON p.id = r.packet_id"
            f" WHERE {' AND '.join(where)} ORDER BY r.time_ns, r.node, r.sensor"
        )
        return self._stream(sql, params, batch)

    def rows_between(self, table: str, time_from_ns: int | None = None,
                     time_to_ns: int | None = None) -> Iterator[dict[str, Any]]:
        """Rows of an outbox table in time order, ``time_from_ns <= time < time_to_ns``."""
        if table not in OUTBOX_TABLES:
            raise ValueError(table)
        where, params = _time_range("time_ns", time_from_ns, time_to_ns)
        return self._stream(f"SELECT * FROM {table} WHERE {' AND '.join(where)}"
                            " ORDER BY time_ns, id", params)

    def _stream(self, sql: str, params: Sequence[Any], batch: int = 5000
                ) -> Iterator[dict[str, Any]]:
        """A query's rows as dicts, ``batch`` rows in memory at a time: an export of a
        season (millions of rows) must fit a Raspberry Pi. One statement, so one snapshot
        of the store from the first row to the last; the lock is held per batch only."""
        with self._lock:
            cur = self._db.execute(sql, params)
            names = [d[0] for d in cur.description]
        try:
            while True:
                with self._lock:
                    rows = cur.fetchmany(batch)
                if not rows:
                    return
                for row in rows:
                    yield dict(zip(names, row, strict=True))
        finally:
            with self._lock:
                cur.close()

    def count(self, table: str) -> int:
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self._tx():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only query for tests and tools."""
        with self._lock:
            return list(self._db.execute(sql, params))


def _time_range(column: str, time_from_ns: int | None, time_to_ns: int | None
                ) -> tuple[list[str], list[Any]]:
    """WHERE conditions (always at least one) and parameters for a half-open time range."""
    where: list[str] = ["1=1"]
    params: list[Any] = []
    if time_from_ns is not None:
        where.append(f"{column} >= ?")
        params.append(time_from_ns)
    if time_to_ns is not None:
        where.append(f"{column} < ?")
        params.append(time_to_ns)
    return where, params


def _jump_entries(steps: CounterSteps) -> list[QuarantineEntry]:
    """Quarantine rows for refused increments. The packet itself is stored (its total is
    in its reading row), so ``raw`` holds the total the device sent, not the packet, and
    they are counted as ``flagged.<total>.jump``, not as rejected inputs."""
    return [
        QuarantineEntry(
            Rejection(JUMP_REASON, f"{j.quantity}@{j.sensor}: {j.detail}",
                      f"{j.quantity}@{j.sensor}={j.total!r}".encode(), j.record.format,
                      j.record.node, j.record.seq),
            j.record.source, j.record.received_ns)
        for j in steps.jumps
    ]


class StoreTransaction:
    """An open write transaction of :meth:`Store.transaction`: SQL on the consumer's own
    tables through ``db``, and the store's cursor and counter updates."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def advance(self, sink: str, table: str, last_id: int) -> None:
        self.db.execute(_ADVANCE_SQL, (sink, table, last_id))

    def add_counters(self, counts: dict[str, int]) -> None:
        self.db.executemany(_ADD_COUNTER_SQL, [(k, v) for k, v in counts.items() if v])


_WRITERS: dict[str, threading.RLock] = {}
_WRITERS_LOCK = threading.Lock()


def _writer_lock(path: Path) -> threading.RLock:
    """The one lock of this process for write transactions on the database at ``path``.

    SQLite lets one connection write at a time and makes the others wait in its busy
    handler, which sleeps 1, 2, 5, 10... ms between tries instead of waking when the lock
    is free. The pipeline commits many times a second while the InfluxDB sink, the rules
    runner and the status report commit their own cursors, each on a connection of its
    own: a thread of this process that has to wait now waits on this lock and starts the
    moment the writer before it has committed. Other processes (the sink in a process of
    its own, the CLI) still meet SQLite's busy handler. Measured with a thread committing
    500-packet batches back to back and another committing a cursor every 20 ms: the
    cursor commits waited 19 ms (median), 104 ms (p90) and up to 631 ms in the busy
    handler; on this lock 13, 30 and 63 ms, the batches no slower.
    """
    key = str(path.resolve())
    with _WRITERS_LOCK:
        lock = _WRITERS.get(key)
        if lock is None:
            lock = _WRITERS[key] = threading.RLock()
        return lock


class _Transaction:
    def __init__(self, db: sqlite3.Connection, writer: threading.RLock) -> None:
        self._db = db
        self._writer = writer

    def __enter__(self) -> None:
        if not self._writer.acquire(timeout=BUSY_TIMEOUT_S):  # as busy_timeout would
            raise sqlite3.OperationalError(
                f"database is locked (another thread of this process has been writing for "
                f"{BUSY_TIMEOUT_S:g} s)")
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._writer.release()
            raise

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self._db.execute("COMMIT")
            else:
                self._db.execute("ROLLBACK")
        finally:
            self._writer.release()
