"""Helpers shared by tests (tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Poll until predicate() is true; fail the test with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def query_db(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read a gateway's SQLite store from outside its process (read-only, WAL-safe)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def counter(db: Path, name: str) -> int:
    """One gateway counter from its store; 0 while the store or the counter does not exist."""
    if not db.exists():
        return 0
    try:
        rows = query_db(db, f"SELECT value FROM counter WHERE name='{name}'")
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    return int(rows[0][0]) if rows else 0


def start_gateway(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`satoyama run -c config` as its own process, output appended to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "-c", str(config)],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


def satoyama_cli(*args: str, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`satoyama ARGS` as its own process, as a user runs it; fails the test on a non-zero
    exit unless ``check`` is false."""
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"satoyama {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc
