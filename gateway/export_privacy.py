"""Per-site sharing for exports (DESIGN.md §5): share, pseudonymise or withhold each site.

Pure: rows in, rows out, counts kept. The choice per site comes from the config's
``export`` section (gateway/config/export.py): listed sites as listed, this gateway's own
``site`` shared unless listed, every other site as ``export.other_sites`` (withheld unless
set otherwise: a farm opts in).

A pseudonym is ``<kind>-`` and the first 8 hex digits of HMAC-SHA256(key, kind, site[,
name]): the same on every run and machine that has the key, different under another key,
and not recoverable by trying likely site names without the key. Plot and node names of a
pseudonymised site are replaced too (they often carry the farmer's name), keyed by their
site so that two farms' ``n1`` stay apart; the sensor tag (``soil_10cm``) is kept. A
replayed file's name in ``source`` (``replay:tanaka-2026.jsonl``) is cut to ``replay``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.export import Sharing

PSEUDONYM_HEX_DIGITS = 8


def pseudonym(key: bytes, kind: str, *names: str) -> str:
    """``site-3f9a1c2b``: a stable, keyed stand-in for a site (or its plot or node)."""
    message = "\x1f".join((kind, *names)).encode()
    return f"{kind}-{hmac.new(key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_DIGITS]}"


@dataclass
class SitePrivacy:
    """Applies the sharing choices to export rows and counts what it withheld."""

    sites: Mapping[str, Sharing]
    own_site: str
    other_sites: Sharing = "withhold"
    key: bytes | None = None
    withheld: dict[str, int] = field(default_factory=dict)  # site -> rows left out
    pseudonymised: dict[str, int] = field(default_factory=dict)  # site -> rows renamed

    @classmethod
    def from_settings(cls, settings: Any) -> SitePrivacy:
        cfg = settings.export
        key = cfg.pseudonym_key.get_secret_value().encode() if cfg.pseudonym_key else None
        return cls(dict(cfg.sites), settings.site, cfg.other_sites, key)

    def sharing(self, site: str) -> Sharing:
        if site in self.sites:
            return self.sites[site]
        return "share" if site == self.own_site else self.other_sites

    def why_withheld(self, site: str) -> str:
        if site in self.sites:
            return "export.sites says withhold"
        return "not opted in (not under export.sites; export.other_sites is withhold)"

    def apply(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        names: dict[tuple[str, ...], str] = {}  # memo: one HMAC per distinct name

        def alias(kind: str, *parts: str) -> str:
            got = names.get((kind, *parts))
            if got is None:
                assert self.key is not None  # the config requires a key for pseudonym
                got = names[(kind, *parts)] = pseudonym(self.key, kind, *parts)
            return got

        for row in rows:
            site = row["site"]
            how = self.sharing(site)
            if how == "share":
                yield row
            elif how == "withhold":
                self.withheld[site] = self.withheld.get(site, 0) + 1
            else:
                self.pseudonymised[site] = self.pseudonymised.get(site, 0) + 1
                yield {
                    **row,
                    "site": alias("site", site),
                    "plot": alias("plot", site, row["plot"]),
                    "node": alias("node", site, row["node"]),
                    "source": str(row["source"]).split(":", 1)[0],
                }

    def notes(self) -> list[str]:
        """Lines for standard error: what was withheld and why, what was renamed."""
        lines = []
        if self.withheld:
            total = sum(self.withheld.values())
            lines.append(f"withheld {total} rows of {len(self.withheld)} site(s): farm data "
                         "is exported only for sites opted in under export.sites in the "
                         "config (share or pseudonym)")
            lines += [f"  {site}: {n} rows, {self.why_withheld(site)}"
                      for site, n in sorted(self.withheld.items())]
        if self.pseudonymised:
            lines.append(f"pseudonymised {sum(self.pseudonymised.values())} rows of "
                         f"{len(self.pseudonymised)} site(s) (site, plot and node names)")
        return lines
