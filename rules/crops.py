"""Which loaded rules a registered crop gets, and what to say when it gets none.

A crop preset is scoped to its crop (``scope: {crop: [tomato]}``) and the soil presets to
nodes without one (``crop: [none]``), so a node whose ``crop`` no rule names gets only the
rules without a crop scope: a typo (``tomatoe``), or a crop whose preset is not in the
config's ``rules:`` list, silently costs its plot the watering and heat alerts. The config
check reports those two cases as warnings. A crop that has no preset and is like no known
crop (``tea``) is taken as meant: its nodes get the rules without a crop scope, as the
rules docs say.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from rules.loader import LoadedRule
from rules.model import Scope


@dataclass(frozen=True, slots=True)
class CropNote:
    """A registered crop that no loaded rule is scoped to, and what to do about it."""

    crop: str
    message: str
    hint: str


def _crop_scopes(item: LoadedRule) -> list[list[str]]:
    scopes: Iterable[Scope | None] = (item.file.scope, item.rule.scope)
    return [s.crop for s in scopes if s is not None and s.crop is not None]


def rules_for_crop(loaded: Sequence[LoadedRule], crop: str) -> list[str]:
    """Names of the rules scoped to ``crop`` by name (every crop list on the way matches
    it); rules without a crop scope apply to any crop and are not counted."""
    names = []
    for item in loaded:
        lists = _crop_scopes(item)
        if lists and all(any(fnmatch.fnmatchcase(crop, p) for p in ps) for ps in lists):
            names.append(item.rule.name)
    return names


_GLOB: Final = re.compile(r"[*?[]")


def _like(crop: str, known: list[str]) -> list[str]:
    """Known crops ``crop`` is probably meant to be: a near spelling (``tomatoe``,
    ``Tomato``; not ``potato``), or one word of a longer name (``pepper``)."""
    close = difflib.get_close_matches(crop.lower(), known, n=1, cutoff=0.8)
    return close or [k for k in known if crop.lower() in k.split("_")][:1]


def crop_notes(
    crops: Iterable[str], loaded: Sequence[LoadedRule], preset_crops: dict[str, str]
) -> list[CropNote]:
    """A note for each crop (once) that no loaded rule is scoped to and that is either a
    preset's crop or close to a known crop's name.

    ``preset_crops``: crop -> the preset for it (:func:`rules.presets.crop_presets`).
    Without any rules configured there is nothing to miss, but a name that is close to a
    known crop is still reported: dashboards and messages use the preset's crop names too.
    """
    known = sorted(set(preset_crops) | {p for item in loaded for ps in _crop_scopes(item)
                                         for p in ps if p != "none" and not _GLOB.search(p)})
    notes = []
    for crop in dict.fromkeys(crops):
        if rules_for_crop(loaded, crop):
            continue
        preset = preset_crops.get(crop)
        close = _like(crop, [k for k in known if k != crop])
        if preset is not None:
            if loaded:
                notes.append(CropNote(
                    crop, f"no loaded rule is for crop {crop!r}",
                    f"add preset:{preset} to rules: for its alerts (dry soil, heat...)"))
        elif close:
            notes.append(CropNote(
                crop, f"{crop!r} is not a crop any preset or loaded rule file names",
                f"did you mean {close[0]!r}?"))
    return notes
