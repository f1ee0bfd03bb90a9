"""How an outbox consumer's thread stops: the one shutdown rule the sinks and the notifier share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


def stop_worker(
    thread: threading.Thread | None,
    stop: threading.Event,
    timeout: float,
    close: Callable[[], None],
    log: logging.Logger,
    in_flight: str,
) -> None:
    """Ask the worker to stop and wait up to ``timeout`` for the work in flight.

    A worker that never started is closed here (a running one closes itself as it ends).
    One still busy at the deadline is abandoned (it is a daemon thread); ``in_flight`` is
    logged as a warning: what it was doing stays in the outbox and is done again at the
    next start.
    """
    stop.set()
    if thread is None:
        close()
        return
    thread.join(timeout)
    if thread.is_alive():
        log.warning(in_flight)
