"""What a running gateway says about itself, for ``satoyama status``: sources and queue.

The store holds the data, not the process: ``satoyama status`` (another process, perhaps
run by another user) can count rows and backlogs there, but not see whether the broker is
connected or how full the ingest queue is. So the gateway writes a small snapshot into the
store's ``meta`` table every :data:`REPORT_INTERVAL_S` seconds and once more when it stops,
and status shows it with its age: a gateway that died without a word shows as "no report
for 10 min", not as healthy.

:func:`snapshot` and :func:`describe` are pure (the process's facts are passed in), so the
wording is tested without a running gateway.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Final

META_KEY: Final = "runtime"
REPORT_INTERVAL_S: Final = 5.0
#: A report older than this (and no "stopped") means the gateway died or hangs.
STALE_AFTER_S: Final = 3 * REPORT_INTERVAL_S


def snapshot(*, pid: int, gateway_id: str, started_ns: int, now_ns: int, queue_items: int,
             queue_limit: int, paused: bool, sources: Sequence[Any],
             stopped: bool = False) -> dict[str, Any]:
    """The report: plain JSON-able data. ``sources`` are the sources' stats dataclasses."""
    return {
        "pid": pid, "gateway_id": gateway_id, "started_ns": started_ns, "updated_ns": now_ns,
        "stopped": stopped,
        "queue": {"items": queue_items, "limit": queue_limit, "paused": paused},
        "sources": [{"kind": type(s).__name__.removesuffix("SourceStats").lower(),
                     **dataclasses.asdict(s)} for s in sources],
    }


def encode(report: dict[str, Any]) -> str:
    return json.dumps(report, sort_keys=True)


def decode(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        report = json.loads(text)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def state(report: dict[str, Any], now_ns: int) -> str:
    """``running``, ``stopped`` or ``silent`` (no report for :data:`STALE_AFTER_S`)."""
    if report.get("stopped"):
        return "stopped"
    age_s = (now_ns - int(report.get("updated_ns", 0))) / 1e9
    return "silent" if age_s > STALE_AFTER_S else "running"


def _duration(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 2 * 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def describe(report: dict[str, Any] | None, now_ns: int) -> list[str]:
    """The ``satoyama status`` lines about the process, its queue and its sources."""
    if report is None:
        return ["gateway    no report yet (the gateway has not run on this store since "
                "it learned to report)"]
    age = _duration((now_ns - int(report["updated_ns"])) / 1e9)
    pid, current = report.get("pid"), state(report, now_ns)
    if current == "stopped":
        lines = [f"gateway    stopped {age} ago (was pid {pid})"]
    elif current == "silent":
        lines = [f"gateway    no report for {age} (pid {pid}): not running, or stuck? "
                 "(a running gateway reports every "
                 f"{REPORT_INTERVAL_S:.0f}s)"]
    else:
        up = _duration((now_ns - int(report["started_ns"])) / 1e9)
        q = report["queue"]
        lines = [f"gateway    running, pid {pid}, up {up} (reported {age} ago); queue "
                 f"{q['items']} of {q['limit']}"
                 + ("; INGEST PAUSED: the store is full" if q.get("paused") else "")]
    # A stopped or silent gateway's sources are as they were at its last report.
    then = "" if current == "running" else "(last report) "
    for src in report.get("sources", []):
        lines.append("source     " + then + _source_line(src))
    return lines


def _source_line(s: dict[str, Any]) -> str:
    kind = s.get("kind")
    error = f"; last error: {s['last_error']}" if s.get("last_error") else ""
    if kind == "mqtt":
        link = "connected" if s["connected"] else "NOT CONNECTED"
        return (f"{s['name']} {s['url']} ({s['client_id']}): {link}; {s['messages_received']} "
                f"received, {s['acks_sent']} acknowledged, {s['connects']} connects of "
                f"{s['connect_attempts']} attempts, {s['queue_full_waits']} waits on a full "
                f"queue{error}")
    if kind == "serial":
        link = "open" if s["connected"] else "NOT OPEN"
        return (f"{s['name']} {s['port']}: {link}; {s['bytes_read']} bytes in "
                f"{s['chunks_read']} reads, {s['reconnects']} reconnects, "
                f"{s['open_failures']} failed opens{error}")
    if kind == "http":
        where = ":".join(map(str, s["address"])) if s.get("address") else "not listening"
        answered = " ".join(f"{code}×{n}" for code, n in sorted(s["answered"].items()))
        return (f"{s['name']} {where}: {s['requests']} uploads, {s['committed']} committed; "
                f"answers {answered or 'none yet'}")
    return f"{s.get('name', kind)}: " + ", ".join(f"{k} {v}" for k, v in s.items()
                                                 if k not in ("name", "kind"))
