"""What every source thread shares: stop flags, an interruptible sleep, and a blocking put.

A source stops when its own :meth:`stop` is called or when the gateway's shared stop event
is set, and checks for that at least every ``POLL_INTERVAL_S``. While the pipeline's queue
is full the source waits (backpressure, never a drop) and says so once per stall.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Final

from gateway.sources.items import SourceItem

logger = logging.getLogger(__name__)

#: How long one blocking step may take before the stop flags are looked at again.
POLL_INTERVAL_S: Final = 0.1
#: A queue wait longer than this is logged (once per stall) as a stalled pipeline.
STALL_LOG_AFTER_S: Final = 1.0


class QueueFeeder:
    """Base of the source classes; subclasses say what a stall means for them."""

    #: Logged once when a put has waited STALL_LOG_AFTER_S (formatted with name, seconds).
    stall_message = "source %s: queue full for %.1f s; waiting for the pipeline"

    def __init__(self, name: str, out: queue.Queue[Any],
                 stop: threading.Event | None = None) -> None:
        self.name = name
        self.out = out
        self._shared_stop = stop
        self._stop_requested = threading.Event()
        self.queue_full_waits = 0  # puts that found the queue full and had to wait
        self._thread: threading.Thread | None = None
        self._connected = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def connected(self) -> bool:
        return self._connected

    def _stopping(self) -> bool:
        return self._stop_requested.is_set() or (
            self._shared_stop is not None and self._shared_stop.is_set()
        )

    def _sleep(self, seconds: float) -> None:
        """Sleep, waking at least every POLL_INTERVAL_S to look at the stop flags."""
        deadline = time.monotonic() + seconds
        while not self._stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop_requested.wait(min(left, POLL_INTERVAL_S))

    def _put(self, item: SourceItem) -> bool:
        """Queue ``item``, waiting while the queue is full; False if stopped first."""
        try:
            self.out.put_nowait(item)
            return True
        except queue.Full:
            pass
        self.queue_full_waits += 1
        since = time.monotonic()
        warned = False
        while not self._stopping():
            try:
                self.out.put(item, timeout=POLL_INTERVAL_S)
            except queue.Full:
                waited = time.monotonic() - since
                if not warned and waited >= STALL_LOG_AFTER_S:
                    warned = True
                    logger.warning(self.stall_message, self.name, waited)
                continue
            if warned:
                logger.info("source %s: queue accepted data again after %.1f s",
                            self.name, time.monotonic() - since)
            return True
        return False
