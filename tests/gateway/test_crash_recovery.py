"""A gateway killed with SIGKILL mid-stream loses nothing it had stored and stores nothing twice.

The gateway runs as a real process (`satoyama run`) reading a real pty; the test plays the
radio receiver. After the kill, the receiver re-sends its last frames (as nodes retransmit
unacknowledged uplinks); they must be stored once: the ones the killed process had
committed are recognised as duplicates, the ones it had read but not committed are stored.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from helpers import counter, query_db, start_gateway, wait_for

from firmware_bridge.frame import encode_frame
from gateway.sources.pty_link import PtyLink

NODES = 5


def frame(i: int) -> tuple[tuple[str, int], bytes]:
    node, seq = i % NODES + 1, i // NODES
    data = encode_frame(node, seq, {("soil_moisture_pct", "soil_10cm"): 20 + (i % 300) / 10,
                                    ("temperature_c", "main"): 15 + (i % 100) / 10},
                        battery_v=3.6)
    return (f"n{node}", seq), data


class Radio:
    """Writes frames to the pty at a steady pace from its own thread."""

    def __init__(self, link: PtyLink, start: int) -> None:
        self.link, self.next, self.sent = link, start, []  # type: list
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            key, data = frame(self.next)
            self.link.write(data, timeout=1.0)
            self.sent.append(key)
            self.next += 1
            if self.next % 20 == 0:
                time.sleep(0.01)  # ~2,000 frames/s

    def start(self) -> Radio:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_sigkill_mid_stream_loses_nothing_stored_and_stores_nothing_twice(
    tmp_path: Path, write_config
) -> None:
    link = PtyLink(tmp_path / "ttyRADIO")
    config = write_config(str(link.path))
    db = tmp_path / "data" / "satoyama.db"
    log = tmp_path / "gateway.log"

    proc = start_gateway(config, log)
    try:
        wait_for(lambda: counter(db, "source.connected") >= 1, 20, "gateway port open")
        radio = Radio(link, 0).start()
        wait_for(lambda: counter(db, "stored") >= 2000, 30, "some frames stored")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        radio.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
    before_kill = set(query_db(db, "SELECT node, seq FROM packet"))
    assert counter(db, "stored") == len(before_kill)  # counters commit with the data
    sent_before = radio.sent

    proc = start_gateway(config, log)
    try:
        wait_for(lambda: counter(db, "source.connected") >= 2, 20, "gateway port reopened")
        # Retransmit the last 1,000 frames sent before the kill, then carry on.
        resend_from = max(0, len(sent_before) - 1000)
        for i in range(resend_from, len(sent_before)):
            link.write(frame(i)[1], timeout=5)
        radio = Radio(link, len(sent_before)).start()
        time.sleep(1.0)
        radio.stop()
        expected = before_kill | set(sent_before[resend_from:]) | set(radio.sent)
        wait_for(lambda: counter(db, "stored") >= len(expected), 30, "all frames stored")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        link.close()

    after = query_db(db, "SELECT node, seq FROM packet")
    assert len(after) == len(set(after)), "a packet was stored twice"
    assert before_kill <= set(after), "a packet stored before the kill was lost"
    assert set(after) == expected
    resent_already_stored = len(before_kill & set(sent_before[resend_from:]))
    assert counter(db, "duplicates") == resent_already_stored
    assert resent_already_stored > 0
    assert query_db(db, "PRAGMA integrity_check") == [("ok",)]
