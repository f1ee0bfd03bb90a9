"""Failure classes InfluxDB rarely shows on demand (413, 429/503 with Retry-After, 5xx,
401), from a real HTTP server on loopback that answers as scripted, through both writers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for
from outbox_data import make_records, sink

from gateway.config.models import InfluxDBSinkConfig
from gateway.sinks.influxdb import FailureClass, V1Writer, WriteError, classify
from gateway.sinks.retry import Backoff, RetryPolicy
from gateway.store.sqlite import Store

Answer = tuple[int, dict[str, str], bytes]


class ScriptedInflux:
    """Answers each write with ``script(lines)``; remembers every request."""

    def __init__(self, script: Callable[[list[bytes]], Answer]) -> None:
        self.script = script
        self.requests: list[tuple[float, str, dict[str, str], list[bytes]]] = []
        self.stored: set[bytes] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                lines = [line for line in body.split(b"\n") if line]
                outer.requests.append((time.monotonic(), self.path, dict(self.headers), lines))
                status, headers, payload = outer.script(lines)
                if 200 <= status < 300:
                    outer.stored.update(lines)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[list[bytes]], Answer]], ScriptedInflux]]:
    servers: list[ScriptedInflux] = []

    def make(script: Callable[[list[bytes]], Answer]) -> ScriptedInflux:
        servers.append(ScriptedInflux(script))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def configs(url: str, **over: Any) -> list[InfluxDBSinkConfig]:
    return [
        InfluxDBSinkConfig(url=url, api="v1", database="farm", **over),
        InfluxDBSinkConfig(url=url, api="v2", org="o", bucket="farm", token="tok", **over),
    ]


@pytest.mark.parametrize(
    ("status", "failure"),
    [(204, None), (200, None), (400, FailureClass.BAD_DATA), (422, FailureClass.BAD_DATA),
     (413, FailureClass.TOO_LARGE), (429, FailureClass.THROTTLED),
     (503, FailureClass.THROTTLED), (500, FailureClass.SERVER), (502, FailureClass.SERVER),
     (401, FailureClass.AUTH), (403, FailureClass.AUTH), (404, FailureClass.NOT_FOUND),
     (405, FailureClass.CLIENT), (408, FailureClass.NETWORK), (425, FailureClass.SERVER),
     (409, FailureClass.CLIENT)],
)
def test_status_classes(status: int, failure: FailureClass | None) -> None:
    assert classify(status) == failure


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_too_large_batches_are_split_until_they_fit(
    tmp_path: Path, scripted: Callable[..., ScriptedInflux], api: str
) -> None:
    server = scripted(lambda lines: (413, {}, b'{"error":"too large"}') if len(lines) > 3
                      else (204, {}, b""))
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(10))
    cfg = next(c for c in configs(server.url, batch_size=100) if c.api == api)
    s = sink(store.path, cfg)
    result = s.flush_once()
    assert (result.written, result.rejected) == (30, 0)
    assert len(server.stored) == 30
    assert store.counters()["sink.influxdb.write_errors.too_large"] >= 2
    assert s.backlog() == {"reading": 0, "device": 0, "alert": 0}
    if api == "v1":
        assert server.requests[0][1] == "/write?db=farm&precision=ns"
    else:
        path, headers = server.requests[0][1], server.requests[0][2]
        assert path.startswith("/api/v2/write?") and "bucket=farm" in path
        assert "precision=ns" in path and headers["Authorization"] == "Token tok"
    s.stop()


@pytest.mark.parametrize(("status", "headers", "body"), [
    (413, {}, b""),  # too large, from InfluxDB or a proxy in front of it
    (400, {"X-Influxdb-Version": "1.8.10"}, b"bad"),  # 1.x, 2.x and VictoriaMetrics send it
    (400, {}, b'{"error":"partial write: field type conflict dropped=1"}'),  # JSON error only
])
def test_a_single_refused_point_is_quarantined_and_the_rest_written(
    tmp_path: Path, scripted: Callable[..., ScriptedInflux], status: int,
    headers: dict[str, str], body: bytes
) -> None:
    server = scripted(lambda lines: (status, headers, body)
                      if any(b"battery_v" in x for x in lines) else (204, {}, b""))
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(1))
    s = sink(store.path, configs(server.url)[0])
    assert (s.flush_once().rejected, len(server.stored)) == (1, 2)
    assert store.quarantine(reason="sink_rejected")[0]["detail"].startswith(f"HTTP {status}")
    s.stop()


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_throttling_honours_retry_after(
    tmp_path: Path, scripted: Callable[..., ScriptedInflux], api: str
) -> None:
    answers = iter([(429, {"Retry-After": "0.6"}, b'{"message":"slow down"}'),
                    (503, {"Retry-After": "0.4"}, b"")])
    server = scripted(lambda lines: next(answers, (204, {}, b"")))
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(2))
    cfg = next(c for c in configs(server.url, flush_interval_s=0.05) if c.api == api)
    s = sink(store.path, cfg)
    with pytest.raises(WriteError) as err:
        s.flush_once()
    assert (err.value.failure, err.value.retry_after_s) == (FailureClass.THROTTLED, 0.6)
    assert err.value.message == "slow down"
    s.start()
    wait_for(lambda: not any(store.backlog("influxdb").values()), 5, "delivered")
    s.stop()
    times = [r[0] for r in server.requests]
    assert times[2] - times[1] >= 0.4  # waited for Retry-After, not the fast backoff (<0.3)
    counters = store.counters()
    assert counters["sink.influxdb.write_errors.throttled"] == 2
    assert counters["sink.influxdb.written"] == 6


def test_server_errors_back_off_and_keep_the_batch(
    tmp_path: Path, scripted: Callable[..., ScriptedInflux]
) -> None:
    failures = iter(range(4))
    server = scripted(lambda lines: (500, {}, b'{"error":"engine: disk full"}')
                      if next(failures, None) is not None else (204, {}, b""))
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(3))
    s = sink(store.path, configs(server.url, flush_interval_s=0.05)[0])
    s.start()
    wait_for(lambda: not any(store.backlog("influxdb").values()), 5, "delivered")
    s.stop()
    # the same first batch (6 reading rows) was offered 5 times, then the device rows
    assert [len(r[3]) for r in server.requests[:6]] == [6, 6, 6, 6, 6, 3]
    assert store.counters()["sink.influxdb.write_errors.server"] == 4
    assert len([x for x in server.stored if not x.startswith(b"gateway,")]) == 9


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize(("status", "failure"), [(408, FailureClass.NETWORK),
                                                 (425, FailureClass.SERVER)])
def test_request_timeout_and_too_early_are_retried_soon_not_left_for_a_person(
    tmp_path: Path, scripted: Callable[..., ScriptedInflux], caplog: pytest.LogCaptureFixture,
    api: str, status: int, failure: FailureClass,
) -> None:
    """408 (the server gave up waiting for our request: a slow uplink) and 425 succeed when
    sent again: the fast transient backoff, not the minutes a config error waits."""
    answers = iter([(status, {}, b""), (status, {}, b"")])
    server = scripted(lambda lines: next(answers, (204, {}, b"")))
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(2))
    cfg = next(c for c in configs(server.url, flush_interval_s=0.05) if c.api == api)
    quick = Backoff(initial_s=0.05, max_s=0.2)
    s = sink(store.path, cfg, retry=RetryPolicy(
        transient=quick, throttled=quick, config=Backoff(initial_s=60.0, max_s=300.0)))
    with pytest.raises(WriteError) as err:
        s.flush_once()
    assert (err.value.failure, err.value.status) == (failure, status)
    s._failed(err.value)
    s.start()
    wait_for(lambda: not any(store.backlog("influxdb").values()), 5, "delivered")
    s.stop()
    counters = store.counters()
    assert counters[f"sink.influxdb.write_errors.{failure}"] == 2
    assert counters["sink.influxdb.written"] == 6
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # nothing to fix


def test_auth_failure_names_the_config_key_and_never_the_token(
    tmp_path: Path, scripted: Callable[..., ScriptedInflux], caplog: pytest.LogCaptureFixture
) -> None:
    server = scripted(lambda lines: (401, {}, b'{"code":"unauthorized","message":"no"}'))
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(1))
    s = sink(store.path, configs(server.url)[1])
    with pytest.raises(WriteError) as err:
        s.flush_once()
    assert err.value.failure is FailureClass.AUTH
    s._failed(err.value)
    assert "sinks.influxdb.token" in caplog.text and "tok\"" not in caplog.text
    assert "Token tok" not in caplog.text
    assert s.backlog() == {"reading": 2, "device": 1, "alert": 0}
    s.stop()


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_400_from_something_that_is_not_influxdb_quarantines_nothing(
    tmp_path: Path, scripted: Callable[..., ScriptedInflux], api: str,
    caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy (or a web server at the wrong URL) answering 400 says nothing about the
    points: splitting would have sent every one of them to quarantine. Data kept, a person
    told; once InfluxDB answers, everything is delivered."""
    influx = {"X-Influxdb-Version": "1.8.10"}
    proxy = [True]
    server = scripted(lambda lines: (400, {"Content-Type": "text/html"},
                                     b"<html><h1>400 Bad Request</h1></html>") if proxy[0]
                      else (204, influx, b""))
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(4))
    s = sink(store.path, next(c for c in configs(server.url) if c.api == api))
    with pytest.raises(WriteError) as err:
        s.flush_once()
    assert err.value.failure is FailureClass.CLIENT
    assert "not from InfluxDB" in err.value.message
    s._failed(err.value)
    assert "check sinks.influxdb" in caplog.text
    assert len(server.requests) == 1  # not split
    assert store.quarantine(reason="sink_rejected") == []
    assert s.backlog() == {"reading": 8, "device": 4, "alert": 0}
    proxy[0] = False
    assert (s.flush_once().written, len(server.stored)) == (12, 12)
    s.stop()


def test_v1_token_forms(tmp_path: Path, scripted: Callable[..., ScriptedInflux]) -> None:
    server = scripted(lambda lines: (204, {}, b""))
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(1))
    for name, token, header in [("a", "secret", "Token secret"),
                                ("b", "user:pw", "Basic dXNlcjpwdw==")]:
        cfg = InfluxDBSinkConfig(url=server.url, api="v1", database="farm", token=token)
        s = sink(store.path, cfg, name=name)
        s.flush_once()
        s.stop()
        assert server.requests[-1][2]["Authorization"] == header


def test_a_shared_stop_event_ends_the_thread(
    tmp_path: Path, scripted: Callable[..., ScriptedInflux]
) -> None:
    server = scripted(lambda lines: (204, {}, b""))
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(4))
    stop = threading.Event()
    s = sink(store.path, configs(server.url, flush_interval_s=0.05)[0], stop=stop)
    s.start()
    wait_for(lambda: not any(store.backlog("influxdb").values()), 5, "delivered")
    stop.set()  # the application's stop, without calling s.stop()
    wait_for(lambda: not s.running, 2, "sink thread ended")
    s.stop()  # still fine afterwards


def test_a_row_line_protocol_cannot_carry_is_quarantined_unaltered(
    tmp_path: Path, scripted: Callable[..., ScriptedInflux]
) -> None:
    server = scripted(lambda lines: (204, {}, b""))
    store = Store(tmp_path / "s.db")
    store.write_batch(make_records(2) + make_records(1, node="two\nlines"))
    s = sink(store.path, configs(server.url)[0])
    result = s.flush_once()
    assert (result.written, result.rejected) == (6, 3)  # 2 reading rows + 1 device row refused
    assert len(server.stored) == 6
    rows = store.quarantine(reason="sink_rejected")
    assert len(rows) == 3 and all("control character" in q["detail"] for q in rows)
    assert all(b'"node": "two\\nlines"' in q["raw"] for q in rows)
    assert store.counters()["sink.influxdb.rejected_points"] == 3
    assert s.backlog() == {"reading": 0, "device": 0, "alert": 0}
    s.stop()


def test_v1_writer_keeps_its_connection_and_survives_the_server_closing_it() -> None:
    """A kept-alive connection the server closed while idle (a proxy or server idle
    timeout) costs one transparent re-send, not a network error and a backoff."""
    peers: list[tuple[str, int]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive unless the server says otherwise

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            peers.append(self.client_address)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            # every second request: drop the connection without "Connection: close"
            self.close_connection = len(peers) % 2 == 0

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        writer = V1Writer(f"http://127.0.0.1:{server.server_address[1]}", "farm", None, 5.0)
        for _ in range(5):
            writer.write(b"m v=1 1\n")
            time.sleep(0.05)  # the close reaches the client before the next write
        writer.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(peers) == 5
    # kept alive: requests 1+2 share a connection, 3+4 the next, 5 a third
    assert len({port for _, port in peers}) == 3
