"""The `satoyama` command as a user runs it: real processes, real files."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from helpers import satoyama_cli as satoyama

from gateway.catalogue import READING_FIELDS


def test_demo_then_export_shows_readings_from_several_nodes(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    demo = satoyama("demo", "--duration", "6", "--data-dir", str(data), "--nodes", "5",
                    "--rate", "4", "--summary-every", "2")
    assert "stored" in demo.stdout
    assert "n5" in demo.stdout
    # the rules' scheduler runs a job every second: none of its INFO lines on the console
    assert "apscheduler" not in demo.stdout + demo.stderr
    export = satoyama("export", "--data-dir", str(data), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(export.stdout)))
    assert {r["node"] for r in rows} == {"n1", "n2", "n3", "n4", "n5"}
    header = export.stdout.splitlines()[0].split(",")
    assert header[:5] == ["time", "site", "plot", "node", "sensor"]
    assert set(READING_FIELDS) <= set(header)
    assert {"seq", "time_source", "source", "format", "received"} <= set(header)
    soil = [r for r in rows if r["sensor"] == "soil_10cm"]
    moisture = [float(r["soil_moisture_pct"]) for r in soil if r["soil_moisture_pct"]]
    assert moisture and all(0 <= m <= 100 for m in moisture)
    assert all(r["time"].endswith("Z") for r in rows)
    status = satoyama("status", "--data-dir", str(data), "--json")
    info = json.loads(status.stdout)
    assert info["counters"]["stored"] == info["store"]["packets"] > 40


def test_export_filters_by_node_and_time(tmp_path: Path) -> None:
    lines = [json.dumps({"node": f"n{n}", "seq": s, "ts": f"2026-07-01T0{s}:00:00Z",
                         "readings": {"temperature_c": 20 + s, "soil_moisture_pct@10cm": 30}})
             for n in (1, 2) for s in range(5)]
    src = tmp_path / "uplinks.jsonl"
    src.write_text("\n".join(lines) + "\n")
    satoyama("replay", "--format", "native", str(src), "--data-dir", str(tmp_path))
    out = satoyama("export", "--data-dir", str(tmp_path), "--node", "n2",
                   "--from", "2026-07-01T01:00:00Z", "--to", "2026-07-01T03:00:00Z").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["node"], r["sensor"], r["time"]) for r in rows] == [
        ("n2", "main", "2026-07-01T01:00:00.000000000Z"),
        ("n2", "soil_10cm", "2026-07-01T01:00:00.000000000Z"),
        ("n2", "main", "2026-07-01T02:00:00.000000000Z"),
        ("n2", "soil_10cm", "2026-07-01T02:00:00.000000000Z"),
    ]
    assert rows[0]["temperature_c"] == "21.0"
    assert rows[0]["time_source"] == "node"


@pytest.mark.parametrize("fmt", ["native", "frame-hex", "rylr"])
def test_replay_counts_stored_and_rejected_and_is_idempotent(tmp_path: Path, fmt: str) -> None:
    wire = {"native": "jsonl"}.get(fmt, fmt)
    sim = satoyama("simulate", "--stdout", "--format", wire, "--nodes", "4", "--count", "60",
                   "--faults", "--seed", "7")
    src = tmp_path / f"capture.{fmt}"
    src.write_text(sim.stdout)
    first = json.loads(satoyama("replay", "--format", fmt, str(src), "--data-dir",
                                str(tmp_path), "--json").stdout)
    assert first["stored"] > 200
    rejected = {k: v for k, v in first.items() if k.startswith("rejected.")}
    assert rejected, "the fault plan should have produced rejects"
    second = json.loads(satoyama("replay", "--format", fmt, str(src), "--data-dir",
                                 str(tmp_path), "--json").stdout)
    assert second.get("stored", 0) == 0
    assert second["duplicates"] == first["stored"] + first.get("duplicates", 0)
    text = satoyama("replay", "--format", fmt, str(src), "--data-dir", str(tmp_path)).stdout
    assert text.startswith("packets ")
    assert "stored 0" in text


def test_check_config_exits_1_with_located_problems(tmp_path: Path) -> None:
    cfg = tmp_path / "farm.yaml"
    cfg.write_text("site: hill\nsinkz: {}\nsources:\n  serial:\n    baudrate: fast\n"
                   "rules: [missing.yaml]\n")
    proc = satoyama("check-config", "-c", str(cfg), check=False)
    assert proc.returncode == 1
    err = proc.stderr
    assert f"{cfg}:2: sinkz: unknown key" in err and "did you mean 'sinks'" in err
    assert f"{cfg}:4: sources.serial.port: required key 'port' is missing" in err
    assert f"{cfg}:5: sources.serial.baudrate:" in err
    assert f"{cfg}:6: rules[0]: rule file" in err and "not found" in err
    ok = satoyama("check-config", "-c", "examples/farm-pi.yaml")
    assert "OK" in ok.stdout


def test_check_config_warnings_are_printed_and_exit_0(tmp_path: Path) -> None:
    """A usable config with a likely mistake (a crop no loaded rule is for) is OK, and says
    so; `run` logs the same warning when it starts."""
    cfg = tmp_path / "farm.yaml"
    cfg.write_text(f"site: hill\ndata_dir: {tmp_path / 'data'}\n"
                   "rules: [preset:common, preset:tomato]\n"
                   "devices:\n  n1: {plot: p1, crop: tomatoe}\n")
    proc = satoyama("check-config", "-c", str(cfg))
    assert proc.returncode == 0
    assert (f"{cfg}:5: warning: devices.n1.crop: 'tomatoe' is not a crop" in proc.stderr
            and "did you mean 'tomato'?" in proc.stderr)
    assert "1 warning(s)" in proc.stderr and "OK (1 warning(s) above)" in proc.stdout
    run = satoyama("run", "-c", str(cfg), "--duration", "0.5")
    assert "warning: devices.n1.crop: 'tomatoe'" in run.stderr


def test_run_with_bad_config_exits_1_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "farm.yaml"
    cfg.write_text("site: hill\nsources: {serial: {port: /dev/null, baudrate: -3}}\n")
    proc = satoyama("run", "-c", str(cfg), check=False)
    assert proc.returncode == 1
    assert "sources.serial.baudrate" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_status_without_a_store_says_what_to_do(tmp_path: Path) -> None:
    proc = satoyama("status", "--data-dir", str(tmp_path / "nothing"), check=False)
    assert proc.returncode == 1
    assert "no store" in proc.stderr


def test_export_with_a_bad_date_says_which_option_and_how_to_write_it(tmp_path: Path) -> None:
    proc = satoyama("export", "--data-dir", str(tmp_path), "--from", "2026-13-01",
                    check=False)
    assert proc.returncode == 2
    assert "--from '2026-13-01' is not an ISO 8601 date" in proc.stderr
    assert "2026-07-01T06:00+09:00" in proc.stderr and "Traceback" not in proc.stderr


def test_status_text_shows_times_in_the_site_zone_and_every_counted_rejection(
        tmp_path: Path) -> None:
    """`timezone:` is the display zone; rejections and ignored messages come from the
    counters (the quarantine's rows go with retention; some rejections keep none)."""
    config = tmp_path / "farm.yaml"
    config.write_text(f"site: hill\ntimezone: Europe/Berlin\ndata_dir: {tmp_path / 'data'}\n")
    src = tmp_path / "uplinks.jsonl"
    src.write_text(json.dumps({"node": "n1", "seq": 1, "ts": "2026-07-01T04:10:00Z",
                               "readings": {"temperature_c": 24.1}}) + "\nnot json\n")
    satoyama("replay", "--format", "native", str(src), "-c", str(config))
    from gateway.store import Store

    store = Store(tmp_path / "data" / "satoyama.db")
    store.add_counters({"ignored.not_uplink": 7})
    store.close()
    out = satoyama("status", "-c", str(config)).stdout
    assert re.search(r" CES?T \(", out) and "JST" not in out  # received now: CET or CEST
    assert "rejected   bad_json 1" in out
    assert "ignored    not_uplink 7" in out
    assert "quarantine bad_json 1" in out
