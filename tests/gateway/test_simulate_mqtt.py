"""`satoyama simulate --mqtt`: the command as a user runs it, a real Mosquitto, a real gateway.

The gateway runs in this process (``Gateway``) subscribed to ``satoyama/+/+/up``; the
simulator is a ``satoyama simulate`` process. Its tally (``--json``) says what it injected
and what a gateway should count, and the gateway's counts must match it exactly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for
from servers.mosquitto import Mosquitto, make_certs

from gateway.app import Gateway
from gateway.config import Settings
from gateway.store.sqlite import Store


def simulate(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "simulate", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.kill()


def start_gateway(gateways: list[Gateway], tmp_path: Path, **mqtt: Any) -> Gateway:
    gw = Gateway(Settings(site="fallback", data_dir=tmp_path / "data", gateway_id="gw-sim",
                          sources={"mqtt": mqtt}, pipeline={"batch_interval_ms": 50}))
    gateways.append(gw)
    gw.start()
    wait_for(lambda: gw.mqtt is not None and gw.mqtt.connected, 10, "gateway connected")
    return gw


def counts(gw: Gateway) -> dict[str, int]:
    """The gateway's totals that the simulator's tally predicts."""
    totals = dict(gw.pipeline.totals)
    return {k: v for k, v in totals.items() if v and (
        k in ("stored", "duplicates") or k.startswith("rejected.")
        or k == "flagged.clock_skew_corrected")}


def test_three_nodes_twenty_each_are_sixty_packets_stored(
    tmp_path: Path, broker: Mosquitto, gateways: list[Gateway]
) -> None:
    gw = start_gateway(gateways, tmp_path, url=broker.url)
    proc = simulate("--mqtt", broker.url, "--nodes", "3", "--count", "20", "--rate", "50",
                    "--site", "hill", "--json")
    assert proc.returncode == 0, proc.stderr
    tally = json.loads(proc.stdout)
    assert tally == {"messages": 60, "acknowledged": 60, "unacknowledged": 0, "faults": {},
                     "expected": {"stored": 60}}
    assert "60 messages from 3 nodes, 60 acknowledged by the broker" in proc.stderr
    wait_for(lambda: gw.store.count("packet") >= 60, 15, "60 packets stored")
    gw.stop()
    rows = Store(gw.store.path, readonly=True).execute(
        "SELECT site, node, count(*), min(seq), max(seq), count(DISTINCT seq) FROM packet "
        "GROUP BY site, node ORDER BY node")
    assert rows == [("hill", f"n{i}", 20, 0, 19, 20) for i in (1, 2, 3)]
    assert counts(gw) == {"stored": 60}


def test_faults_arrive_as_the_simulator_says_it_injected_them(
    tmp_path: Path, broker: Mosquitto, gateways: list[Gateway]
) -> None:
    gw = start_gateway(gateways, tmp_path, url=broker.url)
    proc = simulate("--mqtt", broker.url, "--nodes", "4", "--count", "60", "--rate", "100",
                    "--faults", "--seed", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    tally = json.loads(proc.stdout)
    assert tally["unacknowledged"] == 0 and tally["acknowledged"] == tally["messages"]
    # every fault kind happened, so every mapping below was exercised
    assert set(tally["faults"]) == {"garbage", "bad_crc", "truncated", "duplicate", "seq_gap",
                                    "clock_skew", "out_of_range", "counter_reset"}
    expected = tally["expected"]
    f = tally["faults"]
    # the MQTT mapping of the byte-level faults (docs/mqtt.md, "Try it")
    assert expected["rejected.bad_json"] == f["garbage"] + f["truncated"]
    assert expected["rejected.schema"] == f["bad_crc"]
    assert expected["duplicates"] == f["duplicate"]
    assert expected["rejected.out_of_range"] == f["out_of_range"]
    assert expected["flagged.clock_skew_corrected"] == f["clock_skew"]
    assert expected["stored"] == 240 - f["bad_crc"] - f["truncated"]
    assert tally["messages"] == 240 + f["garbage"] + f["duplicate"]

    wait_for(lambda: counts(gw) == expected, 20,
             f"gateway counts {expected} (has {counts(gw)})")
    gw.stop()
    assert counts(gw) == expected
    store = Store(gw.store.path, readonly=True)
    assert store.count("packet") == expected["stored"]
    reasons = dict(store.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason"))
    assert reasons == {k.removeprefix("rejected."): v for k, v in expected.items()
                       if k.startswith("rejected.")}


def test_tls_and_password_file_like_the_gateway_source(
    tmp_path: Path, gateways: list[Gateway]
) -> None:
    certs = make_certs(tmp_path / "pki")
    broker = Mosquitto(tmp_path / "broker", users={"field": "s3cret", "gw": "gwpass"},
                       certs=certs).start()
    try:
        gw = start_gateway(gateways, tmp_path, url=broker.url, username="gw",
                           password="gwpass", tls={"ca_file": str(certs.ca)})
        secret = tmp_path / "mqtt-password"
        secret.write_text("s3cret\n")
        ok = simulate("--mqtt", broker.url, "--nodes", "2", "--count", "5", "--rate", "50",
                      "--username", "field", "--password-file", str(secret),
                      "--ca-file", str(certs.ca), "--json")
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["acknowledged"] == 10
        wait_for(lambda: gw.store.count("packet") >= 10, 15, "10 packets stored")

        secret.write_text("wrong\n")
        refused = simulate("--mqtt", broker.url, "--count", "1", "--username", "field",
                           "--password-file", str(secret), "--ca-file", str(certs.ca))
        assert refused.returncode == 1
        assert "refused the connection" in refused.stderr
        assert "Traceback" not in refused.stderr

        untrusted = simulate("--mqtt", broker.url, "--count", "1", "--username", "field",
                             "--password-file", str(secret), "--ca-file", str(certs.other_ca))
        assert untrusted.returncode == 1 and "not trusted" in untrusted.stderr
        gw.stop()
        assert Store(gw.store.path, readonly=True).count("packet") == 10
    finally:
        broker.kill()


def test_bad_url_and_unreachable_broker_say_so(tmp_path: Path) -> None:
    bad = simulate("--mqtt", "http://localhost:1883", "--count", "1")
    assert bad.returncode == 1 and "not an mqtt:// or mqtts:// URL" in bad.stderr
    down = simulate("--mqtt", "mqtt://127.0.0.1:1", "--count", "1")
    assert down.returncode == 1 and "refused (is the broker running there?)" in down.stderr


def test_messages_the_broker_never_acknowledged_are_counted_and_fail_the_command(
    broker: Mosquitto,
) -> None:
    # A broker that stops answering (SIGSTOP) after the first round: the publishes go out
    # but no PUBACK comes back. The command must not claim success.
    assert broker.proc is not None
    sim = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "simulate", "--mqtt", broker.url, "--nodes", "3",
         "--count", "4", "--rate", "2", "--ack-timeout", "1", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sim.stderr is not None
        first = sim.stderr.readline()  # printed once connected, before the first round
        assert "publishing to" in first
        time.sleep(0.6)  # rounds 1 and 2 (at 0 and 0.5 s) out and acknowledged
        broker.proc.send_signal(signal.SIGSTOP)
        out, err = sim.communicate(timeout=30)
    finally:
        broker.proc.send_signal(signal.SIGCONT)
        if sim.poll() is None:
            sim.kill()
    assert sim.returncode == 1, err
    tally = json.loads(out)
    assert tally["messages"] == 12
    assert 0 < tally["unacknowledged"] < 12
    assert tally["acknowledged"] + tally["unacknowledged"] == 12
    assert f"{tally['unacknowledged']} messages were not acknowledged within 1 s" in err
