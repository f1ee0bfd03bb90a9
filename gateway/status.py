"""`satoyama status`: what the gateway has done, read from its store (no running process needed)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from typing import Any
from zoneinfo import ZoneInfo

from gateway import runtime
from gateway.catalogue import BY_NAME, label
from gateway.sinks.influxdb import oldest_unsent_age_s
from gateway.store.sqlite import Store


def collect(store: Store, *, sinks: tuple[str, ...] = ()) -> dict[str, Any]:
    report = runtime.decode(store.meta(runtime.META_KEY))
    if report is not None:
        report["state"] = runtime.state(report, time.time_ns())
    return {
        "runtime": report,
        "store": {"path": str(store.path), "used_bytes": store.used_bytes(),
                  "readings": store.count("reading"), "packets": store.count("packet"),
                  "quarantined": store.count("quarantine")},
        "counters": dict(sorted(store.counters().items())),
        "quarantine_by_reason": store.quarantine_counts(),
        # Without raw (evidence stays in the store): who sent it, on which topic, and why.
        "quarantine_latest": [
            {k: q.get(k) for k in _QUARANTINE_SHOWN}
            for q in store.quarantine(limit=QUARANTINE_LATEST)
        ],
        "nodes": store.node_states(),
        "latest": {f"{node}/{sensor}": v for (node, sensor), v in store.latest_values().items()},
        "device": store.latest_device(),
        "alerts": [
            {k: a[k] for k in ("rule", "severity", "state", "site", "plot", "node", "sensor",
                               "value", "since_ns", "time_ns", "message")}
            for a in store.active_alerts()
        ],
        "alert_consumers": _alert_consumers(store),
        "backlog": {
            sink: {**store.backlog(sink),
                   "oldest_age_s": round(oldest_unsent_age_s(store, sink), 1)}
            for sink in sinks
        },
    }


QUARANTINE_LATEST = 5
# ``topic`` is absent from a store a gateway older than the column still has open.
_QUARANTINE_SHOWN = ("id", "received_ns", "reason", "source", "format", "topic", "node",
                     "seq", "detail")


def _alert_consumers(store: Store) -> dict[str, dict[str, int]]:
    """Alert transitions each consumer of the alert outbox (notifier, MQTT publisher) has
    not taken yet, and the notifier's messages not yet sent."""
    names = [r[0] for r in store.execute("SELECT sink FROM sink_cursor WHERE tbl = 'alert'")]
    out = {name: {"alerts_waiting": store.backlog(name, ("alert",))["alert"]}
           for name in sorted(names)}
    try:
        unsent = store.execute("SELECT count(*) FROM notify_message"
                               " WHERE sent_ns IS NULL AND dropped IS NULL")[0][0]
    except sqlite3.OperationalError:  # the notifier never ran on this store
        return out
    out.setdefault("notify", {"alerts_waiting": 0})["messages_unsent"] = int(unsent)
    return out


def fmt_value(quantity: str, value: float) -> str:
    q = BY_NAME.get(quantity)
    if q is None:
        return f"{quantity}={value:g}"
    return f"{label(quantity)}={value:.{q.decimals}f}{q.unit}"


def ago(ns: int, now_ns: int) -> str:
    s = max(0, (now_ns - ns) // 1_000_000_000)
    if s < 120:
        return f"{s}s ago"
    if s < 7200:
        return f"{s // 60}m ago"
    return f"{s // 3600}h ago"


def render(info: dict[str, Any], *, tz: str = "Asia/Tokyo") -> str:
    now = time.time_ns()
    zone = ZoneInfo(tz)
    st = info["store"]
    lines = [
        *runtime.describe(info.get("runtime"), now),
        f"store      {st['path']}  ({st['used_bytes'] / 1e6:.1f} MB used)",
        f"packets    {st['packets']} stored, {st['readings']} reading rows, "
        f"{st['quarantined']} quarantined",
    ]
    c = info["counters"]
    lines.append(
        f"counters   received {c.get('received.packets', 0)}, stored {c.get('stored', 0)}, "
        f"duplicates {c.get('duplicates', 0)}"
    )
    # Rejections and ignored messages from the counters, which last: the quarantine's
    # rows go with retention and the size bound, and some rejections keep no row at all.
    for what, prefix in (("rejected", "rejected."), ("ignored", "ignored.")):
        counted = {k.removeprefix(prefix): v for k, v in c.items() if k.startswith(prefix)}
        if counted:
            lines.append(f"{what:<10} " + ", ".join(f"{k} {v}"
                                                    for k, v in sorted(counted.items())))
    if info["quarantine_by_reason"]:
        kept = ", ".join(f"{k} {v}" for k, v in sorted(info["quarantine_by_reason"].items()))
        lines.append(f"quarantine {kept} (rows kept as evidence)")
    for q in info.get("quarantine_latest", []):
        at = dt.datetime.fromtimestamp(q["received_ns"] / 1e9, zone)
        lines.append(f"  {at:%m-%d %H:%M:%S} {q['reason']} from {q['source']}"
                     + (f" topic {q['topic']}" if q.get("topic") else "")
                     + (f" node {q['node']}" if q.get("node") else "")
                     + f": {q['detail'][:80]}")
    flagged = {k: v for k, v in c.items() if k.startswith(("flagged.", "store.", "reanchored"))}
    if flagged:
        lines.append("flagged    " + ", ".join(f"{k} {v}" for k, v in sorted(flagged.items())))
    sink_counts = {k: v for k, v in c.items() if k.startswith("sink.")}
    if sink_counts:
        lines.append("sinks      " + ", ".join(f"{k.removeprefix('sink.')} {v}"
                                              for k, v in sorted(sink_counts.items())))
    for sink, backlog in info["backlog"].items():
        age = backlog.get("oldest_age_s", 0)
        rows = ", ".join(f"{t} {n}" for t, n in backlog.items() if t != "oldest_age_s")
        lines.append(f"outbox     {sink}: {rows} waiting" + (f", oldest {age:.0f}s" if age else ""))
    alerts = info.get("alerts", [])
    lines.append(f"alerts     {len(alerts)} active" + (":" if alerts else ""))
    for a in alerts:
        since = dt.datetime.fromtimestamp(a["since_ns"] / 1e9, zone)
        lines.append(f"  {a['state']:<8} {a['severity']:<8} {a['rule']}  since "
                     f"{since:%m-%d %H:%M}  {a['message']}")
    for name, waiting in info.get("alert_consumers", {}).items():
        lines.append(f"outbox     {name}: " + ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in waiting.items()))
    lines.append("nodes")
    for n in info["nodes"]:
        seen = dt.datetime.fromtimestamp(n["last_received_ns"] / 1e9, zone)
        dev = info["device"].get(n["node"], {})
        health = " ".join(
            fmt_value(k, v) for k, v in dev.items() if k in ("battery_v", "rssi_dbm", "snr_db")
        )
        loss = dev.get("packet_loss_pct")
        lines.append(
            f"  {n['site']}/{n['plot']}/{n['node']}  last {seen:%Y-%m-%d %H:%M:%S %Z}"
            f" ({ago(n['last_received_ns'], now)}) seq {n['last_seq']}  {health}"
            + (f" loss={loss:.0f}%" if loss is not None else "")
        )
        for key, values in sorted(info["latest"].items()):
            node, sensor = key.split("/", 1)
            if node == n["node"]:
                shown = "  ".join(fmt_value(q, v) for q, v in values.items())
                lines.append(f"      {sensor:<10} {shown}")
    return "\n".join(lines)
