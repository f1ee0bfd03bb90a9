"""How long a sink waits before trying again: one small helper instead of ad-hoc loops.

Exponential backoff with "full jitter" (a random delay between ``initial_s`` and the
exponential bound), so many gateways that lost the same server do not come back in step.
A server's ``Retry-After`` is honoured as a lower bound, up to ``max_retry_after_s``.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from dataclasses import dataclass, field
from datetime import UTC
from typing import Final


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 60.0
    multiplier: float = 2.0
    max_retry_after_s: float = 600.0

    def delay(
        self, attempt: int, retry_after_s: float | None = None, *, rng: random.Random | None = None
    ) -> float:
        """Delay before retry number ``attempt`` (1 = the first retry)."""
        bound = min(self.max_s, self.initial_s * self.multiplier ** max(0, attempt - 1))
        lo = min(self.initial_s, bound)
        wait = (rng or random).uniform(lo, bound)
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.max_retry_after_s))
        return wait


# Not float(): it also takes "inf", "nan", "1e9" and "-5", none of which is a delay.
_DELAY_SECONDS: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?").fullmatch


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent.

    An HTTP date is always UTC (RFC 9110 §5.6.7), in any of its three forms; the obsolete
    asctime form (``Sun Nov  6 08:49:37 1994``) names no zone, so it is read as UTC, not
    in the gateway's local time zone.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    if _DELAY_SECONDS(value):  # digits (RFC 9110 §10.2.3); a fraction is tolerated
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # asctime form: parsedate_to_datetime leaves it naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Waits per failure class (see gateway.sinks.influxdb.FailureClass)."""

    transient: Backoff = field(default_factory=Backoff)  # 5xx, network, timeouts
    throttled: Backoff = field(default_factory=lambda: Backoff(initial_s=5.0, max_s=120.0))
    # 401/403/404: a person must fix the config; retry slowly so the fix is picked up.
    config: Backoff = field(default_factory=lambda: Backoff(initial_s=60.0, max_s=300.0))

    @classmethod
    def fast(cls) -> RetryPolicy:
        """Short waits for tests."""
        quick = Backoff(initial_s=0.05, max_s=0.3, max_retry_after_s=1.0)
        return cls(transient=quick, throttled=quick, config=quick)
