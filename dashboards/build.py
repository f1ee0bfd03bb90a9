"""Build every dashboard to JSON, deterministically, and compare with committed files.

The committed files in ``dashboards/json/`` are what Grafana provisioning loads and what
``satoyama dashboards publish`` uploads; ``satoyama dashboards build --check`` (and a test)
fails when they differ from what the code builds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from dashboards.crops import DEFAULT_CROP, CropThresholds, crop_thresholds

JSON_DIR: Final = Path(__file__).parent / "json"


def _builders() -> dict[str, Callable[[CropThresholds], dict[str, Any]]]:
    """File name -> builder. Imports the SDK, so only called when building."""
    from dashboards import (
        data_quality,
        device_health,
        farm_overview,
        fleet,
        gateway_status,
        plot_detail,
    )

    return {
        "farm-overview.json": farm_overview.build,
        "plot-detail.json": plot_detail.build,
        "fleet.json": fleet.build,
        "device-health.json": device_health.build,
        "data-quality.json": lambda _crop: data_quality.build(),
        "gateway.json": lambda _crop: gateway_status.build(),
    }


def render(data: dict[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, one trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build_all(crop: str = DEFAULT_CROP) -> dict[str, str]:
    """File name -> JSON text of every dashboard, with ``crop``'s thresholds."""
    thresholds = crop_thresholds(crop)
    return {name: render(build(thresholds)) for name, build in _builders().items()}


def write(out_dir: Path, built: dict[str, str]) -> list[Path]:
    """Write the files that changed; return them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in built.items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def differences(out_dir: Path, built: dict[str, str]) -> list[str]:
    """What differs between ``out_dir`` and ``built``: one line per file."""
    problems = []
    for name, text in built.items():
        path = out_dir / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from what the code builds")
    known = set(built)
    if out_dir.is_dir():
        problems.extend(f"{p}: not built by any dashboard module"
                        for p in sorted(out_dir.glob("*.json")) if p.name not in known)
    return problems
