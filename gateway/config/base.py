"""Building blocks of config sections, shared by the settings model and the models other
packages contribute to it (``gateway.config.notifications``), which cannot import
:mod:`gateway.config.models` because that module imports them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError


def config_error(
    message: str, hint: str = "", *, fields: tuple[str | tuple[str | int, ...], ...] = ()
) -> PydanticCustomError:
    """A validation error that carries its own hint (and, from a model validator, the
    child keys it is about, so the problem points at ``sinks.influxdb.bucket`` rather than
    at ``sinks.influxdb``)."""
    return PydanticCustomError(
        "satoyama_config", "{message}", {"message": message, "hint": hint, "fields": fields}
    )


def all_errors(title: str, found: Sequence[ErrorDetails],
               more: Sequence[PydanticCustomError]) -> ValidationError:
    """One validation error holding the errors ``found`` by pydantic and ``more`` from
    :func:`config_error`: a model validator that raises it has check-config report all
    of them at once, where raising one of them would hide the others until it is fixed."""
    def again(error: ErrorDetails) -> InitErrorDetails:
        # As a custom error of the same type, message and context: pydantic-core does not
        # know every type pydantic raises (path_type), nor ours.
        kind = PydanticCustomError(error["type"], error["msg"], error.get("ctx"))
        return InitErrorDetails(type=kind, loc=error["loc"], input=error["input"])

    return ValidationError.from_exception_data(title, [
        *(again(e) for e in found),
        *(InitErrorDetails(type=e, loc=(), input=None) for e in more),
    ])


def raise_all(title: str, problems: Sequence[PydanticCustomError]) -> None:
    """Raise the :func:`config_error` ``problems`` of a model validator together, if any:
    check-config reports them in one run, not one more after each fix."""
    if problems:
        raise all_errors(title, [], problems)


def hint(text: str) -> dict[str, Any]:
    """``json_schema_extra`` of a field: the hint shown with any error about it."""
    return {"hint": text}


@dataclass(frozen=True, slots=True)
class DocType:
    """``Annotated`` metadata: the type as docs/configuration.md names it, for a field whose
    validator accepts more than its model type shows (a string that becomes a mapping)."""

    text: str


class Section(BaseModel):
    """A config section: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_name(value: str) -> str:
    # Node and site names end up in MQTT topic levels and InfluxDB tags.
    if not _NAME.match(value):
        raise config_error(
            f"{value!r} is not a valid name",
            "use letters, digits, '_', '-' and '.', starting with a letter or digit "
            "(names become MQTT topic levels and InfluxDB tags)",
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]


def quoted_or(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, sorted(available_timezones()), n=3)
        guess = f"did you mean {quoted_or(close)}? " if close else ""
        raise config_error(
            f"{name!r} is not a known time zone", guess + "use an IANA name such as Asia/Tokyo"
        ) from None
    return name
