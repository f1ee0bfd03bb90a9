"""`satoyama replay --format ecowitt`: one upload body per line into a real SQLite store.

The GW1100B body is ecowitt2mqtt's fixture (MIT, notice in
tests/firmware_bridge/cases/ecowitt/NOTICE.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from helpers import query_db

from gateway.app import Gateway
from gateway.config import load_settings

GW1100B = (Path(__file__).resolve().parents[1] / "firmware_bridge" / "cases" / "ecowitt"
           / "gw1100b.form.txt").read_bytes().strip()


def padded(body: bytes, size: int) -> bytes:
    """``body`` with an unknown field appended, ``size`` bytes in all."""
    return body + b"&pad=" + b"0" * (size - len(body) - 5)


def post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code


def replay(config: Path, src: Path) -> dict[str, int]:
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "replay", "--format",
                           "ecowitt", str(src), "-c", str(config), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    counts: dict[str, int] = json.loads(proc.stdout)
    return counts


def test_replay_ecowitt_bodies_with_registry_names(tmp_path: Path,
                                                   write_config: Callable[..., Path]) -> None:
    config = write_config(devices={"terrace-3": {"plot": "upper", "ids": [
        "ecowitt:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/soil2"]}})
    src = tmp_path / "uploads.txt"
    src.write_bytes(b"\n".join([
        GW1100B,
        b"PASSKEY=AB12&dateutc=2026-11-23+05%3A00%3A00&soilmoisture1=31&soilbatt1=1.4",
        b"ID=station&PASSWORD=secret&tempf=50",  # Wunderground protocol: refused
        b"",
    ]))
    first = replay(config, src)
    assert {k: v for k, v in first.items() if k in ("stored", "duplicates")
            or k.startswith("rejected.")} == {"stored": 12 + 1, "rejected.schema": 1}
    again = replay(config, src)
    assert again.get("stored", 0) == 0 and again["duplicates"] == 13

    db = tmp_path / "data" / "satoyama.db"
    rows = query_db(db, "SELECT r.node, r.plot, r.soil_moisture_pct, p.time_ns, p.time_source "
                    "FROM reading r JOIN packet p ON p.id = r.packet_id "
                    "WHERE r.soil_moisture_pct IS NOT NULL ORDER BY r.node")
    assert rows == [
        ("ecowitt-ab12-soil1", "unassigned", 31.0, 1795410000 * 10**9, "node"),
        ("ecowitt-xxxxxxxxxxxx-soil1", "unassigned", 40.0, 1629760421 * 10**9, "node"),
        ("terrace-3", "upper", 56.0, 1629760421 * 10**9, "node"),
    ]
    assert query_db(db, "SELECT battery_v FROM device WHERE node = 'terrace-3'") == [(1.8,)]


def test_replay_decides_each_body_as_the_http_source_does(
        tmp_path: Path, gateways: list[Gateway]) -> None:
    # One decision for both: the HTTP source's allow-list and body limit (16384 by default,
    # not a line limit of 8192), whichever way a body comes in.
    def config(name: str, **http: Any) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({
            "site": "testfarm", "data_dir": str(tmp_path / name),
            "pipeline": {"batch_interval_ms": 50},
            "sources": {"http": {"host": "127.0.0.1", "port": 0, "stations": ["AB12"], **http}},
        }))
        return path

    bodies = {
        b"PASSKEY=AB12&soilmoisture1=31": 200,
        padded(b"PASSKEY=ab12&soilmoisture2=32", 12000): 200,  # over 8192 bytes
        padded(b"PASSKEY=AB12&soilmoisture3=33", 16384): 200,  # exactly the limit
        padded(b"PASSKEY=AB12&soilmoisture4=34", 16385): 413,
        b"PASSKEY=OTHER&soilmoisture5=35": 403,  # not on the allow-list
    }
    gw = Gateway(load_settings(config("live")))
    gateways.append(gw)
    gw.start()
    assert gw.http is not None and gw.http.address is not None
    url = f"http://127.0.0.1:{gw.http.address[1]}/data/report/"
    assert {body: post(url, body) for body in bodies} == bodies
    gw.stop()

    src = tmp_path / "uploads.txt"
    src.write_bytes(b"\r\n".join(bodies) + b"\r\n")  # line endings do not count
    counts = replay(config("replayed"), src)
    assert {k: v for k, v in counts.items() if k == "stored" or k.startswith("rejected.")} \
        == {"stored": 3, "rejected.bad_form": 1, "rejected.unknown_station": 1}

    def soil(name: str) -> list[tuple[str, float]]:
        return query_db(tmp_path / name / "satoyama.db", "SELECT node, soil_moisture_pct "
                        "FROM reading WHERE soil_moisture_pct IS NOT NULL ORDER BY node")
    assert soil("replayed") == soil("live") == [
        ("ecowitt-ab12-soil1", 31.0), ("ecowitt-ab12-soil2", 32.0),
        ("ecowitt-ab12-soil3", 33.0)]
    # A configured limit holds for replay as for the source: only the short body fits.
    counts = replay(config("smaller", max_body_bytes=10000), src)
    assert counts["stored"] == 1 and counts["rejected.bad_form"] == 3
