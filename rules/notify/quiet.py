"""Quiet hours: a daily window, in the recipient's time zone, when only urgent alerts go out."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.config.notifications import QuietHours


def _local(now_ns: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(now_ns / 1e9, UTC).astimezone(tz)


def _inside(t: time, start: time, end: time) -> bool:
    if start < end:
        return start <= t < end
    return t >= start or t < end  # over midnight: 21:00-06:00


def is_quiet(quiet: QuietHours | None, now_ns: int, tz: ZoneInfo) -> bool:
    """Whether ``now_ns`` (UTC ns) falls in the quiet window."""
    if quiet is None:
        return False
    return _inside(_local(now_ns, tz).time(), quiet.start, quiet.end)


def quiet_ends_ns(quiet: QuietHours, now_ns: int, tz: ZoneInfo) -> int:
    """When the quiet window that holds ``now_ns`` ends (UTC ns)."""
    local = _local(now_ns, tz)
    end = datetime.combine(local.date(), quiet.end, tzinfo=tz)
    if end <= local:
        end += timedelta(days=1)
    # Wall-clock arithmetic in the zone, then back to UTC (DST days are 23 or 25 hours).
    return int(end.astimezone(UTC).timestamp()) * 1_000_000_000
