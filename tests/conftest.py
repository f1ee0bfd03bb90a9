"""Fixtures shared by every test folder: database servers started once per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers.influx import InfluxDB1, VictoriaMetrics


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    """A real InfluxDB 1.x on a free loopback port, with a temporary data directory."""
    db = InfluxDB1(tmp_path_factory.mktemp("influxdb")).start()
    yield db
    db.stop()


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """A real VictoriaMetrics (InfluxDB v2 write API) on a free loopback port."""
    server = VictoriaMetrics(tmp_path_factory.mktemp("vm")).start()
    yield server
    server.stop()
