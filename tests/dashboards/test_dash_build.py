"""The committed dashboard JSON is exactly what the code builds, and is wired right:
stable uids, the provisioned datasource, units from the sensor catalogue."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.build import JSON_DIR, build_all, differences, write
from dashboards.common import DATASOURCE_UID, FOLDER_TITLE
from gateway.catalogue import BY_NAME
from gateway.cli import main

REPO = Path(__file__).resolve().parents[2]
EXPECTED_UIDS = {
    "farm-overview.json": "satoyama-farm-overview",
    "plot-detail.json": "satoyama-plot-detail",
    "fleet.json": "satoyama-fleet",
    "device-health.json": "satoyama-device-health",
    "data-quality.json": "satoyama-data-quality",
    "gateway.json": "satoyama-gateway",
}


def committed() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(JSON_DIR.glob("*.json"))}


def test_committed_json_is_what_the_code_builds() -> None:
    assert differences(JSON_DIR, build_all()) == []


def test_build_is_deterministic() -> None:
    assert build_all() == build_all()


def test_check_reports_a_changed_missing_or_stray_file(tmp_path: Path) -> None:
    built = build_all()
    write(tmp_path, built)
    assert main(["dashboards", "build", "--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "fleet.json").write_text("{}\n")
    (tmp_path / "gateway.json").unlink()
    (tmp_path / "old.json").write_text("{}\n")
    problems = differences(tmp_path, built)
    assert len(problems) == 3
    assert main(["dashboards", "build", "--check", "--out", str(tmp_path)]) == 1
    assert main(["dashboards", "build", "--out", str(tmp_path)]) == 0
    assert differences(tmp_path, built) == [f"{tmp_path / 'old.json'}: not built by any "
                                            "dashboard module"]


def test_every_dashboard_has_its_stable_uid() -> None:
    assert {name: d["uid"] for name, d in committed().items()} == EXPECTED_UIDS


def _datasources(node: Any) -> list[dict[str, Any]]:
    """Every `datasource` object anywhere in a dashboard."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append(value)
            else:
                found.extend(_datasources(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_datasources(item))
    return found


@pytest.mark.parametrize("name", sorted(EXPECTED_UIDS))
def test_every_panel_target_variable_and_annotation_uses_the_provisioned_datasource(
        name: str) -> None:
    dash = committed()[name]
    refs = _datasources(dash)
    n_targets = sum(len(p.get("targets", [])) for p in dash["panels"])
    n_query_vars = sum(v["type"] == "query" for v in dash["templating"]["list"])
    assert len(refs) >= len(dash["panels"]) + n_targets + n_query_vars
    assert all(r == {"type": "influxdb", "uid": DATASOURCE_UID} for r in refs), refs


def test_provisioning_gives_the_datasource_that_uid_and_the_folder_that_title() -> None:
    prov = REPO / "dashboards" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "influxdb.yaml").read_text())["datasources"]
    assert [d["uid"] for d in ds] == [DATASOURCE_UID]
    assert ds[0]["jsonData"]["version"] == "InfluxQL"
    provider = yaml.safe_load((prov / "dashboards" / "satoyama.yaml").read_text())
    assert provider["providers"][0]["folder"] == FOLDER_TITLE


def test_panel_ids_are_unique_and_numbered_in_order() -> None:
    for name, dash in committed().items():
        assert [p["id"] for p in dash["panels"]] == list(range(1, len(dash["panels"]) + 1)), name


def _quantities(query: str) -> set[str]:
    return {f for f in re.findall(r'\("(\w+)"\)', query) if f in BY_NAME}


def test_units_come_from_the_catalogue() -> None:
    """A panel plotting one catalogue quantity (or several sharing a unit) shows its unit."""
    checked = 0
    for name, dash in committed().items():
        for panel in dash["panels"]:
            quantities = set().union(*(_quantities(t["query"]) for t in panel["targets"]))
            units = {BY_NAME[q].grafana_unit for q in quantities}
            if len(units) != 1 or panel["type"] == "table":
                continue
            assert panel["fieldConfig"]["defaults"]["unit"] == units.pop(), (name, panel["title"])
            checked += 1
    assert checked >= 14


def test_table_columns_take_catalogue_units() -> None:
    for name, dash in committed().items():
        for panel in (p for p in dash["panels"] if p["type"] == "table"):
            for override in panel["fieldConfig"]["overrides"]:
                field = override["matcher"]["options"]
                props = {p["id"]: p["value"] for p in override["properties"]}
                if field in BY_NAME:
                    assert props["unit"] == BY_NAME[field].grafana_unit, (name, field)


def test_dashboards_are_read_only_in_grafana_and_in_tokyo_time() -> None:
    for dash in committed().values():
        assert dash["editable"] is False
        assert dash["timezone"] == "Asia/Tokyo"


def test_the_gateway_command_does_not_load_grafana_libraries() -> None:
    code = ("import sys, gateway.cli; gateway.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if 'grafana' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def _panel(dashboard: str, title: str) -> dict[str, Any]:
    return next(p for p in committed()[dashboard]["panels"] if p["title"] == title)


def _steps(config: dict[str, Any]) -> list[tuple[float | None, str]]:
    return [(s["value"], s["color"]) for s in config["thresholds"]["steps"]]


def test_threshold_lines_are_the_rule_presets_numbers() -> None:
    from rules.presets import thresholds

    crop, common = thresholds("tomato"), thresholds("common")
    soil = [(None, "red"), (crop["soil_moisture_pct.refill"], "green"),
            (crop["soil_moisture_pct.full"], "blue")]
    air = [(None, "purple"), (common["temperature_c.frost_warn"], "green"),
           (crop["temperature_c.heat"], "red")]
    battery = [(None, "red"), (common["battery_v.low"], "orange"),
               (common["battery_v.ok"], "green")]
    for dash, title, expected in [
        ("farm-overview.json", "Soil moisture now", soil),
        ("farm-overview.json", "Soil moisture", soil),
        ("plot-detail.json", "Soil moisture by depth", soil),
        ("farm-overview.json", "Air temperature", air),
        ("plot-detail.json", "Air temperature and dew point", air),
        ("device-health.json", "Battery", battery),
    ]:
        assert _steps(_panel(dash, title)["fieldConfig"]["defaults"]) == expected, title
    rssi = _steps(_panel("device-health.json", "Signal strength (RSSI)")["fieldConfig"]
                  ["defaults"])
    assert rssi == [(None, "red"), (common["rssi_dbm.weak"], "green")]


def test_build_for_another_crop_draws_its_numbers(tmp_path: Path) -> None:
    from rules.presets import thresholds

    assert main(["dashboards", "build", "--crop", "strawberry", "--out", str(tmp_path)]) == 0
    panel = next(p for p in json.loads((tmp_path / "farm-overview.json").read_text())["panels"]
                 if p["title"] == "Soil moisture now")
    values = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert values[1] == thresholds("strawberry")["soil_moisture_pct.refill"]
    assert main(["dashboards", "build", "--crop", "common", "--out", str(tmp_path)]) == 2


def test_compose_mounts_the_json_and_provisioning_these_tests_and_publish_use() -> None:
    from dashboards.publish import PROVISIONED_DATASOURCE

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    sources = {v.split(":")[0]: v.split(":")[1]
               for v in compose["services"]["grafana"]["volumes"]}
    assert (REPO / "dashboards/json").resolve() == JSON_DIR.resolve()
    assert sources["./dashboards/json"] == "/var/lib/grafana/dashboards"
    assert sources["./dashboards/provisioning"] == "/etc/grafana/provisioning"
    assert PROVISIONED_DATASOURCE.resolve().is_relative_to(
        (REPO / "dashboards/provisioning").resolve())
