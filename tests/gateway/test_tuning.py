"""gateway/tuning.py: the malloc arena cap is set on glibc, and left to an operator who
set MALLOC_ARENA_MAX."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.tuning import share_malloc_arenas

PROBE = "from gateway.tuning import share_malloc_arenas; print(share_malloc_arenas())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_cap_is_set_in_a_fresh_process() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "True"


def test_an_operators_malloc_arena_max_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert share_malloc_arenas() is False
