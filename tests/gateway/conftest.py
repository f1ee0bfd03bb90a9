"""Shared fixtures for gateway tests: a config file writer, the gateways a test started."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from gateway.app import Gateway


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(serial_port: str | None = None, **sections: Any) -> Path:
        cfg: dict[str, Any] = {"site": "testfarm", "data_dir": str(tmp_path / "data")}
        if serial_port:
            cfg["sources"] = {"serial": {"port": serial_port, "reopen_interval_s": 0.1}}
        cfg["pipeline"] = {"batch_interval_ms": 50}
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key].update(value)
            else:
                cfg[key] = value
        path = tmp_path / "satoyama.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    return write


@pytest.fixture
def gateways() -> Iterator[list[Gateway]]:
    """Gateways a test starts; any still running at the end are stopped."""
    started: list[Gateway] = []
    yield started
    for gw in started:
        if not gw.stop_event.is_set():
            gw.stop()
