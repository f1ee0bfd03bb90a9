"""HTTP source: Ecowitt "customized" uploads, answered 200 only after they are committed.

An Ecowitt gateway (GW1000/GW1100/GW2000, HP2550 console...) POSTs a form body to
``http://<host>:<port><path>`` every upload interval. Each request is one
:class:`~gateway.sources.items.Message` on the pipeline's bounded queue; the handler thread
then waits until the pipeline has committed the batch holding it (the message's ``ack``)
and only then answers:

- **200** the body was decoded and its readings committed (readings that validation
  refused are quarantined, as from any source);
- **400** the body was no Ecowitt upload (``bad_form``, ``schema``), or had nothing but
  fields refused as ``unit_mismatch``: quarantined with its raw bytes and reason,
  committed, so sending it again would not help;
- **403** the station is not in ``sources.http.stations`` (quarantined as
  ``unknown_station``);
- **404** another path, **405** another method, **411** no ``Content-Length`` (chunked
  bodies are not taken), **413** a body over ``max_body_bytes`` (not read, not queued;
  the decoder is bound to the same limit, see :func:`upload_decoder`),
  **408** a client that did not send its request within ``timeout_s``;
- **503** the gateway is stopping, too many connections are open, or the commit did not
  happen within ``commit_timeout_s``. Nothing answered 503 was acknowledged; a body that
  was already queued may still be stored, and sending it again is harmless (dedup).

So a 200 always means "committed", the rule the MQTT source keeps with its PUBACKs. The
Ecowitt firmware does not resend a failed upload, so the codes are for people and tools
(curl, a reverse proxy's logs) and for honesty, not for the station.

Threads: ``http.server.ThreadingHTTPServer`` (stdlib; an upload every 16-60 s per station
needs nothing more), one thread per connection, at most ``MAX_CONNECTIONS``. A stuck or
slow client cannot hold a thread: each socket read waits at most ``timeout_s``, a body not
complete ``timeout_s`` after the connection opened is answered 408, and the server's loop
cuts any connection still sending its request ``CUT_GRACE_S`` after that (a client
trickling header lines). HTTP/1.0: one request per connection.

Stopping: the gateway's shared stop event makes new requests 503 while queued ones are
still committed by the draining pipeline and answered 200; :meth:`HttpSource.stop`, after
the pipeline's last commit, closes the listening socket, answers what still waits with 503
and cuts connections still sending, within ``STOP_TIMEOUT_S``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from firmware_bridge import ecowitt, reasons
from gateway.config.models import HttpSourceConfig
from gateway.packet import Packet, Rejection
from gateway.sources.feeder import QueueFeeder
from gateway.sources.items import Message, SourceEvent

logger = logging.getLogger(__name__)

MAX_CONNECTIONS: Final = 32
#: A connection still sending its request this long after its deadline is cut.
CUT_GRACE_S: Final = 1.0
STOP_TIMEOUT_S: Final = 2.0
#: After refusing a body (413) read at most this much of it, so that closing the socket
#: does not reset the connection before the client has read the answer.
DRAIN_LIMIT: Final = 1 << 20

BodyDecoder = Callable[[bytes], list[Packet | Rejection]]


def max_body_bytes(cfg: HttpSourceConfig | None) -> int:
    """The longest body taken: the configured one, else the configuration's default."""
    if cfg is not None:
        return cfg.max_body_bytes
    default: int = HttpSourceConfig.model_fields["max_body_bytes"].default
    return default


def upload_decoder(cfg: HttpSourceConfig | None, *, default_site: str,
                   external_ids: Mapping[str, str]) -> BodyDecoder:
    """The Ecowitt decoder with the site, the registry's names, the allow-list and the
    body limit bound: what decides every upload, live or replayed (``satoyama replay
    --format ecowitt``), so a captured body is taken or refused as it was when it came.
    Without an HTTP source configured (``cfg`` None): no allow-list, the default limit."""
    names = ecowitt.registry_names(external_ids)
    stations = (frozenset(s.strip().lower() for s in cfg.stations)
                if cfg is not None and cfg.stations is not None else None)
    limit = max_body_bytes(cfg)

    def decode(body: bytes) -> list[Packet | Rejection]:
        return ecowitt.decode_ecowitt(body, default_site=default_site, names=names,
                                      stations=stations, max_body=limit)

    return decode


@dataclass(slots=True)
class _Waiting:
    """A request whose body is queued: filled in by the pipeline worker."""

    done: threading.Event = field(default_factory=threading.Event)
    committed: bool = False
    packets: int = 0
    refusals: list[str] = field(default_factory=list)  # decoder rejection reasons


@dataclass(frozen=True)
class HttpSourceStats:
    name: str
    address: tuple[str, int] | None
    requests: int  # bodies queued
    committed: int  # of those, committed
    answered: dict[int, int]  # answers by status code
    connections: int  # open now


class HttpSource(QueueFeeder):
    """Listen on ``cfg.host:cfg.port`` and queue each upload body as a :class:`Message`."""

    stall_message = "http source %s: queue full for %.1f s; uploads wait for the pipeline"

    def __init__(self, name: str, cfg: HttpSourceConfig, out: queue.Queue[Any], *,
                 decode: BodyDecoder, stop: threading.Event | None = None) -> None:
        super().__init__(name, out, stop)
        self.cfg = cfg
        self._decode = decode
        self._path = cfg.path.rstrip("/") or "/"
        self._server: _Server | None = None
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiting] = {}
        self._tokens = itertools.count(1)
        self.requests = 0
        self.committed = 0
        self.answered: dict[int, int] = {}

    # -- pipeline side (the worker thread) ---------------------------------------------

    def decoder(self) -> Callable[[str, bytes], list[Packet | Rejection]]:
        """For ``Pipeline.add_message_source``: decodes a body and notes, for the waiting
        request (``topic`` is its token), whether anything became a packet."""
        def decode(token: str, body: bytes) -> list[Packet | Rejection]:
            items = self._decode(body)
            with self._lock:
                waiting = self._waiting.get(token)
            if waiting is not None:
                waiting.packets = sum(isinstance(i, Packet) for i in items)
                waiting.refusals = [i.reason for i in items if isinstance(i, Rejection)]
            return items

        return decode

    def _commit_callback(self, token: str) -> Callable[[], None]:
        def committed() -> None:
            with self._lock:
                waiting = self._waiting.get(token)
                self.committed += 1
            if waiting is not None:
                waiting.committed = True
                waiting.done.set()

        return committed

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) listened on, once started (the real port when ``port`` is 0)."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Bind and serve; raises OSError (address in use, no such address) at once."""
        handler = type("EcowittUploadHandler", (_Handler,), {"source": self,
                                                             "timeout": self.cfg.timeout_s})
        server = _Server((self.cfg.host, self.cfg.port), handler,
                         request_time_s=self.cfg.timeout_s)
        self._server = server
        self._connected = True
        self._thread = threading.Thread(target=server.serve_forever, kwargs={
            "poll_interval": 0.1}, name=f"http-{self.name}", daemon=True)
        self._thread.start()
        where = "http://{}:{}{}".format(*server.server_address[:2], self.cfg.path)
        logger.info("http source %s: listening on %s", self.name, where)
        self._put(SourceEvent(self.name, "connected", f"listening on {where}"))

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Close the listener, answer waiting requests 503, cut unfinished connections."""
        self._stop_requested.set()
        server = self._server
        if server is None:
            return
        deadline = time.monotonic() + timeout
        server.shutdown()  # serve_forever returns within its poll interval
        server.server_close()
        with self._lock:
            waiting = list(self._waiting.values())
        for w in waiting:
            w.done.set()  # not committed: answered 503
        server.join_handlers(deadline - time.monotonic() - 0.5)
        server.cut_connections()
        server.join_handlers(deadline - time.monotonic())
        self._connected = False
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))

    def stats(self) -> HttpSourceStats:
        connections = self._server.connections() if self._server is not None else 0
        with self._lock:
            return HttpSourceStats(self.name, self.address, self.requests, self.committed,
                                   dict(self.answered), connections)

    # -- request side (handler threads) ------------------------------------------------

    def path_matches(self, path: str) -> bool:
        return (path.split("?", 1)[0].rstrip("/") or "/") == self._path

    def closing(self) -> bool:
        return self._stopping()

    def take(self, body: bytes) -> tuple[HTTPStatus, str]:
        """Queue a body and wait for its commit: the status to answer and why."""
        token = str(next(self._tokens))
        waiting = _Waiting()
        with self._lock:
            self.requests += 1
            self._waiting[token] = waiting
        try:
            msg = Message(self.name, token, body, time.time_ns(), time.monotonic_ns(),
                          ack=self._commit_callback(token))
            if self._stopping() or not self._put(msg):
                return HTTPStatus.SERVICE_UNAVAILABLE, "gateway stopping; not stored"
            if not waiting.done.wait(self.cfg.commit_timeout_s) or not waiting.committed:
                if not waiting.done.is_set():
                    return (HTTPStatus.SERVICE_UNAVAILABLE,
                            "not committed in time; it may still be stored")
                return HTTPStatus.SERVICE_UNAVAILABLE, "gateway stopped before committing"
        finally:
            with self._lock:
                del self._waiting[token]
        if waiting.packets:
            return HTTPStatus.OK, "OK"
        if waiting.refusals and all(r == reasons.UNKNOWN_STATION for r in waiting.refusals):
            return HTTPStatus.FORBIDDEN, "station not allowed (sources.http.stations)"
        return (HTTPStatus.BAD_REQUEST,
                "not an Ecowitt upload: " + ", ".join(sorted(set(waiting.refusals))))

    def count_answer(self, status: int) -> None:
        with self._lock:
            self.answered[status] = self.answered.get(status, 0) + 1


class _Server(ThreadingHTTPServer):
    """The stdlib server, with its connections and handler threads tracked so that
    :meth:`HttpSource.stop` can end them, and a bound on concurrent connections."""

    daemon_threads = True
    block_on_close = False  # stop() joins with a deadline instead

    def __init__(self, address: tuple[str, int], handler: type[_Handler], *,
                 request_time_s: float) -> None:
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, _Connection] = {}
        self.request_time_s = request_time_s
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            busy = len(self._conns) >= MAX_CONNECTIONS
        if busy:
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            self.shutdown_request(request)
            return
        t = threading.Thread(target=self._serve_one, args=(request, client_address),
                             daemon=True, name="http-request")
        with self._conn_lock:
            self._conns[request] = _Connection(t, time.monotonic() + self.request_time_s)
        t.start()

    def connections(self) -> int:
        with self._conn_lock:
            return len(self._conns)

    def request_deadline(self, request: socket.socket) -> float:
        """When the request on ``request`` must be complete (monotonic)."""
        with self._conn_lock:
            conn = self._conns.get(request)
        return conn.deadline if conn is not None else time.monotonic()

    def request_read(self, request: socket.socket) -> None:
        """The request is in: from now on the connection waits for the commit, not the
        client, and is not cut."""
        with self._conn_lock:
            conn = self._conns.get(request)
            if conn is not None:
                conn.reading = False

    def service_actions(self) -> None:
        """Every poll interval of the serve loop: cut connections whose client is still
        sending long after the request deadline (the stdlib only bounds each read)."""
        late = time.monotonic() - CUT_GRACE_S
        with self._conn_lock:
            stuck = [s for s, c in self._conns.items() if c.reading and c.deadline < late]
        for sock in stuck:
            logger.info("http source: cutting a client still sending after %.0f s",
                        self.request_time_s + CUT_GRACE_S)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(request, None)

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._conn_lock:
            threads = [c.thread for c in self._conns.values()]
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def cut_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("http source: error while serving %s", client_address)


@dataclass(slots=True)
class _Connection:
    thread: threading.Thread
    deadline: float  # monotonic time by which the request must be complete
    reading: bool = True  # still receiving the request (False: waiting for the commit)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    source: HttpSource  # set on the subclass made by HttpSource.start
    server_version = "satoyama"
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        source = self.source
        length, problem = self._declared_length()
        if problem is not None:
            self._answer(*problem)
        elif not source.path_matches(self.path):
            self._refuse(HTTPStatus.NOT_FOUND, f"uploads go to {source.cfg.path}", length)
        elif length > source.cfg.max_body_bytes:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"body of {length} bytes > {source.cfg.max_body_bytes}", length)
        elif source.closing():
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, "gateway stopping", length)
        else:
            body = self._read_body(length)
            if body is None:
                return
            self.server.request_read(self.connection)
            self._answer(*source.take(body))

    def _declared_length(self) -> tuple[int, tuple[HTTPStatus, str] | None]:
        """The body's ``Content-Length``, or the answer refusing the request without it."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return 0, (HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not chunks")
        text = self.headers.get("Content-Length")
        if text is None:
            return 0, (HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        if not text.strip().isdigit():
            return 0, (HTTPStatus.BAD_REQUEST, "bad Content-Length")
        return int(text), None

    def _read_body(self, length: int) -> bytes | None:
        """The whole body within ``timeout_s``; None (answered 408, or the peer is gone)."""
        deadline = self.server.request_deadline(self.connection)
        parts: list[bytes] = []
        left = length
        try:
            while left > 0:
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = self.rfile.read1(left)
                if not chunk:
                    return None  # the client went away mid-body: nothing to answer
                parts.append(chunk)
                left -= len(chunk)
        except TimeoutError:
            self._answer(HTTPStatus.REQUEST_TIMEOUT,
                         f"body not complete within {self.source.cfg.timeout_s:g} s")
            return None
        except OSError:
            return None  # reset, or cut by stop()
        return b"".join(parts)

    def _refuse(self, status: HTTPStatus, text: str, length: int) -> None:
        """Answer without taking the body, then read and drop it (up to DRAIN_LIMIT), so
        the answer is not lost to a connection reset when the socket closes with unread
        data."""
        self._answer(status, text)
        left = min(length, DRAIN_LIMIT)
        deadline = time.monotonic() + self.source.cfg.timeout_s
        with contextlib.suppress(OSError):
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    return
                left -= len(chunk)

    def _not_allowed(self) -> None:
        self._answer(HTTPStatus.METHOD_NOT_ALLOWED, "uploads are POSTed",
                     headers={"Allow": "POST"})

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _answer(self, status: HTTPStatus, text: str,
                headers: Mapping[str, str] | None = None) -> None:
        self.source.count_answer(int(status))
        body = (text + "\n").encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            if status == HTTPStatus.SERVICE_UNAVAILABLE:
                self.send_header("Retry-After", "60")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass  # the client is gone; nothing else to do for it

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """The stdlib's own refusals (a request line or header that is not HTTP): counted."""
        self.source.count_answer(code)
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http source %s: %s - %s", self.source.name, self.address_string(),
                     format % args)

    def log_error(self, format: str, *args: Any) -> None:
        logger.info("http source %s: %s - %s", self.source.name, self.address_string(),
                    format % args)
