"""`satoyama export`: CSV and Parquet with the same rows, and the per-site sharing of
DESIGN.md §5 (share, pseudonym, withhold) as a user runs it: real processes, a real store
filled by `satoyama replay`, a real Parquet file read back with pyarrow.

Four farms' nodes, two uplinks each (two rows each: ``main`` and ``soil_10cm``):
``kamiyama`` (the gateway's own site), ``tanaka-farm`` (pseudonym), ``yamada-farm``
(withhold) and ``sato-farm`` (not listed: not opted in).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from helpers import satoyama_cli as satoyama

from gateway.catalogue import BY_NAME, READING_FIELDS
from gateway.export import iso_ns

KEY = "pZ7dJ0q3uYw1Rk8sX2vB9nLm"
OTHER_KEY = "Qm4tY8wE1rU5iO9pA3sD7fGh"
NODES = {  # node -> (site, plot)
    "n1": ("kamiyama", "upper-terrace"),
    "tanaka-n2": ("tanaka-farm", "tanaka-east"),
    "yamada-n3": ("yamada-farm", "p1"),
    "sato-n4": ("sato-farm", "sato-west"),
}
# HMAC-SHA256(KEY, "site\x1ftanaka-farm") etc., first 8 hex digits: pinned here so that a
# change of the scheme (which would break every earlier export's pseudonyms) fails a test.
TANAKA = {"site": "site-306efa9c", "plot": "plot-79f1fb66", "node": "node-653be9a7"}


def farm(tmp_path: Path, key: str = KEY, name: str = "farm") -> Path:
    """A config for the four farms and a store holding their readings."""
    (tmp_path / f"{name}-key").write_text(key + "\n")
    cfg = {
        "site": "kamiyama",
        "data_dir": str(tmp_path / "data"),
        "devices": {node: {"site": site, "plot": plot} for node, (site, plot) in NODES.items()},
        "export": {"sites": {"tanaka-farm": "pseudonym", "yamada-farm": "withhold"},
                   "pseudonym_key_file": f"{name}-key"},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    uplinks = tmp_path / "tanaka-2026-07.jsonl"  # a file name that names a farmer
    if not uplinks.exists():
        uplinks.write_text("".join(
            json.dumps({"node": node, "seq": s, "ts": f"2026-07-01T0{s}:00:00Z",
                        "readings": {"temperature_c": 20.5 + s, "soil_moisture_pct@10cm": 30.25},
                        "battery_v": 3.7}) + "\n"
            for s in (1, 2) for node in NODES))
        satoyama("replay", "--format", "native", str(uplinks), "-c", str(path))
    return path


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_shares_own_site_pseudonymises_and_withholds_the_rest(tmp_path: Path) -> None:
    cfg = farm(tmp_path)
    proc = satoyama("export", "-c", str(cfg))
    rows = csv_rows(proc.stdout)
    key_cols = [(r["time"], r["site"], r["plot"], r["node"], r["sensor"], r["temperature_c"],
                 r["soil_moisture_pct"], r["seq"], r["source"]) for r in rows]
    t = TANAKA
    assert key_cols == [
        ("2026-07-01T01:00:00.000000000Z", "kamiyama", "upper-terrace", "n1", "main",
         "21.5", "", "1", "replay:tanaka-2026-07.jsonl"),
        ("2026-07-01T01:00:00.000000000Z", "kamiyama", "upper-terrace", "n1", "soil_10cm",
         "", "30.25", "1", "replay:tanaka-2026-07.jsonl"),
        ("2026-07-01T01:00:00.000000000Z", t["site"], t["plot"], t["node"], "main",
         "21.5", "", "1", "replay"),
        ("2026-07-01T01:00:00.000000000Z", t["site"], t["plot"], t["node"], "soil_10cm",
         "", "30.25", "1", "replay"),
        ("2026-07-01T02:00:00.000000000Z", "kamiyama", "upper-terrace", "n1", "main",
         "22.5", "", "2", "replay:tanaka-2026-07.jsonl"),
        ("2026-07-01T02:00:00.000000000Z", "kamiyama", "upper-terrace", "n1", "soil_10cm",
         "", "30.25", "2", "replay:tanaka-2026-07.jsonl"),
        ("2026-07-01T02:00:00.000000000Z", t["site"], t["plot"], t["node"], "main",
         "22.5", "", "2", "replay"),
        ("2026-07-01T02:00:00.000000000Z", t["site"], t["plot"], t["node"], "soil_10cm",
         "", "30.25", "2", "replay"),
    ]
    assert "tanaka" not in proc.stdout.replace("replay:tanaka-2026-07.jsonl", "")
    assert proc.stderr.splitlines() == [
        "exported 8 rows",
        "export: withheld 8 rows of 2 site(s): farm data is exported only for sites opted "
        "in under export.sites in the config (share or pseudonym)",
        "export:   sato-farm: 4 rows, not opted in (not under export.sites; "
        "export.other_sites is withhold)",
        "export:   yamada-farm: 4 rows, export.sites says withhold",
        "export: pseudonymised 4 rows of 1 site(s) (site, plot and node names)",
    ]


def test_pseudonyms_are_stable_across_runs_and_change_with_the_key(tmp_path: Path) -> None:
    cfg = farm(tmp_path)
    first = satoyama("export", "-c", str(cfg), "--site", "tanaka-farm").stdout
    second = satoyama("export", "-c", str(cfg), "--site", "tanaka-farm").stdout
    assert first == second and len(csv_rows(first)) == 4
    assert {(r["site"], r["plot"], r["node"]) for r in csv_rows(first)} == {
        (TANAKA["site"], TANAKA["plot"], TANAKA["node"])}
    other = satoyama("export", "-c", str(farm(tmp_path, OTHER_KEY, "other")),
                     "--site", "tanaka-farm").stdout
    names = {(r["site"], r["plot"], r["node"]) for r in csv_rows(other)}
    (site, plot, node), = names
    assert re.fullmatch(r"site-[0-9a-f]{8}", site) and site != TANAKA["site"]
    assert plot != TANAKA["plot"] and node != TANAKA["node"]


def test_without_a_config_only_the_demo_site_is_shared(tmp_path: Path) -> None:
    farm(tmp_path)
    proc = satoyama("export", "--data-dir", str(tmp_path / "data"), "--site", "kamiyama")
    assert csv_rows(proc.stdout) == []  # --site filters; it does not opt a site in
    assert "kamiyama: 4 rows, not opted in" in proc.stderr


def test_parquet_has_the_csv_rows_with_types_and_units(tmp_path: Path) -> None:
    cfg = farm(tmp_path)
    out = tmp_path / "readings.parquet"
    proc = satoyama("export", "-c", str(cfg), "--format", "parquet", "-o", str(out))
    assert proc.stderr.startswith("exported 8 rows\nexport: withheld 8 rows of 2 site(s)")
    table = pq.read_table(out)
    from_csv = csv_rows(satoyama("export", "-c", str(cfg)).stdout)
    assert table.column_names == list(from_csv[0])
    schema = table.schema
    assert schema.field("time").type == pa.timestamp("ns", tz="UTC")
    assert schema.field("received").type == pa.timestamp("ns", tz="UTC")
    assert schema.field("seq").type == pa.int64()
    assert schema.field("site").type == pa.string()
    for q in READING_FIELDS:
        assert schema.field(q).type == pa.float64()
        assert schema.field(q).metadata == {b"unit": BY_NAME[q].unit.encode(),
                                            b"quantity": q.encode()}
    assert schema.field("soil_moisture_pct").metadata[b"unit"] == b"%"
    assert schema.field("temperature_c").metadata[b"unit"] == "°C".encode()

    # every value as the CSV writes it: the same rows, columns and numbers
    times = {"time", "received"}
    as_ns = table.set_column(0, "time", table.column("time").cast(pa.int64()))
    as_ns = as_ns.set_column(as_ns.column_names.index("received"), "received",
                             as_ns.column("received").cast(pa.int64()))

    def as_csv_text(name: str, value: Any) -> str:
        if value is None:
            return ""
        if name in times:
            return iso_ns(value)
        return repr(value) if isinstance(value, float) else str(value)

    assert [{k: as_csv_text(k, v) for k, v in r.items()} for r in as_ns.to_pylist()] == from_csv
    assert as_ns.column("time")[0].as_py() == 1782867600 * 10**9  # 2026-07-01T01:00:00Z
    assert len(set(table.column("site").to_pylist())) == 2


def test_empty_parquet_export_is_a_file_with_the_schema(tmp_path: Path) -> None:
    cfg = farm(tmp_path)
    out = tmp_path / "none.parquet"
    satoyama("export", "-c", str(cfg), "--format", "parquet", "-o", str(out),
             "--from", "2030-01-01")
    table = pq.read_table(out)
    assert table.num_rows == 0 and "soil_moisture_pct" in table.column_names


def test_parquet_without_pyarrow_says_how_to_install_it(tmp_path: Path) -> None:
    # pyarrow is installed in the test venv: hide it from this one process.
    code = ("import sys; sys.modules['pyarrow'] = None; from gateway.cli import main; "
            f"raise SystemExit(main(['export', '--data-dir', {str(tmp_path)!r}, "
            f"'--format', 'parquet', '-o', {str(tmp_path / 'x.parquet')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert ("--format parquet needs pyarrow, which is not installed: "
            "pip install 'satoyama[parquet]'") in proc.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_parquet_needs_an_output_file(tmp_path: Path) -> None:
    proc = satoyama("export", "--data-dir", str(tmp_path), "--format", "parquet", check=False)
    assert proc.returncode == 2 and "give -o FILE.parquet" in proc.stderr
