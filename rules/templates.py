"""Alert texts: ``str.format`` fields and format specs, nothing else.

Rule files come from people, so a template may only name a variable and format it
(``{value:.0f}``): attribute and index access (``{value.__class__}``, ``{x[0]}``) are
refused when the file is loaded, and a name the engine does not provide renders as
``{name}`` instead of failing an alert.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any, Final

_FIELD: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TemplateError(ValueError):
    pass


def check_template(text: str) -> None:
    """Raise :class:`TemplateError` if ``text`` uses more than plain named fields."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise TemplateError(f"bad template: {e}") from None
    for _, field, _, _ in parsed:
        if field is not None and not _FIELD.match(field):
            raise TemplateError(
                f"template field {{{field}}} is not a plain name; use e.g. {{value:.1f}}")


class _Formatter(string.Formatter):
    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, str) and key in kwargs:
            return kwargs[key]
        return _Missing(str(key))

    def format_field(self, value: Any, format_spec: str) -> Any:
        if isinstance(value, _Missing) or value is None:
            return "{" + str(getattr(value, "name", "?")) + "}" if value is not None else "-"
        try:
            return format(value, format_spec)
        except (TypeError, ValueError):
            return str(value)


class _Missing:
    def __init__(self, name: str) -> None:
        self.name = name


_FORMATTER: Final = _Formatter()


def render(text: str, variables: Mapping[str, Any]) -> str:
    """``text`` with its fields filled from ``variables``; never raises for bad values."""
    try:
        return _FORMATTER.vformat(text, (), variables)
    except (ValueError, IndexError, KeyError):
        return text
