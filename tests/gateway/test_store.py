"""The SQLite store on real files: dedup across reopen, counters in step, bounds, cursors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.packet import Record, Rejection
from gateway.store.sqlite import ROWS_PER_INSERT, QuarantineEntry, Store, StoreFull


def record(node: str = "n1", seq: int = 1, *, t: int = 1_780_000_000, moisture: float = 30.0,
           digest: bytes | None = None) -> Record:
    return Record(
        time_ns=t * 10**9, received_ns=t * 10**9, site="s", plot="p1", node=node, seq=seq,
        digest=digest or f"{node}:{seq}".encode(), source="serial", format="frame",
        time_source="gateway",
        readings={"main": {"temperature_c": 20.5}, "soil_10cm": {"soil_moisture_pct": moisture}},
        device={"battery_v": 3.7, "seq": float(seq)},
    )


def test_batch_is_stored_with_tags_and_fields(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    result = store.write_batch([record(seq=1), record(seq=2)])
    assert (result.stored, result.duplicates) == (2, 0)
    rows = store.execute(
        "SELECT node, sensor, temperature_c, soil_moisture_pct FROM reading"
        " ORDER BY packet_id, id")
    assert rows == [("n1", "main", 20.5, None), ("n1", "soil_10cm", None, 30.0)] * 2
    # one insert per column layout: a commit's air rows, then its soil rows
    assert [r[0] for r in store.execute("SELECT sensor FROM reading ORDER BY id")] == [
        "main", "main", "soil_10cm", "soil_10cm"]
    assert store.execute("SELECT battery_v, seq FROM device") == [(3.7, 1.0), (3.7, 2.0)]
    assert store.counters() == {"stored": 2}


def test_duplicates_are_ignored_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    store.write_batch([record(seq=1), record(seq=2)])
    store.close()
    store = Store(path)
    result = store.write_batch([record(seq=2), record(seq=3), record(seq=3)])
    assert (result.stored, result.duplicates) == (1, 2)
    assert result.duplicate_keys == [("n1", 2), ("n1", 3)]
    assert store.count("packet") == 3
    assert store.count("reading") == 6
    assert store.counters() == {"stored": 3, "duplicates": 2}


def test_one_batch_stores_what_record_by_record_batches_store(tmp_path: Path) -> None:
    """Batched inserts (one statement per table and column layout, node_state once per
    node) change nothing: same rows, each series in the same order, same node_state, same
    duplicates as one record at a time."""
    def mixed() -> list[Record]:
        out = [record("a", 1, t=100), record("b", 1, t=300), record("a", 2, t=90),
               record("a", 1, t=100), record("b", 2, t=250, moisture=31.0)]
        odd = record("a", 3, t=95)
        odd.seq = None  # no seq: node_state keeps the last one it had
        odd.readings = {"main": {"humidity_pct": 50.0}}  # other columns: a new run
        odd.device = {}
        out.append(odd)
        out.append(record("a", 4, t=99, digest=b"a:4"))
        return out

    one = Store(tmp_path / "one.db")
    one.write_batch([record("a", 0, t=50)])
    batched = one.write_batch(mixed())
    each = Store(tmp_path / "each.db")
    each.write_batch([record("a", 0, t=50)])
    results = [each.write_batch([rec]) for rec in mixed()]
    assert (batched.stored, batched.duplicates) == (
        sum(r.stored for r in results), sum(r.duplicates for r in results)) == (6, 1)
    assert batched.duplicate_keys == [("a", 1)]
    for sql in ("SELECT node, seq, digest, time_ns FROM packet ORDER BY id",
                "SELECT * FROM device ORDER BY id",
                "SELECT * FROM node_state ORDER BY node"):
        assert one.execute(sql) == each.execute(sql), sql
    # reading ids follow the commit's groups (one per column layout), not the packets
    readings = "SELECT * FROM reading ORDER BY packet_id, sensor"
    assert [r[1:] for r in one.execute(readings)] == [r[1:] for r in each.execute(readings)]
    # rows of one column layout keep the packets' order
    by_id = ("SELECT node, sensor, temperature_c IS NULL, humidity_pct IS NULL, packet_id"
             " FROM reading ORDER BY id")
    layouts: dict[tuple[str, str, int, int], list[int]] = {}
    for *layout, packet_id in one.execute(by_id):
        layouts.setdefault(tuple(layout), []).append(packet_id)  # type: ignore[arg-type]
    assert len(layouts) == 5 and all(ids == sorted(ids) for ids in layouts.values())
    assert one.node_states()[0]["last_seq"] == 4
    assert one.node_states()[0]["last_time_ns"] == 100 * 10**9
    assert one.counters() == each.counters()


@pytest.mark.parametrize("n", [15, 16, 17, 33, 53])
@pytest.mark.parametrize("held", [False, True])
def test_statements_of_many_rows_store_what_one_row_statements_store(
        tmp_path: Path, n: int, held: bool) -> None:
    """Rows go in ROWS_PER_INSERT to a statement (and the rest one by one): same ids,
    rows and duplicates as one record per commit, with duplicates inside a statement's
    rows, across two of them and against rows already stored; with held packets (two
    more columns) too."""
    assert ROWS_PER_INSERT == 16  # the sizes above straddle it

    def batch() -> list[Record]:
        recs = [record(f"n{i % 3}", i, t=1_000 + i) for i in range(n)]
        recs[5] = record("n2", 2, t=1_002)  # = recs[2], in the same statement's rows
        recs[-1] = record("n0", 0, t=1_000)  # = recs[0], a statement or more before it
        return [*recs, record("old", 1, t=900)]  # already stored

    def write(store: Store, recs: list[Record], held_ones: list[Record]) -> tuple[int, int]:
        mono = {id(r): r.time_ns // 1000 for r in held_ones} if held else None
        result = store.write_batch(recs, boot_id="boot-1" if held else None,
                                   monotonic_ns=mono)
        return result.stored, result.duplicates

    many, each = Store(tmp_path / "many.db"), Store(tmp_path / "each.db")
    for store in (many, each):
        store.write_batch([record("old", 1, t=900)])
    recs = batch()
    counts = write(many, recs, recs[::2])
    one_by_one = [write(each, [r], [r] if i % 2 == 0 else []) for i, r in enumerate(batch())]
    assert counts == (n - 2, 3)
    assert [sum(c) for c in zip(*one_by_one, strict=True)] == list(counts)
    assert many.count("packet") == each.count("packet") == n - 1
    for sql in ("SELECT * FROM packet ORDER BY id", "SELECT * FROM device ORDER BY id",
                "SELECT * FROM node_state ORDER BY node"):
        assert many.execute(sql) == each.execute(sql), sql
    readings = "SELECT * FROM reading ORDER BY packet_id, sensor"
    assert [r[1:] for r in many.execute(readings)] == [r[1:] for r in each.execute(readings)]


def test_quarantine_keeps_raw_bytes_and_counts_by_reason(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    rej = [
        QuarantineEntry(Rejection("bad_crc", "crc 1234 != 4321", b"\xa5\x5a\x01", "frame"),
                        "serial", 5),
        QuarantineEntry(Rejection("garbage", "3 bytes", b"xyz", "frame"), "serial", 6),
        QuarantineEntry(Rejection("bad_crc", "crc", b"\x00", "frame"), "serial", 7),
    ]
    store.write_batch([], rej, {"received.packets": 0})
    assert store.quarantine_counts() == {"bad_crc": 2, "garbage": 1}
    assert store.counters() == {"rejected.bad_crc": 2, "rejected.garbage": 1}
    newest = store.quarantine(limit=1)[0]
    assert (newest["reason"], newest["raw"]) == ("bad_crc", b"\x00")


def test_quarantine_keeps_the_mqtt_topic_a_message_came_on(tmp_path: Path) -> None:
    """Garbage names no node: the topic is what tells the operator who sent it, in the
    store and in `satoyama status`."""
    from gateway.status import collect, render

    store = Store(tmp_path / "s.db")
    topic = "v3/orchard@ttn/devices/node-1/up"
    store.write_batch([], [
        QuarantineEntry(Rejection("bad_json", "Expecting value", b"{trunc", "ttn",
                                  topic=topic), "mqtt", 10**18),
        QuarantineEntry(Rejection("garbage", "3 bytes", b"xyz", "frame"), "serial", 10**18),
    ])
    rows = {q["reason"]: q for q in store.quarantine()}
    assert (rows["bad_json"]["topic"], rows["garbage"]["topic"]) == (topic, None)
    info = collect(store)
    assert [q["topic"] for q in info["quarantine_latest"]] == [None, topic]  # newest first
    assert "raw" not in info["quarantine_latest"][0]
    text = render(info, tz="UTC")
    assert f"bad_json from mqtt topic {topic}: Expecting value" in text
    assert "garbage from serial: 3 bytes" in text


def test_store_made_before_quarantine_topic_gains_the_column_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(  # the quarantine table as stores made before the topic column have it
        "CREATE TABLE quarantine (id INTEGER PRIMARY KEY, received_ns INTEGER NOT NULL,"
        " source TEXT NOT NULL, format TEXT NOT NULL, reason TEXT NOT NULL,"
        " detail TEXT NOT NULL, node TEXT, seq INTEGER, raw BLOB NOT NULL);"
        "INSERT INTO quarantine VALUES (4, 1, 'mqtt', 'native', 'bad_json', 'x', NULL, NULL,"
        " x'7b');")
    db.close()
    store = Store(path)
    assert store.columns("quarantine")[-1] == "topic"
    assert store.columns("quarantine") == Store(tmp_path / "new.db").columns("quarantine")
    store.write_batch([], [QuarantineEntry(
        Rejection("bad_json", "y", b"{", "native", topic="satoyama/hill/n1/up"), "mqtt", 2)])
    assert store.execute("SELECT id, reason, raw, topic FROM quarantine ORDER BY id") == [
        (4, "bad_json", b"{", None), (5, "bad_json", b"{", "satoyama/hill/n1/up")]
    columns = store.columns("quarantine")
    store.close()
    assert Store(path).columns("quarantine") == columns  # added once, reopening is a no-op


def test_failed_batch_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    bad = record(seq=2)
    bad.readings = {"main": {"no_such_column": 1.0}}
    with pytest.raises(Exception, match="no_such_column"):
        store.write_batch([record(seq=1), bad], counters={"received.packets": 2})
    assert store.count("packet") == 0
    assert store.counters() == {}


def test_drop_oldest_keeps_the_store_under_its_bound(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", max_size_mb=0.25, full_policy="drop_oldest")
    for batch in range(20):
        store.write_batch([record(seq=batch * 100 + i) for i in range(100)])
        store.enforce_bounds(now_ns=0)
    assert store.used_bytes() <= 0.25 * 1024 * 1024
    counters = store.counters()
    assert counters["store.dropped_oldest"] > 0
    kept = store.count("packet")
    assert kept + counters["store.dropped_oldest"] == 2000
    # The newest data is what survives.
    assert store.execute("SELECT max(seq) FROM packet") == [(1999,)]


def test_stop_ingest_policy_raises_store_full(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", max_size_mb=0.05, full_policy="stop_ingest")
    store.write_batch([record(seq=i) for i in range(500)])
    with pytest.raises(StoreFull, match="stop_ingest"):
        store.enforce_bounds(now_ns=0)


def test_sink_cursors_are_independent(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.write_batch([record(seq=i) for i in range(5)])
    rows = store.rows_after("reading", store.cursor("influx", "reading"), limit=4)
    assert len(rows) == 4
    store.advance("influx", "reading", rows[-1]["id"])
    assert store.backlog("influx") == {"reading": 6, "device": 5, "alert": 0}
    assert store.backlog("other") == {"reading": 10, "device": 5, "alert": 0}


def test_held_packets_can_be_reanchored(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    rec = record(seq=9)
    rec.time_source = "held"
    store.write_batch([rec], boot_id="boot-a", monotonic_ns={id(rec): 123})
    [(packet_id, boot, mono, _)] = store.held_packets()
    assert (boot, mono) == ("boot-a", 123)
    store.set_packet_times([(packet_id, 42, "reanchored")])
    assert store.held_packets() == []
    assert set(store.execute("SELECT time_ns FROM reading")) == {(42,)}


def test_packets_without_seq_are_deduplicated_too(tmp_path: Path) -> None:
    """The dedup index orders by seq; a missing seq must not make every packet unique
    (NULLs are distinct in a UNIQUE index, hence ifnull(seq, -1))."""
    store = Store(tmp_path / "s.db")
    first, again = record(digest=b"same"), record(digest=b"same")
    first.seq = again.seq = None
    assert store.write_batch([first]).stored == 1
    result = store.write_batch([again])
    assert (result.stored, result.duplicates) == (0, 1)
    assert store.count("packet") == 1


def test_store_made_with_the_table_constraint_is_rebuilt_with_the_dedup_index(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE packet (id INTEGER PRIMARY KEY, node TEXT NOT NULL, seq INTEGER,"
        " digest BLOB NOT NULL, time_ns INTEGER NOT NULL, received_ns INTEGER NOT NULL,"
        " site TEXT NOT NULL, plot TEXT NOT NULL, source TEXT NOT NULL, format TEXT NOT NULL,"
        " time_source TEXT NOT NULL, boot_id TEXT, monotonic_ns INTEGER,"
        " UNIQUE (node, digest));"
        "INSERT INTO packet VALUES (7, 'n1', 1, x'6e313a31', 1, 1, 's', 'p1', 'serial', 'frame',"
        " 'gateway', NULL, NULL);"
        "INSERT INTO packet VALUES (9, 'n1', NULL, x'6e6f736571', 2, 2, 's', 'p1', 'serial',"
        " 'frame', 'gateway', 'boot', 42);")
    db.close()
    store = Store(path)
    assert store.execute("SELECT id, node, seq, digest, boot_id, monotonic_ns FROM packet"
                         " ORDER BY id") == [(7, "n1", 1, b"n1:1", None, None),
                                             (9, "n1", None, b"noseq", "boot", 42)]
    assert store.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'packet'"
                         " AND type = 'index' ORDER BY name") == [("packet_dedup",),
                                                                  ("packet_held",)]
    noseq = record(digest=b"noseq")
    noseq.seq = None
    result = store.write_batch([record(seq=1), noseq, record(seq=2)])
    assert (result.stored, result.duplicates) == (1, 2)
    assert store.execute("SELECT max(id) FROM packet") == [(10,)]


def test_threads_writing_one_file_take_turns_and_a_stuck_writer_times_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores of one file in one process share a writer lock: a second writer waits for
    the first to commit, and gives up like SQLite's busy timeout if it never does."""
    import threading

    import gateway.store.sqlite as sqlite_store
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_S", 0.3)
    first, second = Store(tmp_path / "s.db"), Store(tmp_path / "." / "s.db")
    errors: list[str] = []

    def give_up() -> None:
        try:
            second.add_counters({"never": 1})
        except sqlite3.OperationalError as e:
            errors.append(str(e))

    with first.transaction() as tx:
        tx.add_counters({"held": 1})
        stuck = threading.Thread(target=give_up)
        stuck.start()
        stuck.join(5)
        assert errors == ["database is locked (another thread of this process has been "
                          "writing for 0.3 s)"]
        committed = threading.Event()
        waiter = threading.Thread(target=lambda: (second.add_counters({"waited": 1}),
                                                  committed.set()))
        waiter.start()
        assert not committed.wait(0.1)  # waits for the first writer ...
    waiter.join(5)
    assert committed.is_set()  # ... and writes once it has committed
    assert second.counters() == {"held": 1, "waited": 1}


def test_outbox_ids_are_never_reused_once_the_newest_rows_are_deleted(tmp_path: Path) -> None:
    """A gateway off for longer than ``retention_days``: retention deletes every row, and
    the rows that come next must still get ids past the sinks' cursors, or no sink ever
    delivers them (their backlog reads 0)."""
    store = Store(tmp_path / "s.db", retention_days=30)
    old = 1_780_000_000
    store.write_batch([record(seq=i, t=old + i) for i in range(1, 4)])
    top = store.execute("SELECT max(id) FROM reading")[0][0]
    store.sink_delivered("influxdb", "reading", top)
    assert store.enforce_bounds((old + 40 * 86400) * 10**9) == {"retention_deleted": 3}
    assert store.count("reading") == 0
    store.write_batch([record(seq=9, t=old + 40 * 86400)])
    assert min(i for (i,) in store.execute("SELECT id FROM reading")) == top + 1
    assert store.backlog("influxdb", ["reading"]) == {"reading": 2}


def test_a_store_whose_ids_went_behind_a_cursor_continues_past_it(tmp_path: Path) -> None:
    """Stores from before the id floors, where ids had already been handed out again
    behind a cursor: new rows continue past the highest cursor once the store is opened."""
    path = tmp_path / "s.db"
    Store(path).write_batch([record(seq=1)])
    db = sqlite3.connect(path)
    db.execute("INSERT INTO sink_cursor VALUES ('influxdb', 'reading', 50)")
    db.commit()
    db.close()
    store = Store(path)
    store.write_batch([record(seq=2)])
    assert [i for (i,) in store.execute("SELECT id FROM reading ORDER BY id")] == [1, 2, 51, 52]
    assert store.execute("SELECT max(id) FROM device")[0][0] == 2


def test_quarantine_ids_are_never_reused_either(tmp_path: Path) -> None:
    """The rules engine reads the quarantine by cursor too."""
    store = Store(tmp_path / "s.db", retention_days=30)
    old = 1_780_000_000
    store.write_batch([], garbage(3, old))
    store.enforce_bounds((old + 40 * 86400) * 10**9)
    store.write_batch([], garbage(2, old + 40 * 86400))
    assert [i for (i,) in store.execute("SELECT id FROM quarantine ORDER BY id")] == [4, 5]


def garbage(n: int, t: int) -> list[QuarantineEntry]:
    return [QuarantineEntry(Rejection("garbage", f"{i}", b"\x00" * 2000, "frame"), "serial",
                            t * 10**9 + i) for i in range(n)]


def test_drop_oldest_deletes_old_quarantine_before_newer_packets(tmp_path: Path) -> None:
    """A receiver at the wrong baud rate fills the store with quarantined garbage: the
    bound deletes the oldest entries of either kind. It once deleted only packets, all of
    them, and stayed over the bound."""
    store = Store(tmp_path / "s.db", max_size_mb=0.5, full_policy="drop_oldest")
    store.write_batch([], garbage(300, 1_780_000_000))
    store.write_batch([record(seq=i, t=1_780_000_100) for i in range(50)])
    deleted = store.enforce_bounds(now_ns=0)
    assert store.used_bytes() <= 0.5 * 1024 * 1024
    assert deleted["dropped_oldest_quarantine"] > 0 and "dropped_oldest" not in deleted
    assert store.count("packet") == 50
    assert store.counters()["store.dropped_oldest_quarantine"] == (
        300 - store.count("quarantine"))


def test_retention_covers_quarantine_and_is_counted_even_when_the_store_is_full(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", max_size_mb=0.3, full_policy="stop_ingest",
                  retention_days=30)
    old, now = 1_780_000_000, 1_780_000_000 + 40 * 86400
    store.write_batch([record(seq=i, t=old) for i in range(10)], garbage(5, old))
    store.write_batch([], garbage(300, now))
    with pytest.raises(StoreFull):
        store.enforce_bounds(now * 10**9)
    assert store.count("packet") == 0 and store.count("quarantine") == 300
    counters = store.counters()
    assert counters["store.retention_deleted"] == 10
    assert counters["store.retention_quarantine_deleted"] == 5


def test_rows_of_packets_held_in_this_boot_are_found_for_the_sinks_to_wait(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.write_batch([record(seq=1)])
    held = record(seq=2)
    held.time_source = "held"
    store.write_batch([held], boot_id="boot-a", monotonic_ns={id(held): 5})
    store.write_batch([record(seq=3)])
    first = store.execute("SELECT min(id) FROM reading WHERE packet_id = 2")[0][0]
    assert store.first_held_row("reading", 0, "boot-a") == first
    assert store.first_held_row("device", 0, "boot-a") == 2
    assert store.first_held_row("reading", 0, "boot-b") is None  # never to be re-anchored
    with store.outbox_cursor("reading", 0, 100, before_id=first) as (_cols, rows):
        assert len(list(rows)) == first - 1
    store.set_packet_times([(2, 1_780_000_000 * 10**9, "reanchored")])
    assert store.first_held_row("reading", 0, "boot-a") is None


def test_export_rows_stream_in_batches_so_memory_does_not_grow_with_the_export(
        tmp_path: Path) -> None:
    """A season's export (millions of rows) on a Raspberry Pi: the rows are read a batch
    at a time, not all at once. Peak memory while reading 10x the rows stays about the
    same; it grew tenfold when the query's result was fetched whole."""
    import tracemalloc

    from outbox_data import T0, make_records

    store = Store(tmp_path / "s.db")
    for i in range(10):
        store.write_batch(make_records(2000, start_ns=T0 + i * 2000 * 10**9))

    def peak_reading(rows: int) -> int:
        tracemalloc.start()
        try:
            seen = sum(1 for _ in store.iter_readings(
                time_to_ns=T0 + rows // 2 * 10**9, batch=500))
            assert seen == rows
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak_reading(4000), peak_reading(40000)
    assert large < 2 * small, (small, large)
    assert sum(1 for _ in store.rows_between("device")) == 20000
