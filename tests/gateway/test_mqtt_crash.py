"""A gateway killed with SIGKILL while MQTT uplinks stream in loses none and stores none twice.

The gateway runs as a real process (`satoyama run`) subscribed to a real Mosquitto; a paho
publisher keeps streaming while it is dead (the broker queues for its persistent session).
Messages the killed process had committed but not yet acknowledged come back from the
broker and are recognised as duplicates; those it had received but not committed are
stored by the next process.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from helpers import counter, query_db, start_gateway, wait_for
from servers.mosquitto import Mosquitto
from servers.mqtt_publisher import Publisher, native_uplink, publish_uplinks


def test_sigkill_mid_mqtt_stream_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, write_config
) -> None:
    n = 8000
    broker = Mosquitto(tmp_path / "broker").start()
    config = write_config(sources={"mqtt": {"url": broker.url}}, gateway_id="gw-crash")
    db = tmp_path / "data" / "satoyama.db"
    log = tmp_path / "gateway.log"
    proc = start_gateway(config, log)
    try:
        wait_for(lambda: counter(db, "source.connected") >= 1, 20, "gateway subscribed")
        with Publisher(broker.url) as pub:
            streamer = threading.Thread(target=publish_uplinks, args=(pub, 0, n))
            streamer.start()
            wait_for(lambda: counter(db, "stored") >= 2000, 30, "some messages stored")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            stored_at_kill = counter(db, "stored")

            proc = start_gateway(config, log)
            streamer.join(60)
            pub.finish(60)
        wait_for(lambda: counter(db, "stored") >= n, 30, "everything stored")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.stop()

    rows = query_db(db, "SELECT node, seq FROM packet")
    assert len(rows) == len(set(rows)) == n, "lost or stored twice"
    assert set(rows) == {native_uplink(i)[0] for i in range(n)}
    assert stored_at_kill < n, "the kill came too late to test anything"
    assert counter(db, "stored") == n
    assert query_db(db, "PRAGMA integrity_check") == [("ok",)]
    assert "Traceback" not in log.read_text()
