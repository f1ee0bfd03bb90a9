"""What sources put on the pipeline's one bounded queue, in arrival order.

Stream sources (a serial port) put :class:`RawChunk` bytes, split wherever reads split them;
message sources (MQTT) put a :class:`MessageBatch` per socket read (or one :class:`Message`
per message), with an ``ack`` the pipeline calls only after the messages' readings are
committed. Both put :class:`SourceEvent` for link changes, in order with their data.
:class:`SourceQueue` bounds the queue by messages, not items, so batching does not widen
the backpressure bound.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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


@dataclass(frozen=True, slots=True)
class Ack:
    """A message's acknowledgement: ``send((token,))``, or, through :func:`run_after_commit`,
    one ``send`` call for all of a batch's acks that share it (one write to the broker for
    a batch instead of one per message)."""

    send: Callable[[Sequence[Hashable]], None]
    token: Hashable

    def __call__(self) -> None:
        self.send((self.token,))


def run_after_commit(callbacks: Sequence[Callable[[], None]]) -> None:
    """Run a committed batch's callbacks; :class:`Ack` and :class:`BatchAck` objects grouped
    by their ``send``,
    each group in the order the messages came."""
    groups: dict[Callable[[Sequence[Hashable]], None], list[Hashable]] = {}
    for callback in callbacks:
        if isinstance(callback, BatchAck):
            tokens = groups.get(callback.send)
            if tokens is None:
                groups[callback.send] = list(callback.tokens)
            else:
                tokens.extend(callback.tokens)
        elif isinstance(callback, Ack):
            tokens = groups.get(callback.send)
            if tokens is None:
                groups[callback.send] = [callback.token]
            else:
                tokens.append(callback.token)
        else:
            callback()
    for send, tokens in groups.items():
        send(tokens)


@dataclass(frozen=True, slots=True)
class BatchAck:
    """The acknowledgements of a :class:`MessageBatch`: ``send(tokens)``, grouped with other
    acks of the same ``send`` by :func:`run_after_commit`."""

    send: Callable[[Sequence[Hashable]], None]
    tokens: Sequence[Hashable]

    def __call__(self) -> None:
        self.send(self.tokens)


@dataclass(frozen=True, slots=True)
class MessageBatch:
    """Messages from one read of a message source, in arrival order, as one queue item.

    ``messages`` holds ``(topic, payload)`` pairs; all were received at ``received_ns``
    (the read). ``ack`` acknowledges all of them and, like :attr:`Message.ack`, is called
    only after the batch holding their readings (or quarantine entries) is committed.
    """

    source: str
    messages: Sequence[tuple[str, bytes]]
    received_ns: int
    monotonic_ns: int
    ack: Callable[[], None] | None = None


class SourceQueue(queue.Queue[Any]):
    """The pipeline's bounded queue, counting a :class:`MessageBatch` as its messages.

    ``maxsize`` therefore bounds messages, as it did when each message was its own item. A
    put waits while the queue holds ``maxsize`` or more, so a batch may take it past the
    bound by at most the batch's size less one (the MQTT source caps batches).
    """

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self._count = 0

    def _qsize(self) -> int:
        return self._count

    def _put(self, item: Any) -> None:
        self.queue.append(item)
        self._count += len(item.messages) if type(item) is MessageBatch else 1

    def _get(self) -> Any:
        item = self.queue.popleft()
        self._count -= len(item.messages) if type(item) is MessageBatch else 1
        return item


SourceItem = RawChunk | SourceEvent | Message | MessageBatch
