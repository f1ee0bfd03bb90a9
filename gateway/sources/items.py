"""What sources put on the pipeline's one bounded queue, in arrival order.

Stream sources (a serial port) put :class:`RawChunk` bytes, split wherever reads split them;
message sources (MQTT) put one :class:`Message` per message, with an ``ack`` the pipeline
calls only after the message's readings are committed. Both put :class:`SourceEvent` for
link changes, in order with their data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

SourceEventKind = Literal["connected", "disconnected", "error"]


@dataclass(frozen=True)
class RawChunk:
    """Bytes as they came off a source, before any framing."""

    source: str
    data: bytes
    received_ns: int  # time.time_ns() when read: receive time for nodes without clocks
    monotonic_ns: int  # time.monotonic_ns() when read: for rates and gaps, immune to clock steps


@dataclass(frozen=True)
class SourceEvent:
    """A change in a source's link, on the same queue as its data, in order with it.

    ``connected``: the port was opened (again). ``disconnected``: an open port failed;
    ``detail`` says how. ``error``: the port could not be opened; put once per outage
    (and again if the reason changes), not on every retry.
    """

    source: str
    kind: SourceEventKind
    detail: str = ""
    received_ns: int = field(default_factory=time.time_ns)




@dataclass(frozen=True)
class Message:
    """One discrete message (an MQTT publish): decoded on its own, acknowledged after commit.

    ``ack`` is called by the pipeline worker after the batch holding this message's readings
    (or its quarantine entry) is committed; for MQTT it sends the PUBACK, so the broker keeps
    the message until then and redelivers it if the gateway dies first.
    """

    source: str
    topic: str
    payload: bytes
    received_ns: int
    monotonic_ns: int
    ack: Callable[[], None] | None = None


SourceItem = RawChunk | SourceEvent | Message
