"""The pipeline without threads: decode -> validate -> commit, with time passed in."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from firmware_bridge.frame import encode_frame
from gateway.clock import ClockMonitor
from gateway.packet import Packet, Record, Rejection
from gateway.pipeline.ingest import PAST_NEWEST_NS, RECENT_TIMES, Pipeline
from gateway.pipeline.validate import Policy
from gateway.sources.items import MessageBatch, RawChunk, SourceItem
from gateway.store.sqlite import QuarantineEntry, Store


def make(tmp_path: Path, **kw: object) -> tuple[Store, Pipeline]:
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline(store, Policy(default_site="farm"), **kw)  # type: ignore[arg-type]
    pipeline.add_stream("serial", "frame")
    return store, pipeline


def test_counter_restart_after_battery_change_is_not_taken_for_duplicates(tmp_path: Path) -> None:
    store, pipeline = make(tmp_path)
    before = [encode_frame(7, s, {("soil_moisture_pct", "soil_10cm"): 30 + s}) for s in range(5)]
    after = [encode_frame(7, s, {("soil_moisture_pct", "soil_10cm"): 25 - s}, boot=s == 0)
             for s in range(5)]
    pipeline.feed("serial", b"".join(before))
    pipeline.commit()
    pipeline.feed("serial", b"".join(after) + after[3] + before[2])  # two real retransmissions
    result = pipeline.commit()
    assert (result.stored, result.duplicates) == (5, 2)
    assert store.count("packet") == 10
    values = sorted(v for (v,) in store.execute("SELECT soil_moisture_pct FROM reading"))
    assert values == [21, 22, 23, 24, 25, 30, 31, 32, 33, 34]


def test_packet_loss_comes_from_sequence_gaps(tmp_path: Path) -> None:
    store, pipeline = make(tmp_path)
    seqs = [0, 1, 2, 5, 6, 7, 8, 9, 10, 11]  # 3 and 4 lost: 2 of 12
    pipeline.feed("serial", b"".join(
        encode_frame(3, s, {("temperature_c", "main"): 20.0}) for s in seqs))
    pipeline.commit()
    assert store.execute("SELECT packet_loss_pct FROM device ORDER BY id DESC LIMIT 1") == [
        (round(100 * 2 / 12, 2),)]


def test_readings_held_while_the_clock_is_untrusted_are_reanchored(tmp_path: Path) -> None:
    synced = {"now": False}
    clock = ClockMonitor(require_sync=True, sync_probe=lambda: synced["now"], recheck_s=0)
    store, pipeline = make(tmp_path, clock=clock)
    stale_wall = 1_600_000_000 * 10**9  # a Pi booted with the time it saved months ago
    received_mono = time.monotonic_ns() - 30 * 10**9  # really received 30 s ago
    pipeline.feed("serial", encode_frame(1, 1, {("temperature_c", "main"): 12.5}),
                  received_ns=stale_wall, monotonic_ns=received_mono)
    pipeline.commit()
    assert store.execute("SELECT time_source, time_ns FROM packet") == [("held", stale_wall)]
    assert pipeline.reanchor_held() == 0  # still not synchronised: stays held

    synced["now"] = True
    assert pipeline.reanchor_held() == 1
    [(source, time_ns)] = store.execute("SELECT time_source, time_ns FROM packet")
    assert source == "reanchored"
    assert abs(time_ns - (time.time_ns() - 30 * 10**9)) < 2 * 10**9
    assert store.execute("SELECT time_ns FROM reading") == [(time_ns,)]
    assert store.counters()["reanchored"] == 1
    assert store.counters()["flagged.time_held"] == 1


def test_held_readings_not_yet_committed_when_the_clock_is_trusted_are_reanchored_later(
        tmp_path: Path) -> None:
    """Housekeeping may re-anchor between a held reading's arrival and its commit (the
    clock synchronised meanwhile): it finds nothing committed then, and must still come
    back for the reading once it is committed."""
    synced = {"now": False}
    clock = ClockMonitor(require_sync=True, sync_probe=lambda: synced["now"], recheck_s=0)
    store, pipeline = make(tmp_path, clock=clock)
    pipeline.feed("serial", encode_frame(1, 1, {("temperature_c", "main"): 12.5}),
                  received_ns=1_600_000_000 * 10**9, monotonic_ns=time.monotonic_ns())
    synced["now"] = True
    assert pipeline.reanchor_held() == 0  # nothing held is committed yet
    pipeline.commit()
    assert store.execute("SELECT time_source FROM packet") == [("held",)]
    assert pipeline.reanchor_held() == 1
    assert store.execute("SELECT time_source FROM packet") == [("reanchored",)]


def test_clock_before_the_floor_date_is_never_trusted() -> None:
    clock = ClockMonitor(require_sync=False, recheck_s=0)
    assert not clock.trusted(0)
    assert clock.reason == "wall clock is before clock.not_before"
    assert clock.trusted(time.time_ns())


def test_every_packet_is_accounted_for(tmp_path: Path) -> None:
    """received.packets = stored + duplicates + rejected whole; garbage is counted apart."""
    store, pipeline = make(tmp_path)
    good = [encode_frame(2, s, {("humidity_pct", "main"): 50.0}) for s in range(10)]
    bad = encode_frame(2, 99, {("humidity_pct", "main"): 150.0})
    pipeline.feed("serial", b"xx" + b"".join(good) + good[0] + bad)
    pipeline.commit()
    c = store.counters()
    assert c["received.packets"] == 12
    assert (c["stored"], c["duplicates"], c["rejected.out_of_range"]) == (10, 1, 1)
    assert c["rejected.garbage"] == 1


def test_a_nodes_records_never_share_a_timestamp(tmp_path: Path) -> None:
    """InfluxDB keeps one point per series and time: equal stamps would overwrite."""
    store, pipeline = make(tmp_path)
    t_s = int(time.time())
    same_second = [encode_frame(4, s, {("temperature_c", "main"): 20.0 + s},
                                node_time_s=t_s) for s in range(3)]
    older = encode_frame(4, 9, {("temperature_c", "main"): 19.0}, node_time_s=t_s - 100)
    no_clock = [encode_frame(5, s, {("temperature_c", "main"): 21.0 + s}) for s in range(3)]
    now = time.time_ns()
    pipeline.feed("serial", b"".join(same_second) + older + b"".join(no_clock),
                  received_ns=now)
    pipeline.commit()
    t = t_s * 10**9
    assert store.execute("SELECT time_ns FROM packet WHERE node='n4' ORDER BY seq") == [
        (t,), (t + 1,), (t + 2,), (t - 100 * 10**9,)]  # a late older one keeps its time
    assert store.execute("SELECT time_ns FROM packet WHERE node='n5' ORDER BY seq") == [
        (now,), (now + 1,), (now + 2,)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 40) | st.integers(0, 10**6)
                          | st.integers(0, 5 * 10**9)),
                max_size=300))
@example([(False, 1000)] + [(True, i) for i in range(70)] + [(False, 5)])  # max leaves
@example([(True, 5 * 10**9), (False, 10**9), (False, 10**9), (True, 10**9 + 1)])  # far behind
def test_distinct_times_match_a_plain_window_of_the_last_64(
    arrivals: list[tuple[bool, int]],
) -> None:
    """The kept maximum and tie set give the times that a plain 64-entry window, scanned
    on every record, gives: node times move only on a tie, others go past the newest when
    they are less than a second behind it, and move only on a tie when further behind."""
    pipeline = Pipeline.__new__(Pipeline)
    pipeline._recent_times = {}
    window: deque[int] = deque(maxlen=RECENT_TIMES)
    for from_node, t in arrivals:
        expected = t
        if not from_node and window and max(window) - PAST_NEWEST_NS < t <= max(window):
            expected = max(window) + 1
        else:
            while expected in window:
                expected += 1
        window.append(expected)
        rec = Record(time_ns=t, received_ns=t, site="s", plot="p", node="n1", seq=None,
                     digest=b"", source="t", format="t",
                     time_source="node" if from_node else "gateway", readings={})
        pipeline._distinct_time(rec)
        assert rec.time_ns == expected


def test_commits_say_whether_more_input_is_waiting(tmp_path: Path) -> None:
    """A batch committed because it was full says more is coming (sinks keep filling
    their own batches); one committed because its time ran out, or at the end, says the
    input went quiet (sinks write at once: gateway/sinks/handoff.py)."""
    store, pipeline = make(tmp_path, batch_max=5, batch_interval_ms=1000)
    seen: list[tuple[int, bool]] = []
    pipeline.commit_listeners.append(
        lambda result, records: seen.append((len(records), result.more_coming)))
    inbox: queue.Queue[SourceItem] = queue.Queue()
    stop = threading.Event()
    worker = threading.Thread(target=pipeline.run, args=(inbox, stop))

    def frames(first: int, n: int) -> None:
        for s in range(first, first + n):
            inbox.put(RawChunk("serial", encode_frame(4, s, {("temperature_c", "main"): 20.0}),
                               time.time_ns(), time.monotonic_ns()))

    frames(0, 12)  # queued before the worker starts: two full batches, then two waiting
    worker.start()
    deadline = time.monotonic() + 10
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    frames(12, 1)
    stop.set()
    worker.join(10)
    assert [n for n, _ in seen if n] == [5, 5, 2, 1]
    assert [more for n, more in seen if n] == [True, True, False, False]
    assert store.count("packet") == 13


LONE_SURROGATE_KEY = b'{"node":"n1","seq":1,"readings":{"temperature_c@\\ud800":20.0}}'


def test_a_lone_surrogate_in_json_is_quarantined_and_ingest_goes_on(tmp_path: Path) -> None:
    """JSON may spell a lone surrogate (``\\ud800``), which no UTF-8 text can hold: it once
    crashed the worker (the digest's encode) or wedged every later commit (the quarantine
    insert). Now refused as ``schema``; ingest goes on and the evidence is kept."""
    store, pipeline = make(tmp_path)
    pipeline.add_stream("lines", "jsonl")
    inbox: queue.Queue[SourceItem] = queue.Queue()
    stop = threading.Event()
    lines = [LONE_SURROGATE_KEY, b'{"node":"n1","seq":2,"readings":{"battery_v@\\udfff":3.1,'
             b'"battery_v":3.2}}',
             b'{"node":"n2","seq":1,"readings":{"temperature_c@caf\\u00e9":20.0}}']
    for i, line in enumerate([*lines, b'{"node":"n3","seq":1,"readings":{"humidity_pct":50}}']):
        inbox.put(RawChunk("lines", line + b"\n", time.time_ns() + i, time.monotonic_ns()))
    worker = threading.Thread(target=pipeline.run, args=(inbox, stop))
    worker.start()
    stop.set()
    worker.join(10)
    assert not worker.is_alive()
    assert store.count("packet") == 2  # n2 (a valid escape: é) and n3
    reasons = [r for (r,) in store._db.execute("SELECT reason FROM quarantine")]
    assert reasons == ["schema", "schema"]
    assert store.counters()["rejected.schema"] == 2


def test_an_input_a_decoder_fails_on_costs_that_input_not_the_worker(tmp_path: Path) -> None:
    """A bug tripped by one message of a batch: that message is quarantined as
    ``internal_error``, the others of its batch are stored, the batch is acknowledged once
    (after the commit), and what the failed message had added is taken back."""
    store, pipeline = make(tmp_path)
    good = {b"a": ("n1", 1), b"b": ("n2", 1)}

    def decode(topic: str, payload: bytes) -> list[Packet | Rejection]:
        if payload == b"boom":
            raise ValueError("a decoder bug")
        node, seq = good[payload]
        return [Packet(node, seq, {("temperature_c", "main"): 20.0}, "native", payload)]

    pipeline.add_message_source("mqtt", decode)
    acks: list[int] = []
    batch = MessageBatch("mqtt", [("t/a", b"a"), ("t/boom", b"boom"), ("t/b", b"b")],
                         time.time_ns(), time.monotonic_ns(), lambda: acks.append(1))
    pipeline.take_guarded(batch)
    assert acks == []  # not before the commit
    pipeline.commit()
    assert acks == [1]
    assert store.count("packet") == 2
    (row,) = store._db.execute("SELECT reason, detail, raw, topic FROM quarantine").fetchall()
    assert row == ("internal_error", "ValueError: a decoder bug", b"boom", "t/boom")
    counters = store.counters()
    assert counters["received.packets"] == 2 and counters["rejected.internal_error"] == 1


def test_rejections_by_validation_keep_the_mqtt_topic(tmp_path: Path) -> None:
    """An out-of-range value is refused by validation, after decoding: its quarantine row
    still names the topic it came on, as a decoder's own refusal does."""
    from gateway.sources.mqtt_formats import message_decoder

    store, pipeline = make(tmp_path)
    pipeline.add_message_source("mqtt", message_decoder("native", default_site="farm"))
    hot = b'{"node":"n1","seq":1,"readings":{"temperature_c":20.5,"humidity_pct":140}}'
    cold = b'{"node":"n2","seq":1,"readings":{"humidity_pct":-5}}'
    pipeline.take_guarded(MessageBatch(
        "mqtt", [("satoyama/farm/n1/up", hot), ("satoyama/farm/n2/up", cold),
                 ("satoyama/farm/n3/up", b"{trunc")], time.time_ns(), time.monotonic_ns()))
    pipeline.commit()
    rows = store._db.execute("SELECT reason, node, topic FROM quarantine ORDER BY id").fetchall()
    assert sorted(rows, key=str) == sorted([
        ("out_of_range", "n1", "satoyama/farm/n1/up"),
        ("out_of_range", "n2", "satoyama/farm/n2/up"),  # its one reading: nothing stored
        ("bad_json", None, "satoyama/farm/n3/up"),
    ], key=str)
    assert store.count("packet") == 1  # n1's temperature


def test_rejections_with_unstorable_text_are_kept(tmp_path: Path) -> None:
    """A rejection's detail or node with a lone surrogate is stored with it escaped."""
    store = Store(tmp_path / "s.db")
    rej = Rejection("bad_text", "sensor \ud800 is odd", b"raw", "native", "n\udfff")
    store.write_batch([], [QuarantineEntry(rej, "mqtt", 1)])
    row = store._db.execute("SELECT detail, node FROM quarantine").fetchone()
    assert row == ("sensor \\ud800 is odd", "n\\udfff")


def test_a_receive_time_far_behind_a_node_time_that_was_ahead_keeps_its_time(
        tmp_path: Path) -> None:
    """A node clock drifting ahead: +290 s is accepted, +310 s is over the skew limit and
    takes the receive time (skew_policy receive_time). That receive time must stay the
    receive time; it was once moved past the node's last (wrong) time, 290 s ahead."""
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline(store, Policy(default_site="farm", max_clock_skew_s=300),
                        clock=ClockMonitor(recheck_s=0))
    now = time.time_ns() // 10**9 * 10**9
    pipeline.handle("serial", [Packet("n1", 1, {("temperature_c", "main"): 20.0}, "native",
                                      b"1", now + 290 * 10**9)], received_ns=now)
    for k in range(1, 4):
        received = now + k * 60 * 10**9
        pipeline.handle("serial", [Packet("n1", 1 + k, {("temperature_c", "main"): 20.0},
                                          "native", b"k", received + 310 * 10**9)],
                        received_ns=received)
    pipeline.commit()
    rows = store.execute("SELECT time_ns - received_ns, time_source FROM packet ORDER BY seq")
    assert rows == [(290 * 10**9, "node"), (0, "gateway"), (0, "gateway"), (0, "gateway")]
