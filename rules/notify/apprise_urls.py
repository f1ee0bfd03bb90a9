"""The one place that talks to apprise: checking a URL, and sending one message to one URL.

apprise is imported on first use, not at import time: loading its ~180 plugins takes a
few tenths of a second that a gateway without notifications should not pay.

Every URL is a secret (it carries the service's token or password), so nothing here puts
a URL or apprise's own log lines (some plugins log the token they refused) into an
exception message; only the scheme and apprise's verdict.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

_APPRISE_LOGGER = "apprise"
_quiet_lock = threading.Lock()


class DeliveryError(Exception):
    """The service did not take the message (down, refused, misconfigured)."""


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme or "(none)"


@contextlib.contextmanager
def _apprise_logs_kept_in() -> Iterator[None]:
    """Keep apprise's log lines away from the root logger while checking a URL: a refused
    URL's line may contain its token, and with no logging configured (check-config) Python
    would print it."""
    log = logging.getLogger(_APPRISE_LOGGER)
    with _quiet_lock:
        before = log.propagate
        log.propagate = False
        try:
            yield
        finally:
            log.propagate = before


def url_problem(url: str) -> str | None:
    """Why apprise cannot use ``url`` (without the URL itself), or None if it can."""
    if "://" not in url:
        return "not a URL (apprise URLs look like scheme://...)"
    import apprise

    with _apprise_logs_kept_in():
        plugin = apprise.Apprise.instantiate(url, asset=_asset())
    if plugin is None:
        return (f"apprise cannot use this {scheme_of(url)}:// URL (unknown service, or a "
                "token, address or option it refuses)")
    if len(plugin) == 0:  # the plugin's count of targets: line://TOKEN without a user id
        return (f"this {scheme_of(url)}:// URL names nobody to send to (add the user, "
                "group, chat or address after the token)")
    return None


def _asset() -> Any:
    import apprise

    # No persistent cache files: the gateway's state lives in its store.
    return apprise.AppriseAsset(storage_mode="memory")


class AppriseTarget:
    """One apprise URL, loaded once and reused (apprise then skips, on a retry, the
    targets of a multi-target URL that already took the message)."""

    def __init__(self, url: str) -> None:
        import apprise

        self.scheme = scheme_of(url)
        self._apprise = apprise.Apprise(asset=_asset())
        with _apprise_logs_kept_in():
            if not self._apprise.add(url):
                raise DeliveryError(f"apprise cannot use this {self.scheme}:// URL")

    def send(self, title: str, body: str, notify_type: str = "info") -> None:
        """Send; raise :class:`DeliveryError` unless apprise reported success.
        ``notify_type``: info, warning, failure or success."""
        import apprise

        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            ok = self._apprise.notify(body=body, title=title,
                                      notify_type=apprise.NotifyType(notify_type),
                                      body_format=apprise.NotifyFormat.TEXT)
        if not ok:
            # apprise's warnings say what failed (status code, connection refused); they
            # mask tokens in URLs, but keep only the last lines, for the log.
            lines = [line for line in captured.getvalue().splitlines() if line.strip()]
            reason = " / ".join(lines[-2:])[:500] or "apprise reported a failure"
            raise DeliveryError(f"{self.scheme}:// delivery failed: {reason}")
