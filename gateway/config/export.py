"""The ``export:`` section: which sites' readings `satoyama export` may hand out, and how.

Farm data belongs to farmers (DESIGN.md §5). Each site is shared as stored, shared under
stable pseudonyms, or withheld; a site not listed is withheld (``other_sites``) unless it
is this gateway's own ``site``. Pseudonyms are keyed (HMAC-SHA256 with
``pseudonym_key``): the same on every run and machine with the same key, and not
reversible by trying site names without it. gateway/export_privacy.py applies this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from gateway.config.base import Name, Section, config_error, hint

Sharing = Literal["share", "pseudonym", "withhold"]
MIN_PSEUDONYM_KEY_CHARS = 16
_SHARING_HINT = (
    "share (as stored), pseudonym (site, plot and node names replaced by stable "
    "pseudonyms) or withhold (left out)"
)
_KEY_HINT = (
    "make one with `head -c 24 /dev/urandom | base64 > export-key`, set "
    "export.pseudonym_key_file: export-key (or SATOYAMA_EXPORT__PSEUDONYM_KEY), and keep it: "
    "another key gives other pseudonyms"
)


class ExportConfig(Section):
    """What `satoyama export` may hand out, per site (DESIGN.md §5)."""

    sites: dict[Name, Sharing] = Field(
        default_factory=dict,
        description="Per site: `share` (names as stored), `pseudonym` (site, plot and node "
        "names replaced by stable pseudonyms such as `site-3f9a1c2b`; a replayed file's name "
        "is dropped from `source`) or `withhold` (left out, with a note saying how many rows "
        "and why).",
        json_schema_extra=hint("e.g. sites: {kamiyama: share, tanaka-farm: pseudonym}; "
                               "values: " + _SHARING_HINT),
    )
    other_sites: Sharing = Field(
        default="withhold",
        description="Sites not listed in `sites`, except this gateway's own `site` (shared "
        "unless listed): withheld unless their farmers opted in.",
        json_schema_extra=hint(_SHARING_HINT),
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Secret for the pseudonyms (at least 16 characters); required when a "
        "site is exported as `pseudonym`. Prefer `pseudonym_key_file` or the environment.",
    )
    pseudonym_key_file: Path | None = Field(
        default=None, description="File holding `pseudonym_key` (e.g. a Docker secret)."
    )

    @model_validator(mode="after")
    def _key_when_needed(self) -> ExportConfig:
        if self.pseudonym_key is not None and self.pseudonym_key_file is not None:
            raise config_error(
                "set either pseudonym_key or pseudonym_key_file, not both",
                "pseudonym_key_file suits Docker/systemd secrets",
                fields=("pseudonym_key_file",),
            )
        key = self.pseudonym_key
        if key is not None and len(key.get_secret_value()) < MIN_PSEUDONYM_KEY_CHARS:
            raise config_error(
                f"the pseudonym key has fewer than {MIN_PSEUDONYM_KEY_CHARS} characters",
                "site names are easy to guess, so a short key lets anyone undo the "
                "pseudonyms; " + _KEY_HINT,
                fields=("pseudonym_key",),
            )
        wanted = [s for s, how in self.sites.items() if how == "pseudonym"]
        if self.other_sites == "pseudonym":
            wanted.append("other_sites")
        if wanted and key is None and self.pseudonym_key_file is None:
            first = wanted[0]
            raise config_error(
                f"{'other_sites' if first == 'other_sites' else f'site {first!r}'} is "
                "exported as pseudonym, but there is no pseudonym_key",
                _KEY_HINT,
                fields=(("sites", first) if first != "other_sites" else ("other_sites",),),
            )
        return self
