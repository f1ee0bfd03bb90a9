"""The ingest pipeline: decoded items -> validation -> batched, deduplicated commits.

One worker thread owns the pipeline. Sources (one thread each) put :class:`RawChunk` and
:class:`SourceEvent` objects on one bounded queue; the worker decodes each source's stream,
validates, and commits a batch every ``batch_max`` packets or ``batch_interval_ms``,
whichever comes first. A chunk is "taken" only when its batch is committed; callbacks in
``on_commit`` (MQTT acknowledgements, the demo's console) run after the commit.

Shutdown: set ``stop``; the worker drains what is already queued, flushes partial lines,
commits, and returns. A full queue blocks the sources (backpressure), never drops.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gateway.clock import ClockMonitor, boot_id
from gateway.packet import Ignored, Packet, Record, Rejection
from gateway.pipeline.streams import StreamDecoder, stream_decoder
from gateway.pipeline.validate import DeviceInfo, Policy, validate
from gateway.sources.items import (
    Message,
    MessageBatch,
    RawChunk,
    SourceEvent,
    SourceItem,
    run_after_commit,
)
from gateway.store.sqlite import BatchResult, QuarantineEntry, Store, StoreFull

log = logging.getLogger(__name__)

MessageDecoder = Callable[[str, bytes], list[Packet | Rejection]]
SEQ_MODULO = 65536
MAX_PLAUSIBLE_GAP = 1000  # a larger jump forward is a counter reset, not lost packets
LOSS_WINDOW = 100
RECENT_TIMES = 64  # per node, to keep timestamps distinct (see Pipeline._distinct_time)
PAST_NEWEST_NS = 1_000_000_000  # a receive time this close behind a node's newest goes past it


@dataclass(slots=True)
class _Pending:
    records: list[Record] = field(default_factory=list)
    quarantine: list[QuarantineEntry] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    monotonic: dict[int, int] = field(default_factory=dict)
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def mark(self) -> tuple[int, int, int, dict[str, int]]:
        """Where the batch stands, for :meth:`rollback`."""
        return (len(self.records), len(self.quarantine), len(self.callbacks),
                dict(self.counters))

    def rollback(self, mark: tuple[int, int, int, dict[str, int]]) -> None:
        """Take back what was added since ``mark``."""
        records, quarantine, callbacks, counters = mark
        for rec in self.records[records:]:
            self.monotonic.pop(id(rec), None)
        del self.records[records:], self.quarantine[quarantine:], self.callbacks[callbacks:]
        self.counters = counters


class _RecentTimes:
    """A node's last RECENT_TIMES timestamps, all distinct (``_distinct_time`` makes them
    so): in arrival order, as a set for the tie test, and their maximum."""

    __slots__ = ("latest", "order", "times")

    def __init__(self) -> None:
        self.order: deque[int] = deque()
        self.times: set[int] = set()
        self.latest = 0

    def add(self, time_ns: int) -> None:
        order = self.order
        if not order or time_ns > self.latest:
            self.latest = time_ns
        order.append(time_ns)
        self.times.add(time_ns)
        if len(order) > RECENT_TIMES:
            gone = order.popleft()
            self.times.discard(gone)
            if gone == self.latest:  # the newest is older than this one: look again
                self.latest = max(order)


class _NodeLoss:
    """One node's last sequence number and its window of missed counts, with their sum
    (kept as the window moves)."""

    __slots__ = ("last", "lost", "window")

    def __init__(self) -> None:
        self.last: int | None = None
        self.lost = 0
        self.window: deque[int] = deque(maxlen=LOSS_WINDOW)


class _LossTracker:
    """Packet loss from sequence gaps over the last LOSS_WINDOW packets of each node."""

    def __init__(self) -> None:
        self._nodes: dict[str, _NodeLoss] = {}

    def observe(self, node: str, seq: int) -> float | None:
        state = self._nodes.get(node)
        if state is None:
            state = self._nodes[node] = _NodeLoss()
        missed = 0
        last = state.last
        if last is not None:
            gap = (seq - last) % SEQ_MODULO
            if gap == 0 or gap > SEQ_MODULO - MAX_PLAUSIBLE_GAP:
                return None  # repeat or late arrival: neither new nor lost
            if gap <= MAX_PLAUSIBLE_GAP:
                missed = gap - 1
        window = state.window
        lost = state.lost + missed
        if len(window) == LOSS_WINDOW:
            lost -= window[0]  # about to drop out of the window
        window.append(missed)
        state.lost = lost
        state.last = seq
        return round(100.0 * lost / (lost + len(window)), 2)


class Pipeline:
    def __init__(
        self,
        store: Store,
        policy: Policy,
        *,
        devices: dict[str, DeviceInfo] | None = None,
        clock: ClockMonitor | None = None,
        batch_max: int = 500,
        batch_interval_ms: float = 200,
        on_commit: Callable[[BatchResult, list[Record]], None] | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.devices = devices or {}
        self.clock = clock or ClockMonitor()
        self.batch_max = batch_max
        self.batch_interval_s = batch_interval_ms / 1000
        # Called after each commit, in order: the caller's on_commit, sinks' offer().
        self.commit_listeners: list[Callable[[BatchResult, list[Record]], None]] = (
            [] if on_commit is None else [on_commit])
        self._streams: dict[str, StreamDecoder] = {}
        self._message_decoders: dict[str, MessageDecoder] = {}
        self._formats: dict[str, str] = {}
        self._pending = _Pending()
        self._loss = _LossTracker()
        self._recent_times: dict[str, _RecentTimes] = {}
        self._boot_id = boot_id()
        self._had_held = bool(store.held_packets())
        self.totals: dict[str, int] = {}
        self.paused = False  # store full with full_policy stop_ingest: sources wait

    # ---------------------------------------------------------------- input

    def add_stream(self, source: str, fmt: str, *,
                   ids: Mapping[str, str] | None = None) -> None:
        """``ids``: the registry's ``scheme:id`` -> node (formats that name nodes so)."""
        self._streams[source] = stream_decoder(fmt, default_site=self.policy.default_site,
                                               ids=ids)
        self._formats[source] = fmt

    def add_message_source(self, source: str, decode: MessageDecoder) -> None:
        """A message source (MQTT): ``decode(topic, payload)`` is pure, from firmware_bridge."""
        self._message_decoders[source] = decode

    def feed(
        self,
        source: str,
        data: bytes,
        *,
        received_ns: int | None = None,
        monotonic_ns: int | None = None,
        replay: bool = False,
    ) -> None:
        """Decode bytes from a stream source and add the results to the pending batch."""
        items = self._streams[source].feed(data)
        self.handle(source, items, received_ns=received_ns, monotonic_ns=monotonic_ns,
                    replay=replay)

    def finish_stream(self, source: str, *, replay: bool = False) -> None:
        """End of a stream (file end, shutdown): decode what is left in its buffer."""
        stream = self._streams.get(source)
        if stream:
            self.handle(source, stream.flush(), replay=replay)

    def handle(
        self,
        source: str,
        items: list[Packet | Rejection],
        *,
        received_ns: int | None = None,
        monotonic_ns: int | None = None,
        replay: bool = False,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        received = time.time_ns() if received_ns is None else received_ns
        mono = time.monotonic_ns() if monotonic_ns is None else monotonic_ns
        pending = self._pending
        trusted = replay or self.clock.trusted(received, mono)
        packets = 0
        for item in items:
            if isinstance(item, Rejection):
                if type(item) is Ignored:  # well-formed, no readings: counted only
                    pending.count(f"ignored.{item.reason}")
                else:
                    pending.quarantine.append(QuarantineEntry(item, source, received))
                continue
            packets += 1
            outcome = validate(item, received, source, self.policy,
                               self.devices.get(item.node), trusted, replay)
            for rej in outcome.rejections:
                pending.quarantine.append(QuarantineEntry(rej, source, received))
            for name, n in outcome.flags.items():
                pending.count(name, n)
            rec = outcome.record
            if rec is None:
                continue
            if rec.seq is not None and not replay:
                loss = self._loss.observe(rec.node, rec.seq)
                if loss is not None:
                    rec.device["packet_loss_pct"] = loss
            self._distinct_time(rec)
            if rec.time_source == "held":
                pending.monotonic[id(rec)] = mono
            pending.records.append(rec)
        if packets:
            pending.count("received.packets", packets)
        if after_commit is not None:
            pending.callbacks.append(after_commit)

    def _distinct_time(self, rec: Record) -> None:
        """Give each of a node's records its own timestamp.

        InfluxDB keeps one point per series and time, so two packets of one node stamped
        alike would overwrite each other there: packets that take the receive time share
        it when they arrive in one read or one replayed chunk, and a node may send twice
        within its clock's second. A nanosecond later is harmless and keeps both.
        """
        recent = self._recent_times.get(rec.node)
        if recent is None:
            recent = self._recent_times[rec.node] = _RecentTimes()
        if (rec.time_source != "node" and recent.order
                and recent.latest - PAST_NEWEST_NS < rec.time_ns <= recent.latest):
            # The receive time of packets of one read (or a replayed chunk), or just behind
            # a node time: just past the newest, so they keep their order.
            rec.time_ns = recent.latest + 1
        else:
            # A node's own times may arrive out of order (late, replayed), and a receive
            # time far behind the newest came after a node time that was ahead (a node
            # clock corrected for skew): either keeps its time and moves only on a tie.
            while rec.time_ns in recent.times:
                rec.time_ns += 1
        recent.add(rec.time_ns)

    @property
    def pending_packets(self) -> int:
        return len(self._pending.records) + len(self._pending.quarantine)

    # ---------------------------------------------------------------- commit

    def commit(self, *, more_coming: bool = False) -> BatchResult:
        """Commit the pending batch; ``more_coming``: it was full (see BatchResult)."""
        pending, self._pending = self._pending, _Pending()
        if not (pending.records or pending.quarantine or pending.counters or pending.callbacks):
            return BatchResult()
        try:
            result = self.store.write_batch(
                pending.records, pending.quarantine, pending.counters,
                boot_id=self._boot_id, monotonic_ns=pending.monotonic,
            )
        except BaseException:
            self._pending = pending  # keep it: the caller decides to retry or stop
            raise
        if pending.monotonic:
            # Held readings are committed: housekeeping re-anchors them. Set here, not as
            # they arrive, or a re-anchoring between their arrival and their commit would
            # clear it and leave them held.
            self._had_held = True
            # Nor are they handed to the sinks: their times are provisional, and a sink
            # waits for them in the store until they are re-anchored (Store.first_held_row).
            result.appended = []
        for name, n in pending.counters.items():
            self.totals[name] = self.totals.get(name, 0) + n
        for name, n in (("stored", result.stored), ("duplicates", result.duplicates)):
            self.totals[name] = self.totals.get(name, 0) + n
        for name, n in result.flags.items():  # counted by the commit (running totals)
            self.totals[name] = self.totals.get(name, 0) + n
        for q in pending.quarantine:
            key = f"rejected.{q.rejection.reason}"
            self.totals[key] = self.totals.get(key, 0) + 1
        result.more_coming = more_coming
        run_after_commit(pending.callbacks)
        for listener in self.commit_listeners:
            listener(result, pending.records)
        return result

    def reanchor_held(self) -> int:
        """Give held readings their real time once the gateway clock is trusted."""
        if not self._had_held:
            return 0
        wall, mono = time.time_ns(), time.monotonic_ns()
        if not self.clock.trusted(wall, mono):
            return 0
        updates = []
        for packet_id, packet_boot, packet_mono, _provisional in self.store.held_packets():
            if packet_boot is not None and packet_boot == self._boot_id and packet_mono:
                updates.append((packet_id, wall - (mono - packet_mono), "reanchored"))
        n = self.store.set_packet_times(updates)
        if n:
            self.store.add_counters({"reanchored": n})
            log.info("clock trusted again: re-anchored %d held packets", n)
        self._had_held = False
        return n

    # ---------------------------------------------------------------- worker

    def take(self, msg: SourceItem) -> None:
        """One queue item into the pending batch."""
        if isinstance(msg, RawChunk):
            if msg.source in self._streams:
                self.feed(msg.source, msg.data, received_ns=msg.received_ns,
                          monotonic_ns=msg.monotonic_ns)
                return
        elif isinstance(msg, MessageBatch):
            decode = self._message_decoders.get(msg.source)
            if decode is not None:
                items: list[Packet | Rejection] = []
                for topic, payload in msg.messages:
                    items += decode(topic, payload)
                self.handle(msg.source, items, received_ns=msg.received_ns,
                            monotonic_ns=msg.monotonic_ns, after_commit=msg.ack)
                return
        elif isinstance(msg, Message):
            decode = self._message_decoders.get(msg.source)
            if decode is not None:
                self.handle(msg.source, decode(msg.topic, msg.payload),
                            received_ns=msg.received_ns, monotonic_ns=msg.monotonic_ns,
                            after_commit=msg.ack)
                return
        elif isinstance(msg, SourceEvent):
            self._pending.count(f"source.{msg.kind}")
            return
        log.error("item from unknown source %s dropped", getattr(msg, "source", msg))
        self._pending.count("rejected.unknown_source")

    def take_guarded(self, msg: SourceItem) -> None:
        """:meth:`take`, where a bug that an input trips (an exception from a decoder or
        from validation) costs that input, not the worker: what the item had added to the
        pending batch is taken back, and the item is quarantined as ``internal_error``
        (acknowledged, like any quarantined input, so the broker does not send it again
        and again). A batch of messages is retried one message at a time, so only the
        message that fails is quarantined."""
        mark = self._pending.mark()
        try:
            self.take(msg)
            return
        except Exception:
            self._pending.rollback(mark)
            if not isinstance(msg, MessageBatch):
                self._quarantine_failed(msg.source, _raw_of(msg), getattr(msg, "ack", None),
                                        getattr(msg, "topic", None))
                return
        decode = self._message_decoders[msg.source]
        for topic, payload in msg.messages:
            mark = self._pending.mark()
            try:
                self.handle(msg.source, decode(topic, payload), received_ns=msg.received_ns,
                            monotonic_ns=msg.monotonic_ns)
            except Exception:
                self._pending.rollback(mark)
                self._quarantine_failed(msg.source, payload, None, topic)
        if msg.ack is not None:
            self._pending.callbacks.append(msg.ack)

    def _quarantine_failed(self, source: str, raw: bytes, ack: Callable[[], None] | None,
                           topic: str | None = None) -> None:
        log.exception("%s: input that a decoder or validation failed on is quarantined as "
                      "internal_error (a bug: please report it with the quarantined bytes)",
                      source)
        exc = sys.exc_info()[1]
        pending = self._pending
        pending.quarantine.append(QuarantineEntry(
            Rejection("internal_error", f"{type(exc).__name__}: {exc}"[:300], raw,
                      self._formats.get(source, source), topic=topic),
            source, time.time_ns()))
        if ack is not None:
            pending.callbacks.append(ack)

    def run(self, inbox: queue.Queue[SourceItem], stop: threading.Event) -> None:
        """Worker loop: until ``stop`` is set and the inbox is drained."""
        deadline = time.monotonic() + self.batch_interval_s
        housekeeping_at = time.monotonic() + 5.0
        while True:
            timeout = max(0.0, deadline - time.monotonic())
            msg: SourceItem | None = None
            if self.paused and not stop.is_set():
                # Not reading the inbox lets it fill, and the sources then wait: backpressure
                # instead of loss while the store is full.
                stop.wait(1.0)
                self.housekeeping()
                continue
            with contextlib.suppress(queue.Empty):
                msg = inbox.get(timeout=min(timeout, 0.1))
            if msg is not None:
                self.take_guarded(msg)
            now = time.monotonic()
            full = self.pending_packets >= self.batch_max
            if full or now >= deadline:
                self._commit_with_retry(stop, more_coming=full)
                deadline = now + self.batch_interval_s
            if now >= housekeeping_at:
                self.housekeeping()
                housekeeping_at = now + 5.0
            if stop.is_set() and msg is None and inbox.empty():
                for source in self._streams:
                    self.finish_stream(source)
                self._commit_with_retry(stop, final=True)
                return

    def housekeeping(self) -> None:
        try:
            self.reanchor_held()
            self.store.enforce_bounds(time.time_ns())
        except StoreFull as exc:
            if not self.paused:
                log.error("%s: ingest paused until there is room", exc)
            self.paused = True
        else:
            if self.paused:
                log.warning("store has room again: ingest resumed")
            self.paused = False

    def _commit_with_retry(self, stop: threading.Event, *, final: bool = False,
                           more_coming: bool = False) -> None:
        """Commit; on a store error keep the batch and retry (it is not lost)."""
        delay = 0.1
        while True:
            try:
                self.commit(more_coming=more_coming)
                return
            except Exception as exc:  # disk full, locked database, I/O error
                log.error("commit failed, will retry: %s", exc)
                if stop.is_set() and final and delay > 5:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 10.0)


def _raw_of(msg: SourceItem) -> bytes:
    """The bytes of a queue item, as quarantine evidence."""
    if isinstance(msg, RawChunk):
        return msg.data
    if isinstance(msg, Message):
        return msg.payload
    return repr(msg).encode()
