"""The pipeline hands committed rows to the InfluxDB sink in memory (gateway/sinks/handoff.py).

The store stays the truth: the sink writes from memory only rows that continue its cursor
exactly, and reads everything else from the store. Pure tests of the bookkeeping here;
against real servers, test_influx_sink.py runs its outage test both ways and the end-to-end
tests run the whole gateway, which offers every commit.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from outbox_data import make_records

from gateway.sinks.handoff import Handoff
from gateway.store.sqlite import AppendedRows, Store


def chunk(table: str, first: int, n: int) -> AppendedRows:
    return AppendedRows(table, first, ("packet_id", "time_ns", "site", "plot", "node"),
                        [(first + i, 0, "s", "p", "n") for i in range(n)])


def ids(chunks: list[AppendedRows]) -> list[int]:
    return [c.first_id + i for c in chunks for i in range(len(c.rows))]


def test_rows_that_continue_the_cursor_are_taken_up_to_the_limit() -> None:
    h = Handoff(["device"], limit_rows=100, wake_rows=50)
    h.offer([chunk("device", 1, 10), chunk("device", 11, 10)])
    assert ids(h.take("device", 0, 15)) == list(range(1, 16))  # the second chunk is cut
    assert ids(h.take("device", 0, 100)) == list(range(1, 21))  # nothing taken away yet
    assert ids(h.take("device", 4, 3)) == [5, 6, 7]  # a cursor inside a chunk
    assert h.rows == 20


def test_rows_are_let_go_only_when_the_cursor_passes_them() -> None:
    h = Handoff(["device"], limit_rows=100, wake_rows=50)
    h.offer([chunk("device", 1, 10), chunk("device", 11, 10)])
    assert ids(h.take("device", 10, 100)) == list(range(11, 21))
    assert h.rows == 10  # the first chunk is behind the cursor
    assert h.take("device", 20, 100) == []
    assert h.rows == 0


def test_a_gap_sends_the_sink_to_the_store() -> None:
    h = Handoff(["device"], limit_rows=100, wake_rows=50)
    h.offer([chunk("device", 21, 10)])  # rows 1..20 were never offered (restart, outage)
    assert h.take("device", 0, 100) == []
    assert h.take("device", 15, 100) == []
    assert ids(h.take("device", 20, 100)) == list(range(21, 31))  # caught up


def test_offers_beyond_the_bound_are_refused_and_counted() -> None:
    h = Handoff(["reading", "device"], limit_rows=25, wake_rows=21)
    h.offer([chunk("reading", 1, 10), chunk("device", 1, 10)])
    assert not h.wake.is_set()
    h.offer([chunk("reading", 11, 10), chunk("device", 11, 5)])
    assert h.refused == 10 and h.rows == 25 and h.wake.is_set()
    # reading 11..20 were refused: after row 10 the sink reads the store
    assert ids(h.take("reading", 0, 100)) == list(range(1, 11))
    assert h.take("reading", 10, 100) == []
    assert ids(h.take("device", 0, 100)) == list(range(1, 16))


def test_tables_not_handed_off_are_ignored() -> None:
    h = Handoff(["reading"], limit_rows=100, wake_rows=50)
    h.offer([chunk("alert", 1, 10)])
    assert h.rows == 0


def test_commit_hands_over_the_rows_it_inserted_with_their_ids(tmp_path: Path) -> None:
    """What write_batch reports as appended is exactly what the store holds: one group of
    rows per column layout (a node's air sensor and soil probe alternate in the batch, and
    are inserted as two groups), ids in order, each series in its own order."""
    store = Store(tmp_path / "s.db")
    for batch in range(3):
        result = store.write_batch(make_records(7, node=f"n{batch}"))
        for table, rows in (("reading", 14), ("device", 7)):
            runs = [a for a in result.appended if a.table == table]
            assert sum(len(a.rows) for a in runs) == rows
            assert all(b.first_id == a.last_id + 1 for a, b in pairwise(runs))
            stored = {r["id"]: r for r in store.rows_after(table, runs[0].first_id - 1, rows)}
            assert sorted(stored) == list(range(runs[0].first_id, runs[-1].last_id + 1))
            for run in runs:
                for i, row in enumerate(run.rows):
                    want = stored[run.first_id + i]
                    got = dict(zip(run.columns, row, strict=True))
                    assert got == {k: want[k] for k in run.columns}
                    assert all(want[k] is None for k in want
                               if k not in run.columns and k != "id")
        groups = [a for a in result.appended if a.table == "reading"]
        assert [len(a.rows) for a in groups] == [7, 7]  # alternating in, two statements
        assert [r[5] for r in groups[0].rows] == ["main"] * 7
        for a in groups:  # each (node, sensor) series keeps its order
            times = [r[1] for r in a.rows]
            assert times == sorted(times) and len(set(times)) == 7
    assert store.write_batch(make_records(0)).appended == []


def test_a_quiet_commit_wakes_the_sink_below_half_a_batch() -> None:
    h = Handoff(["device"], limit_rows=100, wake_rows=50)
    h.offer([chunk("device", 1, 10)])  # a full commit of a burst: wait for more
    assert not h.wake.is_set()
    h.offer([chunk("device", 11, 1)], flush=True)  # the input went quiet: write now
    assert h.wake.is_set()
    h.wake.clear()
    assert ids(h.take("device", 0, 100)) == list(range(1, 12))
    h.take("device", 11, 100)
    h.offer([], flush=True)  # nothing held: nothing to wake for
    assert not h.wake.is_set()
