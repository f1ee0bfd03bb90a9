"""The InfluxDB sink: drains the SQLite outbox into InfluxDB, losing nothing.

A thread reads ``reading`` and ``device`` rows after this sink's own cursor (its own
SQLite connection; WAL lets it read while the pipeline writes), turns them into line
protocol, writes a batch and advances the cursor **only after the server accepted it**.
Everything not yet accepted stays in the outbox, so an InfluxDB that is down for hours
costs disk, not data, and never holds back another sink (cursors are per sink).

Two write paths, chosen by ``api``:

* ``v2``: ``/api/v2/write`` through influxdb-client's *synchronous* WriteApi, so each
  failure reaches us as an exception. (Its default batching writer retries and logs in a
  background thread: against a server without ``/api/v2/write`` it stored nothing and
  raised nothing.)
* ``v1``: ``/write?db=…&precision=ns`` with the standard library's http.client (InfluxDB
  1.x, and the 1.x compatibility API of 2.x/3.x).

Third-party errors are translated into :class:`WriteError` at one boundary (the writers'
``write``), each with a :class:`FailureClass` that decides what happens next, as Telegraf's
InfluxDB output does:

=================  ======================  ===================================================
class              from                    what happens
=================  ======================  ===================================================
(success)          2xx                     cursor advanced, ``written`` counted
``bad_data``       400, 422 from InfluxDB  batch split in halves until the refused points are
                                           single; those are quarantined (``sink_rejected``,
                                           raw = their line), the rest written. From
                                           something else (no ``X-Influxdb-Version``, no
                                           JSON error): ``client``
``too_large``      413                     batch split; a single point refused is quarantined
``throttled``      429, 503                wait, at least the server's ``Retry-After``
``server``         other 5xx, 425          exponential backoff with jitter, capped
``network``        refused, reset,         exponential backoff with jitter, capped
                   timeout, 408
``auth``           401, 403                error log naming the config key, long wait
``not_found``      404                     error log naming the config key, long wait
``client``         other 4xx               error log, long wait (data kept)
=================  ======================  ===================================================

Re-sending is harmless: InfluxDB keeps one value per measurement, tag set, field and
timestamp, so a batch written twice (crash between the write and the cursor update, a
timeout after the server had accepted, the halves of a split batch after a partial
write) is stored once.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol
from urllib.parse import quote, urlencode, urlsplit

from gateway.clock import boot_id
from gateway.packet import Rejection
from gateway.sinks.handoff import Handoff
from gateway.sinks.lifecycle import stop_worker
from gateway.sinks.line_protocol import LineProtocolError, RowEncoder, encode_point
from gateway.sinks.retry import RetryPolicy, parse_retry_after
from gateway.store.sqlite import DATA_TABLES, OUTBOX_TABLES, AppendedRows, QuarantineEntry, Store

if TYPE_CHECKING:  # a sink process gets its settings as plain data (gateway/sinks/process.py)
    from gateway.config.models import InfluxDBSinkConfig

log = logging.getLogger(__name__)

CONFIG_KEY: Final = "sinks.influxdb"
SELF_METRICS_INTERVAL_S: Final = 10.0


class FailureClass(StrEnum):
    BAD_DATA = "bad_data"
    TOO_LARGE = "too_large"
    THROTTLED = "throttled"
    SERVER = "server"
    NETWORK = "network"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    CLIENT = "client"


SPLIT: Final = frozenset({FailureClass.BAD_DATA, FailureClass.TOO_LARGE})
NEEDS_A_PERSON: Final = frozenset(
    {FailureClass.AUTH, FailureClass.NOT_FOUND, FailureClass.CLIENT}
)


class WriteError(Exception):
    """A write the server did not accept (or that never reached it)."""

    def __init__(
        self,
        failure: FailureClass,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{failure}: {f'HTTP {status}: ' if status else ''}{message}")
        self.failure = failure
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s


def classify(status: int) -> FailureClass | None:
    """The failure class of an HTTP status; None for success."""
    if 200 <= status < 300:
        return None
    if status in (400, 422):
        return FailureClass.BAD_DATA
    if status == 413:
        return FailureClass.TOO_LARGE
    if status in (429, 503):
        return FailureClass.THROTTLED
    if status in (401, 403):
        return FailureClass.AUTH
    if status == 404:
        return FailureClass.NOT_FOUND
    if status == 408:  # the server gave up waiting for the request body: a slow link
        return FailureClass.NETWORK
    if status == 425:  # "Too Early" (TLS early data): the same request later succeeds
        return FailureClass.SERVER
    if 400 <= status < 500:
        return FailureClass.CLIENT
    return FailureClass.SERVER


def error_from_response(status: int, retry_after: str | None, body: bytes | str | None,
                        *, influx_version: str | None = None) -> WriteError:
    """The :class:`WriteError` of a refused write. ``influx_version`` is the response's
    ``X-Influxdb-Version`` header (InfluxDB 1.x/2.x and VictoriaMetrics send it).

    A 400/422 means "these points are bad" only when an InfluxDB-compatible server says so
    (that header, or its JSON error body): then the batch is split and the refused points
    quarantined. The same status from anything else in front of it (a proxy, a web server
    at the wrong URL) says nothing about the points: splitting would quarantine every one
    of them, so it is a client error instead, logged with the config key, data kept."""
    failure = classify(status) or FailureClass.SERVER
    message, influx_error = _server_message(body)
    if failure is FailureClass.BAD_DATA and influx_version is None and not influx_error:
        failure = FailureClass.CLIENT
        message = (f"{message} (not from InfluxDB: no X-Influxdb-Version header and no JSON "
                   "error; a proxy or another service answers at this URL?)")
    return WriteError(failure, message, status=status,
                      retry_after_s=parse_retry_after(retry_after))


def _server_message(body: bytes | str | None) -> tuple[str, bool]:
    """(the server's message, whether the body is an InfluxDB-style error: a JSON object
    with an ``error`` (1.x, 3.x) or ``message`` (2.x) text)."""
    if not body:
        return "(no message)", False
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip()[:1000], False
    if isinstance(doc, dict):
        for key in ("error", "message"):
            if isinstance(doc.get(key), str):
                return str(doc[key])[:1000], True
    return text.strip()[:1000], False


# --------------------------------------------------------------------------- writers


class Writer(Protocol):
    where: str

    def write(self, body: bytes) -> None:
        """Send line protocol; raise :class:`WriteError` unless the server accepted it."""

    def close(self) -> None: ...


class V1Writer:
    """``POST /write?db=…&precision=ns`` (InfluxDB 1.x and the 1.x API of 2.x/3.x).

    A token ``user:password`` is sent as HTTP basic auth (InfluxDB 1.x users; 2.x/3.x take
    the token as password), any other token as ``Authorization: Token …``.

    One kept-alive connection from the standard library's ``http.client``: a single POST
    to a single server needs no pool, and urllib3 as installed here (urllib3-future,
    pulled in by grafana-client's niquests) cost the gateway process 10 MB of memory.
    A request on a kept-alive connection that the server had already closed is sent once
    more on a fresh one (harmless: a write is idempotent, see above).
    """

    def __init__(self, url: str, database: str, token: str | None, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._path = f"{parts.path.rstrip('/')}/write?" + urlencode(
            {"db": database, "precision": "ns"})
        self.where = f"{url.rstrip('/')}/write?db={quote(database)}"
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if token and ":" in token:
            self._headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        elif token:
            self._headers["Authorization"] = f"Token {token}"
        self._connect_timeout_s = min(5.0, timeout_s)
        self._timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """The open connection and whether it was used before (may be stale)."""
        if self._conn is not None:
            return self._conn, True
        conn: http.client.HTTPConnection
        if self._https:
            import ssl

            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._connect_timeout_s,
                context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(
                self._host, self._port, timeout=self._connect_timeout_s)
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(self._timeout_s)
        self._conn = conn
        return conn, False

    def write(self, body: bytes) -> None:
        while True:
            reused = False
            try:
                conn, reused = self._connection()
                conn.request("POST", self._path, body=body, headers=self._headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, OSError) as e:
                self.close()
                if reused and isinstance(e, _STALE_CONNECTION):
                    continue  # the server closed the idle connection: once more, fresh
                raise WriteError(FailureClass.NETWORK, _network_message(e)) from e
            if resp.will_close:
                self.close()
            if classify(resp.status) is not None:
                raise error_from_response(resp.status, resp.getheader("Retry-After"), data,
                                          influx_version=resp.getheader("X-Influxdb-Version"))
            return

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# What a server's close of an idle kept-alive connection looks like to the next request.
_STALE_CONNECTION: Final = (
    http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
    http.client.CannotSendRequest,
)


class V2Writer:
    """``/api/v2/write`` through influxdb-client's synchronous WriteApi."""

    def __init__(self, url: str, org: str, bucket: str, token: str | None,
                 timeout_s: float) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.where = f"{url.rstrip('/')}/api/v2/write?org={quote(org)}&bucket={quote(bucket)}"
        self._org = org
        self._bucket = bucket
        self._client = InfluxDBClient(
            url=url, token=token, org=org,  # type: ignore[arg-type]  # None: no auth header
            timeout=(int(min(5.0, timeout_s) * 1000), int(timeout_s * 1000)),
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, body: bytes) -> None:
        import urllib3  # influxdb-client's own HTTP library: loaded with it
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(
                bucket=self._bucket, org=self._org, record=body,
                write_precision=WritePrecision.NS,  # type: ignore[arg-type]  # a str constant
            )
        except ApiException as e:
            if not e.status:
                raise WriteError(FailureClass.NETWORK, str(e.reason or e)) from e
            headers: Any = e.headers or {}  # urllib3 HTTPHeaderDict: case-insensitive get
            raise error_from_response(int(e.status), headers.get("Retry-After"), e.body,
                                      influx_version=headers.get("X-Influxdb-Version")) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise WriteError(FailureClass.NETWORK, _network_message(e)) from e

    def close(self) -> None:
        self._api.close()
        self._client.close()


def _network_message(e: BaseException) -> str:
    reason = getattr(e, "reason", None)  # MaxRetryError wraps the interesting one
    return f"{type(e).__name__}: {reason or e}"


def read_token(cfg: InfluxDBSinkConfig) -> str | None:
    if cfg.token is not None:
        return cfg.token.get_secret_value()
    if cfg.token_file is not None:
        return Path(cfg.token_file).read_text(encoding="utf-8").strip()
    return None


def make_writer(cfg: InfluxDBSinkConfig, *, timeout_s: float = 10.0) -> Writer:
    token = read_token(cfg)
    if cfg.api == "v1":
        assert cfg.database, "validated by InfluxDBSinkConfig"
        return V1Writer(cfg.url, cfg.database, token, timeout_s)
    assert cfg.org and cfg.bucket, "validated by InfluxDBSinkConfig"
    return V2Writer(cfg.url, cfg.org, cfg.bucket, token, timeout_s)


# --------------------------------------------------------------------------- the sink


class Line(NamedTuple):
    """One point, built for every outbox row: a tuple, which is cheap to make (made with
    ``tuple.__new__``, without the generated ``__new__``'s Python frame)."""

    row_id: int
    node: str
    text: str


_new_tuple: Final = tuple.__new__
# A row encoder for one column layout, with where the row's id (-1: none) and node are.
_Encoder = tuple[RowEncoder, int, int]


@dataclass
class _Batch:
    """One table's rows after a cursor, encoded: what to write, what to quarantine."""

    now: int
    rows: int = 0
    last_id: int = 0
    lines: list[Line] = field(default_factory=list)
    quarantine: list[QuarantineEntry] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class FlushResult:
    written: int = 0
    rejected: int = 0
    full: bool = False  # a table had a full batch: more is waiting


class _Stopping(Exception):
    """The stop deadline passed in the middle of splitting a batch."""


def oldest_unsent_age_s(store: Store, sink: str, now_ns: int | None = None) -> float:
    """Seconds since the oldest row this sink has not delivered was received (0: none)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    oldest: int | None = None
    for table in OUTBOX_TABLES:
        received = (  # an alert is "received" when the engine made it
            f"SELECT t.time_ns FROM {table} t" if table == "alert" else
            f"SELECT p.received_ns FROM {table} t JOIN packet p ON p.id = t.packet_id"
        )
        rows = store.execute(
            received + " WHERE t.id > ? ORDER BY t.id LIMIT 1",
            (store.cursor(sink, table),),
        )
        if rows and (oldest is None or rows[0][0] < oldest):
            oldest = int(rows[0][0])
    return 0.0 if oldest is None else max(0.0, (now_ns - oldest) / 1e9)


class InfluxSink:
    """Drains the outbox into one InfluxDB. ``start()``/``stop()``, or ``flush_once()``."""

    def __init__(
        self,
        store_path: Path,
        cfg: InfluxDBSinkConfig,
        *,
        name: str = "influxdb",
        gateway_id: str,
        stop: threading.Event | None = None,
        retry: RetryPolicy | None = None,
        self_metrics_interval_s: float = SELF_METRICS_INTERVAL_S,
        timeout_s: float = 10.0,
        stop_timeout_s: float = 3.0,
        writer: Writer | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.gateway_id = gateway_id
        self.retry = retry or RetryPolicy()
        self.self_metrics_interval_s = self_metrics_interval_s
        self.stop_timeout_s = stop_timeout_s
        self._clock_ns = clock_ns
        self._stop = stop or threading.Event()
        self._deadline: float | None = None  # monotonic; set by stop()
        self._store = Store(store_path)  # own connection; busy_timeout set by Store
        self._writer = writer or make_writer(cfg, timeout_s=timeout_s)
        self._thread: threading.Thread | None = None
        self._failures = 0  # consecutive failed steps
        self._next_self_metrics = 0.0
        self._self_metrics_failing = False
        self.last_error: WriteError | None = None
        self._close_lock = threading.Lock()
        self._closed = False
        self._encoders: dict[tuple[str, tuple[str, ...]], _Encoder] = {}
        # What the pipeline just committed (same process): written from memory when it
        # continues the cursor, else read from the store (gateway/sinks/handoff.py). Woken
        # at half a batch; room for two batches, so that commits during a write are kept
        # (with one batch of room a 50,000-message burst read 40 % of its rows back).
        self._boot_id = boot_id()
        self._handoff = Handoff(DATA_TABLES, limit_rows=2 * cfg.batch_size,
                                wake_rows=max(1, cfg.batch_size // 2))
        # rows encoded, by where they were read (a retried batch counts again)
        self.rows_from = {"memory": 0, "store": 0}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        assert self._thread is None, "already started"
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)
        self._thread.start()
        log.info("sink %s: writing to %s", self.name, self._writer.where)

    def offer(self, appended: Sequence[AppendedRows], *, more_coming: bool = True) -> None:
        """Rows the pipeline has just committed (its thread, after the commit).

        While commits come full (``more_coming``: a burst, a backlog) the sink waits for
        half a batch, so that writes stay large. Once the input goes quiet it writes what
        is here at once instead of after ``flush_interval_s``: the end of a burst, or a
        farm's single uplink, reaches InfluxDB within a commit's time, not a second later.
        """
        self._handoff.offer(appended, flush=not more_coming)

    def stop(self, timeout: float | None = None) -> None:
        """Finish the batch in flight (at most ``stop_timeout_s``), then stop.

        What is not delivered stays in the outbox for the next start. A request still
        hanging at the deadline is abandoned (the thread is a daemon): its batch is sent
        again next time, which InfluxDB stores once.
        """
        timeout = self.stop_timeout_s if timeout is None else timeout
        self._deadline = time.monotonic() + timeout
        self._handoff.wake.set()
        stop_worker(self._thread, self._stop, timeout, self.close, log,
                    f"sink {self.name}: a write was still in flight at shutdown; it will be "
                    "sent again at the next start")

    def close(self) -> None:
        """Close the writer and the store connection (the thread does this when it ends)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._writer.close()
        self._store.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._handoff.wake.clear()
                try:
                    result = self.flush_once()
                except WriteError as e:
                    self._stop.wait(self._failed(e))
                    continue
                except _Stopping:
                    break
                except Exception:  # a bug or a broken store: keep trying, loudly
                    log.exception("sink %s: unexpected error", self.name)
                    self._failures += 1
                    self._stop.wait(self.retry.transient.delay(self._failures))
                    continue
                self._recovered()
                self._maybe_self_metrics()
                if not result.full:
                    self._handoff.wake.wait(self.cfg.flush_interval_s)
        finally:
            self.close()

    # ------------------------------------------------------------------ draining

    def flush_once(self) -> FlushResult:
        """One drain step: at most one batch per table. Raises :class:`WriteError` when
        the server did not take a batch (counted; nothing advanced)."""
        result = FlushResult()
        for i, table in enumerate(OUTBOX_TABLES):
            if i and self._stop.is_set():
                break  # stopping: the batch in flight is done, the rest waits in the outbox
            cursor = self._store.cursor(self.name, table)
            batch = _Batch(now=self._clock_ns())
            # Rows of packets held in this boot (provisional times, re-anchored in place
            # once the clock is trusted) and all after them wait in the store.
            held = (self._store.first_held_row(table, cursor, self._boot_id)
                    if table in DATA_TABLES and self._boot_id is not None else None)
            offered = self._handoff.take(table, cursor, self.cfg.batch_size) if (
                table in DATA_TABLES and held is None) else []
            if offered:
                self._encode_rows(batch, table, [(c.columns, c.rows, c.first_id)
                                                 for c in offered])
                self.rows_from["memory"] += batch.rows
            else:
                # Rows are encoded as SQLite hands them out: the batch is held as line
                # protocol only, not also as row tuples (5,000 rows of ~20 columns: 5 MB).
                with self._store.outbox_cursor(table, cursor, self.cfg.batch_size,
                                               before_id=held) as (columns, rows):
                    self._encode_rows(batch, table, [(columns, rows, None)])
                self.rows_from["store"] += batch.rows
            if not batch.rows:
                continue
            result.full = result.full or batch.rows == self.cfg.batch_size
            written, rejected = self._deliver_batch(table, batch)
            result.written += written
            result.rejected += rejected
        return result

    def _encoder(self, table: str, columns: Sequence[str]) -> _Encoder:
        key = (table, tuple(columns))
        encoder = self._encoders.get(key)
        if encoder is None:
            if len(self._encoders) >= 64:
                self._encoders.clear()
            encoder = self._encoders[key] = (
                RowEncoder(table, columns), columns.index("id") if "id" in columns else -1,
                columns.index("node"))
        return encoder

    def _encode_rows(
        self, batch: _Batch, table: str,
        parts: Iterable[tuple[Sequence[str], Iterable[tuple[Any, ...]], int | None]],
    ) -> None:
        """Add rows to the batch, from parts of (columns, rows, first id): outbox rows
        with an ``id`` column (first id None), or rows numbered from the first id (runs
        offered by the pipeline: one per column layout of a commit)."""
        lines, skipped = batch.lines, f"sink.{self.name}.skipped_empty"
        row_id = batch.last_id
        for columns, rows, first_id in parts:
            encoder, id_at, node_at = self._encoder(table, columns)
            encode = encoder.__call__  # bound once: calling the instance looks it up per row
            for row_id, row in enumerate(rows, first_id or 0):
                if first_id is None:
                    row_id = row[id_at]
                try:
                    text = encode(row)
                except LineProtocolError as e:
                    raw = json.dumps(dict(zip(columns, row, strict=True)), default=str,
                                     sort_keys=True).encode()
                    batch.quarantine.append(self._quarantine_entry(
                        row[node_at], raw, f"unwritable: {e}", batch.now))
                    batch.rows += 1
                    continue
                batch.rows += 1
                if text is None:
                    batch.counts[skipped] = batch.counts.get(skipped, 0) + 1
                    continue
                lines.append(_new_tuple(Line, (row_id, row[node_at], text)))
        batch.last_id = row_id

    def _deliver_batch(self, table: str, batch: _Batch) -> tuple[int, int]:
        counts, quarantine = batch.counts, batch.quarantine
        written = 0
        try:
            if batch.lines:
                written, refused = self._deliver(batch.lines, counts)
                for line, message in refused:
                    quarantine.append(self._quarantine_entry(line.node, line.text.encode(),
                                                             message, batch.now))
        except WriteError:
            self._store.add_counters(counts)
            raise
        if written:
            counts[f"sink.{self.name}.written"] = written
        if quarantine:
            counts[f"sink.{self.name}.rejected_points"] = len(quarantine)
            for q in quarantine:
                log.warning("sink %s: %s point of node %s refused and quarantined: %s",
                            self.name, table, q.rejection.node, q.rejection.detail)
        self._store.sink_delivered(
            self.name, table, int(batch.last_id), counters=counts, quarantine=quarantine
        )
        return written, len(quarantine)

    def _quarantine_entry(self, node: str, raw: bytes, detail: str, now: int
                          ) -> QuarantineEntry:
        return QuarantineEntry(
            Rejection("sink_rejected", detail, raw, "line_protocol", node=node),
            f"sink:{self.name}", now,
        )

    def _deliver(self, lines: Sequence[Line], counts: dict[str, int]
                 ) -> tuple[int, list[tuple[Line, str]]]:
        """Write lines; split on bad data or size until the refused points stand alone.

        Returns (points accepted, [(refused line, server message)]). Other failures raise.
        """
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise _Stopping
        try:
            self._writer.write("\n".join([line.text for line in lines]).encode())
        except WriteError as e:
            key = f"sink.{self.name}.write_errors.{e.failure}"
            counts[key] = counts.get(key, 0) + 1
            if e.failure not in SPLIT:
                raise
            if len(lines) == 1:
                return 0, [(lines[0], f"HTTP {e.status}: {e.message}")]
            mid = len(lines) // 2
            ok_a, bad_a = self._deliver(lines[:mid], counts)
            ok_b, bad_b = self._deliver(lines[mid:], counts)
            return ok_a + ok_b, bad_a + bad_b
        return len(lines), []

    # ------------------------------------------------------------------ failures

    def _failed(self, e: WriteError) -> float:
        """Log a failed step; return how long to wait before the next one."""
        self._failures += 1
        self.last_error = e
        if e.failure in NEEDS_A_PERSON:
            delay = self.retry.config.delay(self._failures, e.retry_after_s)
            log.error("sink %s: %s; keeping the data, next try in %.0f s",
                      self.name, self._explain(e), delay)
            return delay
        policy = self.retry.throttled if e.failure is FailureClass.THROTTLED else (
            self.retry.transient)
        delay = policy.delay(self._failures, e.retry_after_s)
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(level, "sink %s: write to %s failed (%s); backlog kept, retrying in %.1f s"
                "%s", self.name, self._writer.where, e, delay,
                "" if self._failures == 1 else f" (failure {self._failures} in a row)")
        return delay

    def _recovered(self) -> None:
        if self._failures:
            log.info("sink %s: writing again after %d failed attempts; backlog %s",
                     self.name, self._failures, self.backlog())
            self._failures = 0
            self.last_error = None

    def _explain(self, e: WriteError) -> str:
        """A failure a person must fix, with the config key to look at."""
        where, cfg = self._writer.where, self.cfg
        if e.failure is FailureClass.AUTH:
            return (f"{where} refused the credentials (HTTP {e.status}: {e.message}): check "
                    f"{CONFIG_KEY}.token or {CONFIG_KEY}.token_file and the token's write "
                    "permission")
        if e.failure is FailureClass.NOT_FOUND:
            if cfg.api == "v1":
                return (f"{where}: {e.message} (HTTP 404): check {CONFIG_KEY}.database "
                        f"({cfg.database!r}) exists, e.g. CREATE DATABASE \"{cfg.database}\"")
            if "page not found" in e.message or e.message.strip().lower() == "not found":
                return (f"{where}: the server has no /api/v2/write (HTTP 404: {e.message}); "
                        f"for InfluxDB 1.x set {CONFIG_KEY}.api: v1 and "
                        f"{CONFIG_KEY}.database, or check {CONFIG_KEY}.url")
            return (f"{where}: {e.message} (HTTP 404): check {CONFIG_KEY}.org "
                    f"({cfg.org!r}) and {CONFIG_KEY}.bucket ({cfg.bucket!r})")
        return f"{where} refused the write (HTTP {e.status}: {e.message}): check {CONFIG_KEY}"

    # ------------------------------------------------------------------ visibility

    def backlog(self) -> dict[str, int]:
        """Rows per table not yet delivered by this sink."""
        return self._store.backlog(self.name)

    def backlog_age_s(self) -> float:
        """Seconds since the oldest undelivered row was received (0 when caught up)."""
        return oldest_unsent_age_s(self._store, self.name, self._clock_ns())

    def self_metrics_line(self) -> str:
        """The ``gateway`` point: the store's counters, this sink's backlog and its age.

        Counters that have not counted anything yet are written as 0, so a dashboard's
        per-interval panel sees a counter's first increase (a field that appears only at
        its first non-zero value has no earlier point to subtract from).
        """
        counts = dict.fromkeys(self._known_counters(), 0) | self._store.counters()
        fields: dict[str, float | int] = {
            name.replace(".", "_"): value for name, value in sorted(counts.items())
        }
        for table, n in self.backlog().items():
            fields[f"backlog_{table}"] = n
        fields["backlog_age_s"] = float(self.backlog_age_s())
        return encode_point("gateway", {"gateway": self.gateway_id}, fields, self._clock_ns())

    def _known_counters(self) -> list[str]:
        sink = f"sink.{self.name}"
        return ["received.packets", "stored", "duplicates", f"{sink}.written",
                f"{sink}.rejected_points", *(f"{sink}.write_errors.{c}" for c in FailureClass)]

    def write_self_metrics(self) -> None:
        """Write the ``gateway`` point now (raises :class:`WriteError`)."""
        self._writer.write(self.self_metrics_line().encode())

    def _maybe_self_metrics(self) -> None:
        now = time.monotonic()
        if now < self._next_self_metrics:
            return
        self._next_self_metrics = now + self.self_metrics_interval_s
        try:
            self.write_self_metrics()
        except (WriteError, LineProtocolError) as e:
            # A snapshot: the next one replaces it. Say so once per failing streak.
            level = logging.DEBUG if self._self_metrics_failing else logging.WARNING
            log.log(level, "sink %s: self-metrics not written: %s", self.name, e)
            self._self_metrics_failing = True
        else:
            self._self_metrics_failing = False
