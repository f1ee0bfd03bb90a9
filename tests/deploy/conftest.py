"""Fixtures for the production stack's static tests: docker-compose.yml parsed and
interpolated the way Docker Compose does it, with the values documented in .env.example.

No Docker engine is needed (or used): what can be checked without one is checked here.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from compose_support import COMPOSE_FILE, ENV_EXAMPLE, interpolate, parse_env_file


@pytest.fixture(scope="session")
def compose_raw() -> dict[str, Any]:
    """docker-compose.yml as written (before interpolation)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="session")
def compose(compose_raw: dict[str, Any], env_example: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml as Compose sees it with a .env copied from .env.example."""
    result = interpolate(compose_raw, env_example)
    assert isinstance(result, dict)
    return result
