"""The HTTP source inside a running Gateway, writing to a real SQLite store.

Uploads are POSTed with urllib (or a raw socket where urllib cannot misbehave enough) to
the real ``ThreadingHTTPServer`` on a free loopback port. A 200 must mean "committed": the
test reads the store right after each 200, without waiting.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from helpers import counter, query_db, wait_for

from gateway.app import Gateway
from gateway.config import load_settings
from gateway.config.models import HttpSourceConfig
from gateway.pipeline.ingest import Pipeline
from gateway.pipeline.validate import Policy
from gateway.sources.http import CUT_GRACE_S, HttpSource, upload_decoder
from gateway.sources.items import Message, SourceEvent, SourceQueue
from gateway.store.sqlite import Store

CASES = Path(__file__).resolve().parents[1] / "firmware_bridge" / "cases" / "ecowitt"
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "ecowitt"
GW1100B = (CASES / "gw1100b.form.txt").read_bytes()
STATION = "ecowitt-xxxxxxxxxxxx"


def fresh(body: bytes, when: datetime) -> bytes:
    """``body`` with ``dateutc`` set to ``when`` (so the skew check keeps the node time)."""
    stamp = quote(when.strftime("%Y-%m-%d %H:%M:%S"), safe="").encode()
    head, _, rest = body.partition(b"dateutc=")
    return head + b"dateutc=" + stamp + b"&" + rest.partition(b"&")[2]


def post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def read_all(sock: socket.socket) -> bytes:
    """Whatever the server sends until it closes the connection (or resets it)."""
    out = b""
    try:
        while chunk := sock.recv(4096):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def raw_request(port: int, data: bytes, *, wait: float = 5.0) -> bytes:
    """Send ``data`` as it is and return whatever comes back before the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        return read_all(s)


@pytest.fixture
def start(write_config: Callable[..., Path],
          gateways: list[Gateway]) -> Callable[..., tuple[Gateway, str]]:
    def start(**http: Any) -> tuple[Gateway, str]:
        config = write_config(
            sources={"http": {"host": "127.0.0.1", "port": 0, **http}},
            devices={"terrace-3": {"plot": "upper", "ids": [
                "ecowitt:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/soil1"]}},
        )
        gw = Gateway(load_settings(config))
        gateways.append(gw)
        gw.start()
        assert gw.http is not None and gw.http.address is not None
        return gw, f"http://127.0.0.1:{gw.http.address[1]}/data/report/"

    return start


def db(gw: Gateway) -> Path:
    return Path(gw.store.path)


def test_upload_is_committed_before_200_with_design_tags_and_fields(start) -> None:
    gw, url = start()
    now = datetime.now(UTC).replace(microsecond=0)
    body = fresh(GW1100B, now)
    assert post(url, body) == (200, "OK\n")
    # Read right after the 200, from another connection: it is already there.
    rows = query_db(db(gw), "SELECT reading.site, reading.plot, reading.node, sensor, "
                    "soil_moisture_pct, reading.time_ns, time_source FROM reading JOIN packet "
                    "ON packet.id = reading.packet_id WHERE reading.node = 'terrace-3'")
    assert rows == [("testfarm", "upper", "terrace-3", "main", 40.0,
                     int(now.timestamp()) * 10**9, "node")]
    assert query_db(db(gw), "SELECT battery_v FROM device WHERE node = 'terrace-3'") == [(1.5,)]
    station = query_db(db(gw), "SELECT sensor, temperature_c, humidity_pct, pressure_hpa, "
                       f"dew_point_c IS NOT NULL FROM reading WHERE node = '{STATION}' "
                       "ORDER BY sensor")
    assert station == [("indoor", 24.72, 46.0, None, 1), ("main", 33.0, 48.0, 990.32, 1)]
    nodes = {n for (n,) in query_db(db(gw), "SELECT node FROM packet")}
    assert nodes == {STATION, f"{STATION}-ch1", "terrace-3", f"{STATION}-soil2",
                     *(f"{STATION}-tf{i}" for i in range(1, 9))}

    # The same upload again (a retry, a replayed capture): 200, stored once.
    assert post(url, body) == (200, "OK\n")
    assert len(query_db(db(gw), "SELECT id FROM packet")) == 12
    gw.stop()
    assert counter(db(gw), "stored") == 12 and counter(db(gw), "duplicates") == 12
    assert counter(db(gw), "source.connected") == 1  # "listening", like a port opened
    assert gw.http is not None and gw.http.stats().answered == {200: 2}


@pytest.mark.skipif(not CORPUS.exists(), reason=f"Ecowitt corpus not at {CORPUS}")
def test_every_corpus_body_over_http(start) -> None:
    gw, url = start()
    answers = {f.name: post(url, f.read_bytes())[0]
               for f in sorted((CORPUS / "form_bodies_derived").glob("*.form.txt"))}
    assert answers.pop("payload_wunderground.form.txt") == 400
    assert set(answers.values()) == {200} and len(answers) == 14
    gw.stop()
    # 14 station packets + gw1100b 11 + gw2000a_1 1 + gw2000a_2 13 + pthp2550pro 2, less the
    # gw2000a_3/_4 pair, which differ only in srain_piezo (not stored) and so are one upload.
    assert counter(db(gw), "stored") == 14 + 11 + 1 + 13 + 2 - 1
    assert counter(db(gw), "duplicates") == 1
    # The "metric" fixture's baromabsin=837.793 is no inHg value: its temperatures,
    # pressure, wind and rain are refused with the body (its humidities are stored).
    (detail,) = query_db(db(gw), "SELECT substr(detail, 1, 40) FROM quarantine "
                         "WHERE reason = 'unit_mismatch'")
    assert detail == ("baromabsin=837.793 is no pressure in inH",)
    assert counter(db(gw), "rejected.out_of_range") == 0  # no pressure_hpa=28370.9 stored
    assert counter(db(gw), "rejected.schema") == 1


def test_garbage_is_quarantined_with_its_body_and_answered_400(start) -> None:
    gw, url = start()
    garbage = b"\x00\xff not a form \x00"
    status, text = post(url, garbage)
    assert (status, text) == (400, "not an Ecowitt upload: bad_form\n")
    assert query_db(db(gw), "SELECT reason, raw, source, format FROM quarantine") == [
        ("bad_form", garbage, "http", "ecowitt")]
    assert post(url, b"ID=x&PASSWORD=y&tempf=50")[0] == 400
    gw.stop()
    assert counter(db(gw), "rejected.bad_form") == 1
    assert counter(db(gw), "rejected.schema") == 1
    assert counter(db(gw), "stored") == 0


def test_allow_list_refuses_other_stations_with_403(start) -> None:
    gw, url = start(stations=["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"])
    assert post(url, b"PASSKEY=intruder&tempf=50")[0] == 403
    assert post(url, b"PASSKEY=XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX&tempf=50")[0] == 200
    gw.stop()
    assert counter(db(gw), "rejected.unknown_station") == 1
    assert counter(db(gw), "stored") == 1


def test_http_level_refusals(start) -> None:
    gw, url = start(max_body_bytes=4096, timeout_s=0.5)
    assert gw.http is not None and gw.http.address is not None
    port = gw.http.address[1]
    assert post(url, b"PASSKEY=k&tempf=50&x=" + b"1" * 5000)[0] == 413
    assert post(url.replace("/data/report/", "/other"), b"PASSKEY=k&tempf=50")[0] == 404
    assert post(url.rstrip("/"), b"PASSKEY=k&tempf=50")[0] == 200  # trailing slash optional
    with pytest.raises(urllib.error.HTTPError) as got:
        urllib.request.urlopen(url, timeout=5)
    assert got.value.code == 405 and got.value.headers["Allow"] == "POST"
    assert raw_request(port, b"POST /data/report/ HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
        b"HTTP/1.0 411")
    assert raw_request(port, b"POST /data/report/ HTTP/1.1\r\nHost: x\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                       ).startswith(b"HTTP/1.0 411")
    # A client that stops sending half way is answered 408 after timeout_s, not held.
    started = time.monotonic()
    answer = raw_request(port, b"POST /data/report/ HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 100\r\n\r\nPASSKEY=k")
    assert answer.startswith(b"HTTP/1.0 408") and time.monotonic() - started < 3
    # A client trickling header lines is cut: timeout_s, then CUT_GRACE_S, not forever.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /data/report/ HTTP/1.1\r\n")
        started = time.monotonic()
        with contextlib.suppress(OSError):
            while time.monotonic() - started < 8:
                sock.sendall(b"X-Slow: 1\r\n")  # fails once the server has cut us
                time.sleep(0.2)
        assert time.monotonic() - started < 0.5 + CUT_GRACE_S + 1.5
        assert read_all(sock) == b""
    # Not HTTP at all: the stdlib answers 400 (as HTTP/0.9: no status line) and nothing
    # reaches the pipeline.
    assert b"400 - Bad request syntax" in raw_request(port, b"\x16\x03\x01 garbage\r\n\r\n")
    gw.stop()
    assert gw.http.stats().requests == 1  # only the one good upload was queued
    # 411 three times: the cut trickler's headers end there, without a Content-Length.
    assert gw.http.stats().answered == {413: 1, 404: 1, 200: 1, 405: 1, 411: 3, 408: 1, 400: 1}
    assert counter(db(gw), "stored") == 1
    assert query_db(db(gw), "SELECT count(*) FROM quarantine") == [(0,)]


def test_max_body_bytes_is_the_one_limit(start: Callable[..., tuple[Gateway, str]]) -> None:
    # A body the configuration takes is decoded, not refused by a second, smaller limit.
    gw, url = start(max_body_bytes=32768)
    body = b"PASSKEY=k&tempf=50&x=" + b"1" * 20000
    assert post(url, body) == (200, "OK\n")
    assert post(url, body + b"1" * 32768)[0] == 413
    gw.stop()
    assert counter(db(gw), "stored") == 1


def test_stop_mid_request_gives_no_200_and_a_restart_stores_once(start) -> None:
    gw, url = start()
    assert gw.http is not None and gw.http.address is not None
    now = datetime.now(UTC).replace(microsecond=0)
    body = fresh(GW1100B, now)
    first = fresh(b"PASSKEY=k&dateutc=x&tempf=50", now)
    assert post(url, first)[0] == 200

    # A client is half way through its body when the gateway stops.
    sock = socket.create_connection(gw.http.address, timeout=10)
    sock.sendall(b"POST /data/report/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                 % len(body) + body[:100])
    wait_for(lambda: gw.http is not None and gw.http.stats().connections == 1,
             5, "the server holds the half-sent request")
    started = time.monotonic()
    gw.stop()
    assert time.monotonic() - started < 5
    answer = read_all(sock)
    sock.close()
    assert not answer.startswith(b"HTTP/1.0 200"), answer
    assert counter(db(gw), "stored") == 1  # only `first`

    # The station sends again after the restart: stored once, `first` is a duplicate.
    gw2, url2 = start()
    assert post(url2, body) == (200, "OK\n")
    assert post(url2, first) == (200, "OK\n")
    assert post(url2, body) == (200, "OK\n")
    gw2.stop()
    assert counter(db(gw2), "stored") == 1 + 12
    assert counter(db(gw2), "duplicates") == 1 + 12
    rows = query_db(db(gw2), "SELECT node, time_ns FROM packet")
    assert len(rows) == len(set(rows)) == 13


def test_farm_ecowitt_example_is_what_it_says() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "farm-ecowitt.yaml"
    s = load_settings(example, env={})
    assert s.sources.http is not None and s.sources.http.host == "0.0.0.0"
    assert s.sources.http.path == "/data/report/" and s.sources.http.stations
    body = b"PASSKEY=34271334ed1fada6d8b988b14267e55d&soilmoisture2=30&tempf=50"
    decode = upload_decoder(s.sources.http, default_site=s.site, external_ids=s.external_ids)
    assert {p.node for p in decode(body)} == {"tea-lower", "weather"}
    assert {p.node for p in decode(b"PASSKEY=other&tempf=50")} == {None}  # refused


# ---------------------------------------------------------------- the source alone
# A real pipeline and store, with the worker's steps (take, commit) run by the test: the
# moments between "queued", "decoded" and "committed" are held open on purpose.


class Posting:
    """One POST on its own thread, so the test can look while it waits for its answer."""

    def __init__(self, url: str, body: bytes) -> None:
        self.answer: tuple[int, str] | None = None
        self._thread = threading.Thread(target=self._run, args=(url, body), daemon=True)
        self._thread.start()

    def _run(self, url: str, body: bytes) -> None:
        self.answer = post(url, body)

    def result(self) -> tuple[int, str] | None:
        self._thread.join(10)
        return self.answer


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[HttpSource, Pipeline, queue.Queue[Any], str,
                                              threading.Event]]:
    store = Store(tmp_path / "satoyama.db")
    pipeline = Pipeline(store, Policy("farm"))
    inbox: queue.Queue[Any] = SourceQueue(maxsize=10)
    cfg = HttpSourceConfig(host="127.0.0.1", port=0, commit_timeout_s=5)
    stop = threading.Event()  # the gateway's shared stop event
    src = HttpSource("http", cfg, inbox, stop=stop,
                     decode=upload_decoder(cfg, default_site="farm", external_ids={}))
    pipeline.add_message_source("http", src.decoder())
    src.start()
    assert src.address is not None
    event = inbox.get_nowait()
    assert isinstance(event, SourceEvent) and event.kind == "connected"
    yield src, pipeline, inbox, f"http://127.0.0.1:{src.address[1]}/data/report/", stop
    src.stop()
    store.close()


def test_the_answer_waits_for_the_commit(source) -> None:
    _, pipeline, inbox, url, _ = source
    posting = Posting(url, b"PASSKEY=k&tempf=50")
    msg = inbox.get(timeout=5)
    assert isinstance(msg, Message) and msg.payload == b"PASSKEY=k&tempf=50"
    pipeline.take(msg)  # decoded and validated, not committed
    time.sleep(0.3)
    assert posting.answer is None
    pipeline.commit()
    assert posting.result() == (200, "OK\n")
    assert pipeline.store.count("packet") == 1


def test_queued_uploads_are_still_committed_and_answered_after_the_stop_event(source) -> None:
    _, pipeline, inbox, url, stop = source
    posting = Posting(url, b"PASSKEY=k&tempf=50")
    msg = inbox.get(timeout=5)
    stop.set()  # the gateway is stopping: the worker drains what is queued
    assert post(url, b"PASSKEY=k&tempf=51") == (503, "gateway stopping\n")
    pipeline.take(msg)
    pipeline.commit()
    assert posting.result() == (200, "OK\n")
    assert inbox.empty()  # the refused one was never queued


def test_no_200_for_an_upload_that_was_never_committed(source) -> None:
    src, pipeline, inbox, url, _ = source
    posting = Posting(url, b"PASSKEY=k&tempf=50")
    msg = inbox.get(timeout=5)  # queued; the worker is "stuck" and never commits it
    src.stop()
    assert posting.result() == (503, "gateway stopped before committing\n")
    # Had it been committed after all (a slow commit), sending it again is harmless.
    pipeline.take(msg)
    pipeline.commit()
    assert pipeline.store.count("packet") == 1


def test_commit_timeout_answers_503(tmp_path: Path) -> None:
    inbox: queue.Queue[Any] = SourceQueue(maxsize=10)
    cfg = HttpSourceConfig(host="127.0.0.1", port=0, commit_timeout_s=0.3)
    src = HttpSource("http", cfg, inbox, decode=upload_decoder(
        cfg, default_site="farm", external_ids={}))
    src.start()
    try:
        assert src.address is not None
        url = f"http://127.0.0.1:{src.address[1]}/data/report/"
        assert post(url, b"PASSKEY=k&tempf=50") == (
            503, "not committed in time; it may still be stored\n")
        assert inbox.qsize() == 2  # "connected", then the body
    finally:
        src.stop()
