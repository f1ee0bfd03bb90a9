"""Rows the pipeline just committed, handed to a consumer in the same process: the
InfluxDB sink, and the rules runner (``rules/runner.py``), each with a Handoff of its own
holding the same tuples.

A sink reads the outbox after its cursor. Reading back rows that were written a moment
ago costs the gateway as much CPU as encoding them (three rows per uplink, ~20 columns
each), so the pipeline also offers each commit's rows (:class:`AppendedRows`, the tuples
it inserted, with their ids) to the sink, which writes from them when they continue its
cursor exactly.

The store stays the truth: rows are offered only after their commit, kept here until the
sink's cursor passes them (so a failed write is retried from here), and whatever is not
here (the sink started after a restart or an outage, or an offer was refused because the
bound was reached) is read from the store as before. Nothing decides delivery but the
cursor, which moves only after the server accepted the rows.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence

from gateway.store.sqlite import AppendedRows


class Handoff:
    """Per outbox table, offered rows not yet passed by the consumer's cursor, up to
    ``limit_rows`` in all; ``wake`` is set once ``wake_rows`` are waiting."""

    def __init__(self, tables: Sequence[str], *, limit_rows: int, wake_rows: int) -> None:
        self.limit_rows = limit_rows
        self.wake_rows = wake_rows
        self.wake = threading.Event()
        self.refused = 0  # rows offered beyond the bound (the sink reads them from the store)
        self._chunks: dict[str, deque[AppendedRows]] = {t: deque() for t in tables}
        self._rows = 0
        self._lock = threading.Lock()

    @property
    def rows(self) -> int:
        return self._rows

    def offer(self, appended: Iterable[AppendedRows], *, flush: bool = False) -> None:
        """Called on the pipeline's thread after a commit. ``flush``: wake the sink for
        whatever is here, even below ``wake_rows`` (the input has gone quiet)."""
        with self._lock:
            for chunk in appended:
                chunks = self._chunks.get(chunk.table)
                if chunks is None or not chunk.rows:
                    continue
                if self._rows + len(chunk.rows) > self.limit_rows:
                    self.refused += len(chunk.rows)
                    continue
                chunks.append(chunk)
                self._rows += len(chunk.rows)
            if self._rows >= self.wake_rows or (flush and self._rows):
                self.wake.set()

    def take(self, table: str, after_id: int, limit: int) -> list[AppendedRows]:
        """Up to ``limit`` rows of ``table`` that follow ``after_id`` (the sink's cursor)
        without a gap; [] when the next row is not here: read it from the store.

        Rows at or before ``after_id`` are let go; the rest stay until the cursor passes
        them.
        """
        with self._lock:
            chunks = self._chunks[table]
            while chunks and chunks[0].last_id <= after_id:
                self._rows -= len(chunks.popleft().rows)
            out: list[AppendedRows] = []
            expect, room = after_id + 1, limit
            for chunk in chunks:
                if chunk.first_id > expect or room <= 0:
                    break  # a gap (not offered, or refused): the store has the rows
                skip = expect - chunk.first_id
                if skip == 0 and len(chunk.rows) <= room:
                    out.append(chunk)
                else:
                    out.append(AppendedRows(table, expect, chunk.columns,
                                            chunk.rows[skip:skip + room]))
                expect += len(out[-1].rows)
                room -= len(out[-1].rows)
            return out
