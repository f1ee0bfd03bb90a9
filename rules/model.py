"""The rule file format: what a farmer or extension officer writes (docs/alerts.md).

A rule file is YAML. It may name a crop preset, hold named ``thresholds`` (each with the
source it comes from), a default ``scope`` and a list of ``rules``. Each rule has exactly
one condition kind::

    thresholds:
      soil_moisture_pct.refill: {value: 22, unit: "%", source: "..."}
    scope: {crop: [tomato]}
    rules:
      - name: tomato.soil_dry
        severity: warning
        threshold: {quantity: soil_moisture_pct, below: soil_moisture_pct.refill, clear_above: 26}
        for: 2h
        scope: {sensor: ["soil_1*cm"]}
        unless: [battery_low]
        message: {en: "{plot}: soil at {depth} is {value:.0f} %", ja: "..."}

Numbers in conditions may be a threshold's name instead, so a preset says each number
once, with its source, and dashboards read the same numbers (rules/presets.py).
"""

from __future__ import annotations

import ast
import re
from datetime import date, time
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from gateway.catalogue import BY_NAME
from gateway.config.models import config_error
from rules.durations import parse_duration
from rules.templates import TemplateError, check_template

Seconds = Annotated[float, BeforeValidator(parse_duration)]
Value = float | str  # a number, or the name of one of the file's thresholds

CONDITION_KINDS: Final = ("threshold", "rate", "refill", "frost", "gdd", "expr", "absent_for")
_RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)


def _quantity(name: str) -> str:
    if name not in BY_NAME:
        raise config_error(
            f"{name!r} is not a quantity in the sensor catalogue",
            "use a canonical name such as soil_moisture_pct, temperature_c, battery_v",
        )
    return name


Quantity = Annotated[str, BeforeValidator(lambda v: _quantity(str(v)))]


class Texts(_Section):
    """One text in each language people may read it in; ``{name}`` fields are filled in
    (docs/alerts.md lists them), ``{value:.1f}`` formats a number."""

    en: str = Field(description="English.")
    ja: str | None = Field(default=None, description="Japanese (English is used if absent).")

    @model_validator(mode="after")
    def _templates(self) -> Texts:
        for key in ("en", "ja"):
            text = getattr(self, key)
            if text is not None:
                try:
                    check_template(text)
                except TemplateError as e:
                    raise config_error(str(e), "write fields as {value} or {value:.1f}",
                                       fields=(key,)) from None
        return self

    def by_language(self) -> dict[str, str]:
        return {"en": self.en, **({"ja": self.ja} if self.ja else {})}


class ThresholdValue(_Section):
    value: float = Field(description="The number, in the quantity's catalogue unit.")
    unit: str | None = Field(default=None, description="Unit, for people (not converted).")
    source: str = Field(description="Where the number comes from (a paper, a guide, a grower).")
    note: str | None = Field(default=None, description="Free text, e.g. 'starting point: tune'.")


class Scope(_Section):
    """Which series a rule watches: each list holds shell-style patterns (``soil_*``)."""

    site: list[str] | None = None
    plot: list[str] | None = None
    node: list[str] | None = None
    sensor: list[str] | None = None
    crop: list[str] | None = None


class During(_Section):
    """A daily time window (site time zone), optionally within some months."""

    start: time = Field(alias="from", description="Start, HH:MM.")
    end: time = Field(alias="to", description="End, HH:MM; before `from` means overnight.")
    months: list[Annotated[int, Field(ge=1, le=12)]] | None = Field(
        default=None, description="Months (1-12) the rule is active in; all if absent."
    )


class Threshold(_Section):
    """Value below/above a limit, clearing at a separate limit (hysteresis)."""

    quantity: Quantity
    below: Value | None = None
    above: Value | None = None
    clear_above: Value | None = Field(default=None, description="Clears only above this.")
    clear_below: Value | None = Field(default=None, description="Clears only below this.")

    @model_validator(mode="after")
    def _one_side(self) -> Threshold:
        if (self.below is None) == (self.above is None):
            raise config_error("give exactly one of `below` or `above`", fields=("below",))
        if self.below is not None and self.clear_below is not None:
            raise config_error("with `below`, the clear limit is `clear_above`",
                               fields=("clear_below",))
        if self.above is not None and self.clear_above is not None:
            raise config_error("with `above`, the clear limit is `clear_below`",
                               fields=("clear_above",))
        return self


class Rate(_Section):
    """Change per hour over a window (least-squares slope), e.g. soil drying fast."""

    quantity: Quantity
    window: Seconds = Field(default=3 * 3600, description="How far back the slope looks.")
    below: Value | None = Field(default=None, description="Fires when the slope per hour "
                                "is below this (negative: falling).")
    above: Value | None = None
    clear_above: Value | None = None
    clear_below: Value | None = None

    @model_validator(mode="after")
    def _one_side(self) -> Rate:
        if (self.below is None) == (self.above is None):
            raise config_error("give exactly one of `below` or `above`", fields=("below",))
        return self


class Refill(_Section):
    """Time until soil moisture reaches the refill point, from its recent drying rate."""

    quantity: Quantity = "soil_moisture_pct"
    refill_at: Value = Field(description="The refill point (water before it is reached).")
    within: Seconds = Field(description="Fires when the refill point is this close in time.")
    window: Seconds = Field(default=12 * 3600, description="How far back the rate looks.")
    clear_above: Value | None = Field(
        default=None, description="Clears when moisture is back above this (after watering)."
    )


class Frost(_Section):
    """Frost risk: air temperature, its cooling trend and the dew point, ahead of time.

    The projected temperature ``lead_time`` ahead is the current one plus the cooling rate
    over ``window``; it is floored at the dew point, where cooling slows as dew forms. The
    rule fires when that projection is at or below ``warn_at``.
    """

    warn_at: Value = Field(default=1.0, description="Projected air temperature (°C) to warn at.")
    lead_time: Seconds = Field(default=3 * 3600, description="How far ahead to project.")
    window: Seconds = Field(default=2 * 3600, description="How far back the cooling rate looks.")
    clear_above: Value | None = Field(default=None, description="Clears when the projection "
                                      "is above this (default warn_at + 2 °C).")


class Gdd(_Section):
    """Growing degree days since the season start: daily (Tmax + Tmin) / 2 - base, >= 0."""

    base_c: Value = Field(description="Base temperature of the crop, °C.")
    upper_c: Value | None = Field(default=None, description="Cap on daily temperatures, °C.")
    above: Value = Field(description="Fires once the season's sum reaches this (°C·d).")
    season_start: str = Field(default="04-01", pattern=r"^\d\d-\d\d$",
                              description="MM-DD the sum restarts from, each year.")

    @model_validator(mode="after")
    def _season_start_is_a_date(self) -> Gdd:
        month, day = (int(x) for x in self.season_start.split("-"))
        try:
            date(2025, month, day)  # a common year: 02-29 would not come every year
        except ValueError:
            raise config_error(
                f"{self.season_start!r} is not a day that comes every year",
                "write MM-DD, e.g. 04-01; not 02-29", fields=("season_start",)) from None
        return self


class Expr(_Section):
    """An expert's expression over the readings of one row, evaluated by simpleeval."""

    when: str = Field(description="e.g. `soil_moisture_pct < 20 and temperature_c > 28`.")
    clear: str | None = Field(default=None, description="Clears when true (default: when "
                              "`when` is false).")

    @model_validator(mode="after")
    def _parses(self) -> Expr:
        for key in ("when", "clear"):
            text = getattr(self, key)
            if text is None:
                continue
            try:
                ast.parse(text, mode="eval")
            except SyntaxError as e:
                raise config_error(f"not a valid expression: {e.msg}", fields=(key,)) from None
            names = {n.id for n in ast.walk(ast.parse(text, mode="eval"))
                     if isinstance(n, ast.Name)} - {"True", "False", "None", "abs", "min", "max"}
            unknown = sorted(n for n in names if n not in BY_NAME)
            if unknown:
                raise config_error(f"unknown name(s) {', '.join(unknown)}",
                                   "use catalogue quantity names", fields=(key,))
        return self


class RainSuppression(_Section):
    above_mm: Value = Field(description="Rain at the site (sum) that makes the alert moot.")
    within: Seconds = Field(default=12 * 3600, description="Over this much time before now.")


class Rule(_Section):
    name: str = Field(description="Unique rule name, e.g. `tomato.soil_dry`.")
    severity: Literal["info", "warning", "critical"] = "warning"
    scope: Scope | None = Field(default=None, description="Narrows the file's scope.")
    during: During | None = Field(default=None, description="Only within this time window.")
    threshold: Threshold | None = None
    rate: Rate | None = None
    refill: Refill | None = None
    frost: Frost | None = None
    gdd: Gdd | None = None
    expr: Expr | None = None
    absent_for: Seconds | None = Field(
        default=None, description="Fires when no reading (of `quantity`, if given) came for "
        "this long: a silent node or sensor.")
    quantity: Quantity | None = Field(default=None, description="For `absent_for` only.")
    for_: Seconds = Field(default=0, alias="for", description="Condition must hold this long.")
    confirm: int = Field(default=1, ge=1, description="Consecutive readings that must agree "
                         "before the alert is pending (noisy sensors).")
    unless: list[str] = Field(default_factory=list, description="Rule names that, firing on "
                              "the same node, hold this rule back (e.g. battery_low).")
    unless_quarantined: Seconds | None = Field(
        default=None, description="Held back while the node had readings quarantined "
        "(out of range, sensor fault) within this time.")
    unless_rain: RainSuppression | None = None
    message: Texts
    resolved: Texts | None = Field(default=None, description="Text when it clears (default: "
                                   "the message, marked resolved).")
    why: Texts | None = None
    action: Texts | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exactly_one_condition(self) -> Rule:
        if not _RULE_NAME.match(self.name):
            raise config_error(f"rule name {self.name!r} has characters that do not fit a tag",
                               "use lower-case letters, digits, '.', '_' and '-'",
                               fields=("name",))
        kinds = [k for k in CONDITION_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise config_error(
                f"a rule needs exactly one condition, found {len(kinds)}"
                + (f" ({', '.join(kinds)})" if kinds else ""),
                "one of: " + ", ".join(CONDITION_KINDS),
                fields=("name",),
            )
        if self.quantity is not None and self.absent_for is None:
            raise config_error("`quantity` at rule level is for `absent_for` rules",
                               fields=("quantity",))
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CONDITION_KINDS if getattr(self, k) is not None)


class RuleFile(_Section):
    version: Literal[1] = 1
    preset: str | None = Field(default=None, description="Preset name (shipped presets).")
    title: Texts | None = None
    description: str | None = None
    sources: list[str] = Field(default_factory=list, description="References.")
    thresholds: dict[str, ThresholdValue] = Field(default_factory=dict)
    scope: Scope | None = None
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _resolve_threshold_names(self) -> RuleFile:
        """Replace threshold names in conditions by their numbers."""
        names = sorted(self.thresholds)
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise config_error(f"rule name {rule.name!r} is used twice in this file",
                                   fields=("rules",))
            seen.add(rule.name)
            for part in (getattr(rule, k) for k in CONDITION_KINDS):
                if isinstance(part, BaseModel):
                    _resolve(part, self.thresholds, names, rule.name)
            if rule.unless_rain is not None:
                _resolve(rule.unless_rain, self.thresholds, names, rule.name)
        return self


def _resolve(part: BaseModel, thresholds: dict[str, ThresholdValue], names: list[str],
             rule: str) -> None:
    for key, value in list(part.__dict__.items()):
        if isinstance(value, str) and key in _VALUE_FIELDS:
            found = thresholds.get(value)
            if found is None:
                try:
                    setattr(part, key, float(value))
                    continue
                except ValueError:
                    pass
                raise config_error(
                    f"rule {rule!r}: {key}: {value!r} is neither a number nor a threshold "
                    "of this file",
                    "thresholds here: " + (", ".join(names) or "none"),
                    fields=("rules",),
                )
            part.__dict__[key] = found.value


_VALUE_FIELDS: Final = frozenset({
    "below", "above", "clear_above", "clear_below", "refill_at", "warn_at", "base_c",
    "upper_c", "above_mm",
})


def number(value: Any) -> float:
    """A resolved condition number (threshold names are gone after loading)."""
    return float(value)
