"""`satoyama replay --format ecowitt`: one upload body per line into a real SQLite store.

The GW1100B body is ecowitt2mqtt's fixture (MIT, notice in
tests/firmware_bridge/cases/ecowitt/NOTICE.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from helpers import query_db

GW1100B = (Path(__file__).resolve().parents[1] / "firmware_bridge" / "cases" / "ecowitt"
           / "gw1100b.form.txt").read_bytes().strip()


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
