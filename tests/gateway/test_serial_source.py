"""SerialSource over a real pty line (gateway.sources.pty_link): no mocks.

Every wait polls with a deadline; nothing depends on a fixed sleep being long enough.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from gateway.sources.pty_link import PtyLink, PtyPair
from gateway.sources.serial import RawChunk, SerialSource, SourceEvent

DEADLINE_S = 5.0


class Collector:
    """Drains a source's queue on the test thread, keeping data and events apart."""

    def __init__(self, q: queue.Queue[Any]) -> None:
        self.q = q
        self.data = bytearray()
        self.chunks: list[RawChunk] = []
        self.events: list[SourceEvent] = []

    def pump(self, until: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
        deadline = time.monotonic() + deadline_s
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out: {len(self.data)} bytes, events {[e.kind for e in self.events]}"
                )
            try:
                item = self.q.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue
            if isinstance(item, RawChunk):
                self.chunks.append(item)
                self.data += item.data
            else:
                assert isinstance(item, SourceEvent)
                self.events.append(item)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def wait_event(self, kind: str, count: int = 1) -> None:
        self.pump(lambda: self.kinds().count(kind) >= count)

    def wait_bytes(self, n: int) -> None:
        self.pump(lambda: len(self.data) >= n)


def wait_until(condition: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


def timed_stop(source: SerialSource) -> float:
    started = time.monotonic()
    source.stop(timeout=2.0)
    elapsed = time.monotonic() - started
    assert not source.running
    assert not source.connected
    return elapsed


@pytest.fixture
def sources() -> Iterator[list[SerialSource]]:
    """Sources started by a test; stopped even if the test fails."""
    started: list[SerialSource] = []
    yield started
    for source in started:
        source.stop(timeout=2.0)


def patterned(n: int) -> bytes:
    # Not periodic at any small length, so a lost, repeated or reordered piece shows up.
    return random.Random(42).randbytes(n)


def test_bytes_arrive_complete_and_in_order(sources: list[SerialSource]) -> None:
    payload = patterned(2 * 1024 * 1024)
    q: queue.Queue[Any] = queue.Queue(maxsize=16)  # small: the writer meets backpressure
    with PtyPair() as pair:
        source = SerialSource("radio", pair.slave_path, 115200, q)
        sources.append(source)
        source.start()
        got = Collector(q)
        got.wait_event("connected")  # pyserial flushes input on open: write after it

        def write_in_varied_sizes() -> None:
            sizes = random.Random(7)
            at = 0
            while at < len(payload):
                n = sizes.choice([1, 2, 29, 30, 31, 512, 4095, 4096, 4097, 20000])
                assert pair.write(payload[at : at + n]) == len(payload[at : at + n])
                at += n

        writer = threading.Thread(target=write_in_varied_sizes)
        writer.start()
        got.wait_bytes(len(payload))
        writer.join(DEADLINE_S)

        assert bytes(got.data) == payload
        assert source.bytes_read == len(payload)
        assert all(c.source == "radio" for c in got.chunks)
        assert all(a.monotonic_ns <= b.monotonic_ns for a, b in pairwise(got.chunks))
        # Chunked, not byte by byte: the 2 MiB came in far fewer reads than bytes.
        assert len(got.chunks) < len(payload) // 100
        assert timed_stop(source) < 1.0


def test_unplug_and_replug_through_a_stable_path(
    tmp_path: Path, sources: list[SerialSource], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.sources.serial")
    before, after = patterned(50_000), b"after replug " * 1000
    q: queue.Queue[Any] = queue.Queue(maxsize=64)
    with PtyLink(tmp_path / "usb-Satoyama_Radio-if00") as link:
        source = SerialSource("radio", str(link.path), 115200, q, reopen_interval_s=0.1)
        sources.append(source)
        source.start()
        got = Collector(q)
        got.wait_event("connected")

        assert link.write(before) == len(before)
        got.wait_bytes(len(before))  # bytes still in the pty when it is pulled are lost

        link.unplug()
        got.wait_event("disconnected")
        assert not source.connected
        # Several reopen attempts fail while it is out; each must not cost a log line.
        wait_until(lambda: source.open_failures >= 3)
        outage_warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(outage_warnings) == 1, [r.getMessage() for r in outage_warnings]

        link.plug()
        got.wait_event("connected", count=2)
        wait_until(lambda: source.connected)
        assert link.write(after) == len(after)
        got.wait_bytes(len(before) + len(after))

        assert bytes(got.data) == before + after
        assert got.kinds()[:2] == ["connected", "disconnected"]
        assert got.kinds()[-1] == "connected"
        assert source.reconnects == 1
        assert source.last_error is not None

        # Stopping while the device is away is prompt too.
        link.unplug()
        got.wait_event("disconnected", count=2)
        assert timed_stop(source) < 1.0


def test_stop_is_prompt_while_blocked_on_a_full_queue(sources: list[SerialSource]) -> None:
    q: queue.Queue[Any] = queue.Queue(maxsize=1)
    with PtyPair() as pair:
        source = SerialSource("radio", pair.slave_path, 115200, q)
        sources.append(source)
        source.start()
        wait_until(lambda: source.connected and q.full())  # the connected event fills it

        # The reader takes one chunk, cannot queue it, and stops reading: the pty fills
        # and the writer is held back instead of bytes being dropped.
        data = patterned(200_000)
        written = pair.write(data, timeout=0.5)
        assert 0 < written < len(data)
        wait_until(lambda: source.queue_full_waits >= 1)
        assert source.bytes_read < 70_000  # one chunk at most, nothing read past it

        assert timed_stop(source) < 1.0
        # The chunk it held at stop is accounted for, not silently lost.
        assert source.bytes_discarded == source.bytes_read > 0


def test_missing_port_is_retried_quietly_until_stopped(
    tmp_path: Path, sources: list[SerialSource], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.sources.serial")
    q: queue.Queue[Any] = queue.Queue(maxsize=8)
    source = SerialSource("radio", str(tmp_path / "never-there"), 9600, q, reopen_interval_s=0.05)
    sources.append(source)
    source.start()
    wait_until(lambda: source.open_failures >= 5)

    assert source.running and not source.connected
    assert source.last_error is not None and "No such file" in source.last_error
    events = []
    while not q.empty():
        events.append(q.get_nowait())
    assert [e.kind for e in events] == ["error"]  # once per outage, not per retry
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert timed_stop(source) < 1.0


def test_shared_stop_event_stops_the_source(tmp_path: Path) -> None:
    shutdown = threading.Event()
    q: queue.Queue[Any] = queue.Queue()
    source = SerialSource("radio", str(tmp_path / "absent"), 9600, q, stop=shutdown)
    source.start()
    wait_until(lambda: source.open_failures >= 1)  # now sleeping 2 s before the next try
    shutdown.set()
    source.join(timeout=1.0)
    assert not source.running


def test_pty_link_will_not_replace_a_real_file(tmp_path: Path) -> None:
    real = tmp_path / "ttyUSB0"
    real.write_text("not a symlink")
    with pytest.raises(FileExistsError):
        PtyLink(real)
    assert real.read_text() == "not a symlink"


def test_pty_link_replaces_a_stale_symlink(tmp_path: Path) -> None:
    stale = tmp_path / "radio"
    stale.symlink_to(tmp_path / "gone")
    with PtyLink(stale) as link:
        assert link.pair is not None
        assert stale.resolve() == Path(link.pair.slave_path).resolve()
    assert not stale.exists() and not stale.is_symlink()
