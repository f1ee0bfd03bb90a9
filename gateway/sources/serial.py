"""Serial source: the radio receiver's serial port, read in chunks by one thread.

The thread owns the :class:`serial.Serial` object from open to close, so nothing else ever
touches the port. It reads whatever bytes are waiting (``in_waiting``, at least one) with a
0.1 s timeout, wraps them in a :class:`RawChunk` stamped with wall-clock and monotonic
receive times, and puts them on the shared bounded queue. Framing is not done here: the
byte stream goes to ``firmware_bridge`` untouched, split wherever the reads happened to
split it.

Why chunks and not ``readline()``: pyserial's ``readline`` reads one byte per ``read``
call (one ``select`` and one ``read`` system call per byte) and tops out around a thousand
frames per second; chunked reads move hundreds of thousands (``benchmarks/serial_read.py``).

Backpressure: ``out.put`` waits (checking the stop flags every 0.1 s) while the queue is
full, and while it waits the thread does not read. Nothing is dropped here: unread bytes
stay in the kernel's tty buffer. On a pty the writer then blocks, which is the natural
backpressure. A real UART cannot be paused this way (no flow control on the radio
receivers we use), so once the driver's buffer (a few KiB) is full, further bytes are
lost by the kernel as an overrun; ``queue_full_waits`` counts how often the pipeline made
the reader wait, which is where to look when frames go missing.

Unplug and replug: any ``OSError`` (pyserial's ``SerialException`` is one) while reading
closes the port, puts a ``disconnected`` event on the queue, and the thread tries to open
the port again every ``reopen_interval_s`` until it succeeds, then puts ``connected``.
A ``/dev/serial/by-id/...`` path is the one to configure: it vanishes when the USB
adapter is unplugged and comes back pointing at whatever ttyUSBn the adapter gets next.
An outage is logged once at WARNING (again only if the reason changes), not per retry.

Bytes lost by design, all counted: pyserial discards the port's input buffer when it opens
the port (stale bytes from before we were listening), and at shutdown a chunk that was
read but could not be queued because the queue stayed full is discarded and added to
``bytes_discarded``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import serial

from gateway.sources.feeder import POLL_INTERVAL_S, QueueFeeder
from gateway.sources.items import RawChunk, SourceEvent, SourceEventKind, SourceItem

__all__ = [
    "RawChunk",
    "SerialSource",
    "SerialSourceStats",
    "SourceEvent",
    "SourceEventKind",
    "SourceItem",
]

logger = logging.getLogger(__name__)




@dataclass(frozen=True)
class SerialSourceStats:
    """A consistent-enough snapshot of a source's counters, for ``satoyama status``."""

    name: str
    port: str
    connected: bool
    bytes_read: int
    chunks_read: int
    reconnects: int
    open_failures: int
    queue_full_waits: int
    bytes_discarded: int
    last_error: str | None


class SerialSource(QueueFeeder):
    """Read one serial port on a daemon thread into a bounded queue of :data:`SourceItem`.

    ``stop`` is an optional shared shutdown event (for example the gateway's): setting it
    stops this source as :meth:`stop` does, within 0.1 s. :meth:`stop` itself only stops
    this source and never sets the shared event.

    Counters are written by the reader thread only and may be read from any thread.
    """

    def __init__(
        self,
        name: str,
        port: str,
        baudrate: int,
        out: queue.Queue[Any],
        *,
        reopen_interval_s: float = 2.0,
        read_size: int = 65536,
        stop: threading.Event | None = None,
    ) -> None:
        if baudrate <= 0:
            raise ValueError(f"baudrate must be positive, got {baudrate}")
        if reopen_interval_s <= 0:
            raise ValueError(f"reopen_interval_s must be positive, got {reopen_interval_s}")
        if read_size <= 0:
            raise ValueError(f"read_size must be positive, got {read_size}")
        super().__init__(name, out, stop)
        self.port = port
        self.baudrate = baudrate
        self.reopen_interval_s = reopen_interval_s
        self.read_size = read_size

        self.bytes_read = 0
        self.chunks_read = 0
        self.reconnects = 0  # successful opens after the first one
        self.open_failures = 0
        self.bytes_discarded = 0  # read but not queued because stop came while queue was full
        self.last_error: str | None = None

    # -- control (any thread) -------------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread. A source is started once."""
        if self._thread is not None:
            raise RuntimeError(f"serial source {self.name!r} already started")
        self._thread = threading.Thread(
            target=self._run, name=f"serial-source-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 1.0) -> None:
        """Ask the reader to stop and wait up to ``timeout`` s for it (None: for ever).

        The reader notices within about 0.1 s whatever it is doing: reading, waiting on a
        full queue, or waiting to reopen a missing port. It closes the port on the way out.
        """
        self._stop_requested.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> SerialSourceStats:
        return SerialSourceStats(
            name=self.name,
            port=self.port,
            connected=self._connected,
            bytes_read=self.bytes_read,
            chunks_read=self.chunks_read,
            reconnects=self.reconnects,
            open_failures=self.open_failures,
            queue_full_waits=self.queue_full_waits,
            bytes_discarded=self.bytes_discarded,
            last_error=self.last_error,
        )

    # -- reader thread --------------------------------------------------------------------

    stall_message = (
        "serial source %s: queue full for %.1f s; reading paused until the pipeline catches "
        "up (a real UART may overrun meanwhile)"
    )

    def _put(self, item: SourceItem) -> bool:
        """Queue ``item`` (see QueueFeeder); a chunk stopped at a full queue is counted."""
        if super()._put(item):
            return True
        if isinstance(item, RawChunk):
            self.bytes_discarded += len(item.data)
            logger.warning(
                "serial source %s: stopping with the queue full; discarded %d bytes "
                "already read from %s",
                self.name,
                len(item.data),
                self.port,
            )
        return False

    def _open(self) -> serial.Serial:
        return serial.Serial(self.port, self.baudrate, timeout=POLL_INTERVAL_S, exclusive=True)

    def _read_chunk(self, ser: serial.Serial) -> bytes:
        """Whatever is waiting (up to read_size), or b"" after 0.1 s of silence."""
        waiting = ser.in_waiting
        if waiting:
            data: bytes = ser.read(min(waiting, self.read_size))
            return data
        # Nothing waiting: block (0.1 s at most) for one byte, then take what followed it,
        # so a frame arriving on an idle line becomes one chunk rather than 1 + n bytes.
        data = ser.read(1)
        if data and self.read_size > 1:
            waiting = ser.in_waiting
            if waiting:
                data += ser.read(min(waiting, self.read_size - 1))
        return data

    def _pump(self, ser: serial.Serial) -> None:
        """Move bytes from the open port to the queue until stopped; raise on link failure."""
        while not self._stopping():
            data = self._read_chunk(ser)
            if not data:
                continue
            chunk = RawChunk(self.name, data, time.time_ns(), time.monotonic_ns())
            self.bytes_read += len(data)
            self.chunks_read += 1
            if not self._put(chunk):
                return

    def _run(self) -> None:
        ever_connected = False
        outage_since: float | None = None  # monotonic; set while the port is not open
        outage_reason: str | None = None  # last reason reported for this outage
        while not self._stopping():
            try:
                ser = self._open()
            except Exception as exc:  # any failure to open is retried, never fatal
                reason = _describe(exc)
                self.open_failures += 1
                self.last_error = reason
                if reason != outage_reason:
                    # WARNING once per outage; a new reason within it (e.g. the device is
                    # back but not readable) is worth an INFO line, retries are not.
                    level = logging.WARNING if outage_since is None else logging.INFO
                    logger.log(
                        level,
                        "serial source %s: cannot open %s: %s; retrying every %.1f s",
                        self.name,
                        self.port,
                        reason,
                        self.reopen_interval_s,
                    )
                    outage_reason = reason
                    self._put(SourceEvent(self.name, "error", reason))
                if outage_since is None:
                    outage_since = time.monotonic()
                self._sleep(self.reopen_interval_s)
                continue

            self._connected = True
            if ever_connected:
                self.reconnects += 1
            if outage_since is not None:
                logger.warning(
                    "serial source %s: %s open after %.1f s; reading at %d baud",
                    self.name,
                    self.port,
                    time.monotonic() - outage_since,
                    self.baudrate,
                )
            else:
                logger.info(
                    "serial source %s: reading %s at %d baud", self.name, self.port, self.baudrate
                )
            ever_connected = True
            outage_since = None
            outage_reason = None
            self._put(SourceEvent(self.name, "connected", self.port))

            lost: str | None = None
            try:
                self._pump(ser)
            except Exception as exc:  # unplugged, EIO, or anything else: reopen
                lost = _describe(exc)
            finally:
                self._connected = False
                try:
                    ser.close()
                except Exception:  # closing a vanished device may fail too; it is gone
                    logger.debug(
                        "serial source %s: error closing %s", self.name, self.port, exc_info=True
                    )
            if lost is None:
                break  # stopped
            self.last_error = lost
            outage_since = time.monotonic()
            outage_reason = lost
            logger.warning(
                "serial source %s: lost %s: %s; reopening every %.1f s",
                self.name,
                self.port,
                lost,
                self.reopen_interval_s,
            )
            self._put(SourceEvent(self.name, "disconnected", lost))
            self._sleep(self.reopen_interval_s)
        self._connected = False
        logger.debug("serial source %s: stopped", self.name)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, OSError) else f"{type(exc).__name__}: {text}"
