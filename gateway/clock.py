"""Is the gateway's own clock trustworthy?

A Raspberry Pi has no real-time clock: it boots with the time it saved at shutdown (or
1970) until NTP synchronises. Readings stamped in that window would be stored at a wrong
time, silently. The monitor answers "trusted?" from two facts: the wall clock is not before
a known-good floor date, and, when ``require_sync`` is set, the kernel reports NTP sync
(``adjtimex``: STA_UNSYNC clear, as chrony, ntpd and systemd-timesyncd leave it).

While untrusted, the pipeline stores readings as *held* with their monotonic receive time
and this boot's id; once the clock is trusted they are re-anchored:
``time = wall_now - (monotonic_now - monotonic_at_receive)``. Monotonic time is shared by
all processes of one boot, so a gateway restart does not lose the anchor; a reboot does,
and such readings stay flagged ``held`` for people to judge.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


class _Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    ]


def kernel_clock_synced() -> bool | None:
    """True/False from adjtimex(2), None where it cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR and not (tx.status & _STA_UNSYNC)


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


class ClockMonitor:
    def __init__(
        self,
        *,
        require_sync: bool = False,
        not_before: dt.date = dt.date(2026, 1, 1),
        sync_probe: Callable[[], bool | None] = kernel_clock_synced,
        recheck_s: float = 10.0,
    ) -> None:
        self.require_sync = require_sync
        self.floor_ns = int(
            dt.datetime.combine(not_before, dt.time(), dt.UTC).timestamp() * 1e9
        )
        self._probe = sync_probe
        self._recheck_ns = int(recheck_s * 1e9)
        self._checked_at: int | None = None
        self._trusted = False
        self.reason = "not checked yet"

    def trusted(self, wall_ns: int, monotonic_ns: int | None = None) -> bool:
        mono = time.monotonic_ns() if monotonic_ns is None else monotonic_ns
        if self._checked_at is not None and mono - self._checked_at < self._recheck_ns:
            return self._trusted and wall_ns >= self.floor_ns
        self._checked_at = mono
        if wall_ns < self.floor_ns:
            self._trusted, self.reason = False, "wall clock is before clock.not_before"
        elif self.require_sync and not self._probe():
            self._trusted, self.reason = False, "kernel reports the clock is not NTP-synchronised"
        else:
            self._trusted, self.reason = True, "ok"
        return self._trusted
