"""Located config problems, and the translation of pydantic errors into them.

A :class:`ConfigProblem` names the file, the dotted key, the line (when the key came from
the file) or the environment variable (when it came from the environment), what is wrong
and how to fix it. pydantic's errors are translated in one place, here.
"""

from __future__ import annotations

import difflib
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from inspect import isclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from gateway.config.models import Settings

# Values of these keys are never shown in a message.
SECRET_KEYS = frozenset({"password", "token", "key"})

Loc = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a configuration, and where."""

    file: Path
    key: str  # dotted path: sinks.influxdb.bucket, rules[0]; "" for the file as a whole
    line: int | None  # 1-based; None when the value did not come from the file
    message: str
    hint: str = ""
    column: int | None = None  # 1-based, for YAML syntax errors
    env_var: str | None = None  # the SATOYAMA_... variable the value came from
    warning: bool = False  # usable as it is, but probably not what was meant

    def __str__(self) -> str:
        if self.env_var is not None:
            where = f"{self.env_var} (environment)"
        else:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
        if self.warning:
            where += ": warning"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return f"{text} — hint: {self.hint}" if self.hint else text


class ConfigError(Exception):
    """The configuration is not usable; ``problems`` lists everything found."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the configuration:"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def dotted(loc: Iterable[str | int]) -> str:
    """``('sources', 'mqtt', 'topics', 1)`` -> ``'sources.mqtt.topics[1]'``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


# --------------------------------------------------------------------------- model walk


def unwrap_type(tp: Any) -> tuple[Any, bool]:
    """A field type without Annotated and Optional wrappers, and whether it was optional."""
    optional = False
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            optional = optional or len(args) < len(get_args(tp))
            if len(args) != 1:
                return tp, optional
            tp = args[0]
        else:
            return tp, optional


def _strip(tp: Any) -> Any:
    return unwrap_type(tp)[0]


def _walk(
    loc: Sequence[str | int], root: type[BaseModel] = Settings
) -> tuple[Any, FieldInfo | None]:
    """The type at ``loc`` in ``root`` (the settings model, or a rule file's) and the last
    model field on the way."""
    tp: Any = root
    field: FieldInfo | None = None
    for part in loc:
        tp = _strip(tp)
        if isclass(tp) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None, None
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return None, None
    return tp, field


def allowed_keys(loc: Sequence[str | int], root: type[BaseModel] = Settings) -> list[str]:
    """The keys a mapping at ``loc`` may hold (empty if it is not a model section)."""
    tp = _strip(_walk(loc, root)[0])
    if isclass(tp) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def field_hint(field: FieldInfo | None) -> str:
    extra = field.json_schema_extra if field is not None else None
    if isinstance(extra, Mapping):
        hint = extra.get("hint")
        if isinstance(hint, str):
            return hint
    return ""


def _literal_values(loc: Sequence[str | int], root: type[BaseModel]) -> list[str]:
    tp = _strip(_walk(loc, root)[0])
    if get_origin(tp) is Literal:
        return [str(a) for a in get_args(tp)]
    return []


# --------------------------------------------------------------------------- translation

Locator = Callable[[Loc], tuple[int | None, str | None]]
"""Maps a key path to (line in the file, environment variable) for the message."""

_MAPPING_TYPES = {"model_type", "model_attributes_type", "dict_type"}
_SCALARS = (str, int, float, bool, type(None))
# pydantic's wording for the usual mistakes, said the way a config file's reader thinks.
_PLAIN_MESSAGES = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "date_from_datetime_parsing": "expected a date (YYYY-MM-DD)",
    "date_parsing": "expected a date (YYYY-MM-DD)",
    "date_type": "expected a date (YYYY-MM-DD)",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
}


def _show(value: Any) -> str:
    if isinstance(value, _SCALARS):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def translate(
    error: ErrorDetails, file: Path, locate: Locator, root: type[BaseModel] = Settings
) -> list[ConfigProblem]:
    """One pydantic error of a ``root`` model as one or more located problems."""
    is_key = error["loc"][-1:] == ("[key]",)
    loc: list[str | int] = []
    for part in error["loc"]:
        if part == "[key]":
            continue
        # An int is a list index, unless it is a mapping key YAML read as a number.
        if isinstance(part, int) and get_origin(_strip(_walk(loc, root)[0])) is dict:
            part = str(part)
        loc.append(part)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    secret = any(str(p) in SECRET_KEYS for p in loc[-1:])
    last = str(loc[-1]) if loc else ""
    hint = ""

    if kind == "satoyama_config":
        message, hint = str(ctx.get("message", error["msg"])), str(ctx.get("hint", ""))
        fields = tuple(ctx.get("fields") or ())
        if fields:
            # A field is a child key, a path below the model ("devices.n1.ids"), or a
            # tuple path when it holds a list index (("topics", 1, "codec")).
            locs = [[*loc, *(f if isinstance(f, tuple) else str(f).split("."))]
                    for f in fields]
            return [
                _problem(
                    file,
                    lc,
                    f"{lc[-1]!r} is {message}" if message.startswith("required") else message,
                    hint or field_hint(_walk(lc, root)[1]),
                    locate,
                )
                for lc in locs
            ]
    elif kind == "extra_forbidden":
        allowed = allowed_keys(loc[:-1], root)
        close = difflib.get_close_matches(last, allowed, n=2, cutoff=0.6)
        message = f"unknown key {last!r}"
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        if allowed:
            hint += "allowed keys here: " + ", ".join(allowed)
    elif kind == "missing":
        message = f"required key {last!r} is missing"
        _, field = _walk(loc, root)
        hint = field_hint(field) or (field.description or "" if field else "")
    elif kind == "literal_error":
        options = _literal_values(loc, root)
        shown = "the given value" if secret else _show(value)
        message = f"{shown} is not one of {', '.join(options)}" if options else error["msg"]
    elif kind in _MAPPING_TYPES:
        message = f"expected a mapping of keys, got {_show(value) if not secret else 'a value'}"
        allowed = allowed_keys(loc, root)
        if allowed:
            hint = "keys here: " + ", ".join(allowed)
    elif kind == "list_type":
        message = f"expected a list, got {_show(value)}"
        hint = "write one item per line, each starting with '- '"
    elif kind in _PLAIN_MESSAGES:
        message = _PLAIN_MESSAGES[kind].format(**ctx)
        if not secret and isinstance(value, _SCALARS):
            message += f", got {value!r}"
        if kind == "string_type" and (secret or is_key):
            hint = (
                f"write it quoted ('{value}') so YAML keeps it as text"
                if is_key
                else "write secrets quoted so YAML keeps them as text"
            )
    else:
        message = error["msg"].removeprefix("Value error, ")
        if not secret and isinstance(value, _SCALARS):
            message += f" (got {value!r})"
    if not hint:
        hint = field_hint(_walk(loc, root)[1])
    return [_problem(file, loc, message, hint, locate)]


def _problem(
    file: Path, loc: Sequence[str | int], message: str, hint: str, locate: Locator
) -> ConfigProblem:
    line, env_var = locate(tuple(str(p) for p in loc))
    return ConfigProblem(
        file=file, key=dotted(loc), line=line, message=message, hint=hint, env_var=env_var
    )


def print_problems(problems: Sequence[ConfigProblem], what: str) -> int:
    """Print ``problems`` to stderr for a CLI command; the exit status (1 if any is not a
    warning)."""
    for p in problems:
        print(p, file=sys.stderr)
    errors = sum(not p.warning for p in problems)
    if errors:
        print(f"{errors} problem(s) in {what}", file=sys.stderr)
        return 1
    if problems:
        print(f"{len(problems)} warning(s) in {what}", file=sys.stderr)
    return 0
